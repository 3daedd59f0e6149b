"""The eval stage: each selected suite scores the model under test into its own artifact.

One artifact per suite (`<artifacts>/eval/<suite>/<fingerprint>/`), keyed by that suite's options, its data, the
model under test (the train artifact's fingerprint, or the candidate config) and the judge when the suite uses one.
So changing one suite's `limit` redoes that suite alone. The stage's own artifact only gathers the suites' metrics
and tables (`metrics.json`, `tables.md`, `suites.json`), which is cheap to redo.
Generations and judge calls go through the shared response cache, so even a rebuilt suite sends no request twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from ifforge.artifacts import Artifact, artifact_for, ensure, write_json_atomic
from ifforge.config import BUILD_ONLY_FIELDS
from ifforge.errors import StageFailed, UserError
from ifforge.pipeline import STAGES, Stage, plain
from ifforge.secrets import redact
from ifforge.stages.build import generator_slice

log = logging.getLogger("ifforge")


def selected_suites(cfg: DictConfig) -> Dict[str, Any]:
    """{option name: suite class} for the suites in `cfg.eval`."""
    from ifforge.evaluate import SUITES
    from ifforge.registry import discover

    discover("ifforge.evaluate.suites")
    chosen = dict(cfg.get("eval") or {})
    if not chosen:
        raise UserError("no eval suites selected: use eval=[ifeval,...] or eval=all")
    return {name: SUITES.get(str(node.name)) for name, node in chosen.items()}


def _hub_problem(hf_name: str) -> Optional[str]:
    """Why the hub copy of a benchmark cannot be had now; None when it can. One request without retries (the
    loader's own retries take ~25 s to give up offline); under HF_HUB_OFFLINE only a cached copy counts."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:
        HfApi().dataset_info(hf_name, timeout=10)
    except OfflineModeIsEnabled:
        cached = Path(constants.HF_HUB_CACHE) / ("datasets--" + hf_name.replace("/", "--"))
        return None if cached.is_dir() else "HF_HUB_OFFLINE is set and it is not in the hub cache"
    except Exception as e:  # offline, gated, renamed: the message says which
        return f"{type(e).__name__}: {str(e)[:120]}"
    return None


def drop_missing_benchmarks(cfg: DictConfig) -> List[str]:
    """Apply `eval.<suite>.if_missing=skip`: a local copy that is not there falls back to the hub, and a benchmark
    found nowhere leaves the run. Returns one line per suite left out (the caller logs them)."""
    from ifforge.evaluate import SUITES
    from ifforge.registry import discover

    discover("ifforge.evaluate.suites")
    skipped = []
    for name in list(cfg.get("eval") or {}):
        node = cfg.eval[name]
        mode = str(node.get("if_missing", "fail"))
        if mode not in ("fail", "skip"):
            raise UserError(f"eval.{name}.if_missing must be fail or skip (got {mode!r})")
        if mode == "fail" or node.responses:
            continue
        cls = SUITES.get(str(node.name))
        where = None
        if node.path and not Path(str(node.path)).expanduser().exists():
            where = f"no local copy at {node.path}"
            node.path = None
        problem = None
        if not node.path and not cls.uses_build and node.get("hf_name"):
            hub = _hub_problem(str(node.hf_name))
            if hub is not None:
                problem = (f"{where + ' and ' if where else ''}the hub dataset {node.hf_name} cannot be reached "
                           f"({hub}); set eval.{name}.path to a local copy")
        if problem is None:
            try:
                cls.preflight(node, cfg.paths.get("reference"))  # e.g. the official files of protocol=reference
            except UserError as e:
                problem = str(e)
        if problem is not None:
            skipped.append(f"eval.{name} skipped: {problem}")
            with open_dict(cfg.eval):
                del cfg.eval[name]
    return skipped


def judge_node(cfg: DictConfig, node: Any) -> DictConfig:
    """The judge a suite uses: `judge`, with the suite's own `judge_model` when it sets one."""
    model = node.get("judge_model")
    return OmegaConf.merge(cfg.judge, {"model": str(model)}) if model else cfg.judge


def _reads_build(cls: Any, node: Any) -> bool:
    return cls.uses_build and not node.path and not node.responses


def _generates(node: Any) -> bool:
    return not node.responses


@STAGES.register("eval")
class EvalStage(Stage):
    name = "eval"

    def upstream(self, cfg: DictConfig) -> List[str]:
        from ifforge.evaluate.candidate import uses_train

        suites = selected_suites(cfg)
        ups = []
        if uses_train(cfg) and any(_generates(cfg.eval[n]) for n in suites):
            ups.append("train")
        if any(_reads_build(cls, cfg.eval[n]) for n, cls in suites.items()):
            ups.append("build")
        return ups

    def suite_config(self, cfg: DictConfig, name: str, cls: Any) -> Dict[str, Any]:
        from ifforge.evaluate.candidate import identity
        from ifforge.evaluate.data import digest

        node = cfg.eval[name]
        # if_missing: how a run copes, not what it scores; judge_model: the judge slice below holds the model used
        suite = {k: v for k, v in plain(node).items() if k not in ("if_missing", "judge_model")}
        slice_: Dict[str, Any] = {"suite": suite, "data": digest(node.path), "responses": digest(node.responses),
                                  "templates": {"judge": digest(node.templates.judge)}}
        if _generates(node):
            slice_["candidate"] = identity(cfg)
        if cls.uses_judge:
            slice_["judge"] = {k: v for k, v in generator_slice(judge_node(cfg, node)).items()
                               if k not in BUILD_ONLY_FIELDS}
        if cls.scoring_version != 1:
            slice_["scoring_version"] = cls.scoring_version
        if cls.scored_by:
            slice_["scored_by"] = {cls.scored_by: cls.library_version()}
        if cls.official is not None and str(node.protocol) == "reference":  # the pinned official files
            from ifforge.evaluate.reference import SOURCES

            slice_["reference"] = {k: v.commit for k, v in SOURCES.items()}
        return slice_

    def config(self, cfg: DictConfig) -> Dict[str, Any]:
        return {"suites": {n: self.suite_config(cfg, n, cls) for n, cls in sorted(selected_suites(cfg).items())}}

    def refreshes(self, cfg: DictConfig) -> bool:
        return any(cfg[role].cache == "refresh" for role in ("candidate", "judge"))

    def settle(self, cfg: DictConfig) -> Optional[str]:
        for line in drop_missing_benchmarks(cfg):
            log.warning("%s", line)
        return None if cfg.get("eval") else "every benchmark was skipped (see the lines above)"

    def preflight(self, cfg: DictConfig) -> None:
        from ifforge.evaluate.candidate import candidate_node, uses_train
        from ifforge.llm import BACKENDS, make_generator  # noqa: F401  (make_generator discovers backends)
        from ifforge.registry import discover

        suites = selected_suites(cfg)
        for name, cls in suites.items():
            node = cfg.eval[name]
            cls.preflight(node, cfg.paths.get("reference"))
            for key in ("path", "responses", "templates.judge"):
                value = OmegaConf.select(node, key)
                if value and not Path(str(value)).expanduser().exists():
                    raise UserError(f"eval.{name}.{key}: not found: {value}")
        discover("ifforge.llm.backends")
        if any(_generates(cfg.eval[n]) for n in suites):
            backend = BACKENDS.get(str(cfg.candidate.name))
            if not uses_train(cfg):  # a checkpoint still to be trained cannot be checked yet
                backend(candidate_node(cfg)).check()
        judges = [judge_node(cfg, cfg.eval[n]) for n, cls in suites.items() if cls.uses_judge]
        for node in {str(j.model): j for j in judges}.values():  # each judge model a suite asks, once
            BACKENDS.get(str(node.name))(node).check()

    def build(self, cfg: DictConfig, out: Path, inputs: Dict[str, Artifact]) -> Dict[str, Any]:
        from ifforge.evaluate import candidate as cand
        from ifforge.evaluate.engine import run_suite
        from ifforge.evaluate.suite import SuiteContext

        train_dir: Optional[Path] = inputs["train"].path if "train" in inputs else None
        failures = out / "failures.jsonl"
        failures.unlink(missing_ok=True)  # a fresh log per attempt
        generators = _Generators(cfg, train_dir, failures)
        about = {"label": cand.label(cfg),
                 "candidate": {"backend": str(cfg.candidate.name), "model": cand.model_name(cfg, train_dir)}}
        ctx = SuiteContext(candidate=lambda: generators.get("candidate"), judge=lambda: generators.get("judge"),
                           build_dir=inputs["build"].path if "build" in inputs else None,
                           reference_dir=cfg.paths.get("reference"),
                           judge_concurrency=int(cfg.judge.max_concurrency))
        planned = []
        for name, cls in selected_suites(cfg).items():
            model = cfg.eval[name].get("judge_model")
            # this suite's own judge model (e.g. AlpacaEval's GPT-4 Turbo beside MT-Bench's GPT-4)
            suite_ctx = replace(ctx, judge=lambda m=str(model): generators.get("judge", model=m)) if model else ctx
            judge = redact({k: judge_node(cfg, cfg.eval[name]).get(k)
                            for k in ("name", "model", "base_url", "temperature", "max_tokens")})
            about_suite = {**about, "judge": {"backend": judge.pop("name"), **judge}}
            suite_inputs = {k: inputs[k] for k in ("train", "build") if k in inputs
                            and (k != "build" or _reads_build(cls, cfg.eval[name]))
                            and (k != "train" or _generates(cfg.eval[name]))}
            config = self.suite_config(cfg, name, cls)
            art = artifact_for(cfg.paths.artifacts, f"eval/{name}", config, suite_inputs)
            planned.append((name, cls(cfg.eval[name], suite_ctx), config, art, suite_inputs, about_suite))
        skipped = _empty_build_splits(planned)
        planned = [p for p in planned if p[0] not in skipped]
        if not planned:
            raise StageFailed("every suite was skipped: " + "; ".join(skipped.values()))
        try:
            answered = _answer_before_judging(cfg, {p[0]: p[1] for p in planned if not p[3].done}, generators)
            for name, suite, config, art, suite_inputs, about_suite in planned:
                ensure(art, config, lambda d, s=suite, a=answered.get(name), b=about_suite: run_suite(s, d, b, a),
                       inputs=suite_inputs, log=log.info, verify=str(cfg.verify), rebuild=self.refreshes(cfg))
            for g in generators.live.values():  # a tolerated failed fraction, judged over the whole stage
                g.check_tolerance()
        finally:
            generators.close_all()
        if generators.stats:
            from ifforge.llm.prices import total_cost

            log.info("[eval] cost: %s", total_cost(generators.stats))
        metrics = {p[0]: json.loads((p[3].path / "metrics.json").read_text()) for p in planned}
        write_json_atomic(out / "metrics.json", metrics)
        write_json_atomic(out / "suites.json", {p[0]: str(p[3].path) for p in planned})
        tables = [(p[3].path / "table.md").read_text() for p in planned] + [f"_{line}_\n" for line in skipped.values()]
        (out / "tables.md").write_text("\n".join(tables), encoding="utf-8")
        return {"suites": {p[0]: str(p[3].path) for p in planned}, **generators.stats,
                **({"skipped": skipped} if skipped else {})}


def _empty_build_splits(planned: List[Any]) -> Dict[str, str]:
    """{suite: why} for the suites under `if_missing=skip` that read a split the upstream build left empty (a
    weak generator's DeMoRecon build may hold out no eval seed): known only once the build is done."""
    skipped = {}
    for name, suite, _config, art, *_ in planned:
        node = suite.cfg
        if str(node.if_missing) != "skip" or not suite.uses_build or node.path or art.done:
            continue
        try:
            empty = not suite.load()
        except UserError as e:
            skipped[name] = f"eval.{name} skipped: {e}"
            continue
        if empty:
            skipped[name] = (f"eval.{name} skipped: the build's {node.get('split', 'eval')!r} split is empty "
                             f"(see the build's card for what its steps rejected)")
    for line in skipped.values():
        log.warning("%s", line)
    return skipped


class _Generators:
    """The candidate and judge generators, made on first use; their accounting outlives closing them."""

    def __init__(self, cfg: DictConfig, train_dir: Optional[Path], failures: Optional[Path] = None):
        self.cfg, self.train_dir, self.failures = cfg, train_dir, failures
        self.live: Dict[str, Any] = {}
        self.stats: Dict[str, Any] = {}

    def get(self, role: str, model: Optional[str] = None) -> Any:
        """The role's generator; `model`: the judge with another model (a suite's judge_model), kept apart."""
        from ifforge.evaluate.candidate import candidate_node
        from ifforge.llm import make_generator

        key = f"{role}:{model}" if model else role
        if key not in self.live:
            node = candidate_node(self.cfg, self.train_dir) if role == "candidate" else self.cfg.judge
            if model:
                node = OmegaConf.merge(node, {"model": model})
            self.live[key] = make_generator(node, self.cfg.paths.cache, role=role, failures_path=self.failures)
        return self.live[key]

    def close(self, role: str, check: bool = True) -> None:
        """Free the role's model; `check`: first enforce its tolerated failed fraction (not while unwinding)."""
        if check and role in self.live:
            self.live[role].check_tolerance()
        g = self.live.pop(role, None)
        if g is None:
            return
        g.close()
        from ifforge.llm.types import merge_reports

        # a suite's own judge model keeps its own line (`judge:<model>`): its own price, its own unknown price
        self.stats[role] = merge_reports(self.stats.get(role, {}), g.report())  # cost, price, per-step counts

    def close_all(self) -> None:
        for role in list(self.live):
            self.close(role, check=False)


LOCAL_BACKENDS = ("hf_local", "vllm")


def _answer_before_judging(cfg: DictConfig, suites: Dict[str, Any], generators: _Generators) -> Dict[str, Any]:
    """With a local model under test and a local judge, answer every suite first and free the model under test:
    both never sit in (GPU) memory together. Returns {suite name: (items, answers)} for each suite's run to score,
    {} where the suites answer as they run."""
    from ifforge.evaluate.engine import answer_suite

    todo = {name: s for name, s in suites.items() if _generates(s.cfg)}
    if not (todo and any(s.uses_judge for s in suites.values())
            and str(cfg.candidate.name) in LOCAL_BACKENDS and str(cfg.judge.name) in LOCAL_BACKENDS):
        return {}
    answered = {name: answer_suite(suite, generators.get("candidate")) for name, suite in todo.items()}
    generators.close("candidate")
    return answered
