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
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from ifforge.artifacts import Artifact, artifact_for, ensure, write_json_atomic
from ifforge.errors import UserError
from ifforge.pipeline import STAGES, Stage, plain
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
        slice_: Dict[str, Any] = {"suite": plain(node), "data": digest(node.path),
                                  "responses": digest(node.responses), "judge_template": digest(node.judge_template)}
        if _generates(node):
            slice_["candidate"] = identity(cfg)
        if cls.uses_judge:
            slice_["judge"] = generator_slice(cfg.judge)
        return slice_

    def config(self, cfg: DictConfig) -> Dict[str, Any]:
        return {"suites": {n: self.suite_config(cfg, n, cls) for n, cls in sorted(selected_suites(cfg).items())}}

    def preflight(self, cfg: DictConfig) -> None:
        from ifforge.evaluate.candidate import candidate_node, uses_train
        from ifforge.llm import BACKENDS, make_generator  # noqa: F401  (make_generator discovers backends)
        from ifforge.registry import discover

        suites = selected_suites(cfg)
        for name in suites:
            node = cfg.eval[name]
            for key in ("path", "responses", "judge_template"):
                if node[key] and not Path(str(node[key])).expanduser().exists():
                    raise UserError(f"eval.{name}.{key}: not found: {node[key]}")
        discover("ifforge.llm.backends")
        if any(_generates(cfg.eval[n]) for n in suites) and not uses_train(cfg):
            BACKENDS.get(str(cfg.candidate.name))(candidate_node(cfg)).check()
        if any(cls.uses_judge for cls in suites.values()):
            BACKENDS.get(str(cfg.judge.name))(cfg.judge).check()

    def build(self, cfg: DictConfig, out: Path, inputs: Dict[str, Artifact]) -> Dict[str, Any]:
        from ifforge.evaluate import candidate as cand
        from ifforge.evaluate.engine import run_suite
        from ifforge.evaluate.suite import SuiteContext
        from ifforge.llm import make_generator

        train_dir: Optional[Path] = inputs["train"].path if "train" in inputs else None
        generators: Dict[str, Any] = {}

        def generator(role: str):
            if role not in generators:
                node = cand.candidate_node(cfg, train_dir) if role == "candidate" else cfg.judge
                generators[role] = make_generator(node, cfg.paths.cache, role=role)
            return generators[role]

        about = {"label": cand.label(cfg), "judge": {"backend": str(cfg.judge.name), "model": str(cfg.judge.model)},
                 "candidate": {"backend": str(cfg.candidate.name), "model": cand.model_name(cfg, train_dir)}}
        ctx = SuiteContext(candidate=lambda: generator("candidate"), judge=lambda: generator("judge"),
                           build_dir=inputs["build"].path if "build" in inputs else None)
        metrics: Dict[str, Any] = {}
        paths: Dict[str, str] = {}
        tables: List[str] = []
        try:
            for name, cls in selected_suites(cfg).items():
                suite_inputs = {k: inputs[k] for k in ("train", "build") if k in inputs
                                and (k != "build" or _reads_build(cls, cfg.eval[name]))
                                and (k != "train" or _generates(cfg.eval[name]))}
                config = self.suite_config(cfg, name, cls)
                art = artifact_for(cfg.paths.artifacts, f"eval/{name}", config, suite_inputs)
                suite = cls(cfg.eval[name], ctx)
                ensure(art, config, lambda d, s=suite: run_suite(s, d, about), inputs=suite_inputs, log=log.info)
                paths[name] = str(art.path)
                metrics[name] = json.loads((art.path / "metrics.json").read_text())
                tables.append((art.path / "table.md").read_text())
        finally:
            for g in generators.values():
                g.close()
        write_json_atomic(out / "metrics.json", metrics)
        write_json_atomic(out / "suites.json", paths)
        (out / "tables.md").write_text("\n".join(tables), encoding="utf-8")
        stats: Dict[str, Any] = {"suites": paths}
        for role, g in generators.items():
            stats[role] = {"model": g.model, "backend": g.backend.name, **g.stats.as_dict()}
        return stats
