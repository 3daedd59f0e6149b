"""AlpacaEval 2.0 (Dubois et al., 2024): 805 instructions; a judge picks the better of the candidate's answer and
GPT-4 Turbo's reference answer, and the length-controlled (LC) win rate takes out the judge's taste for length.

What makes the number AlpacaEval's is the `alpaca-eval` package itself, used as a library: the annotator config
(`weighted_alpaca_eval_gpt4_turbo`: its prompt, one token at temperature 1 with the top-5 log-probabilities, the
m/M log-probability parser, the seeded swap of the two answers), the win rate, and the LC win rate's GLM, which reads
AlpacaEval's precomputed instruction difficulties (`df_gamed.csv`) from the hub dataset. ifforge only sends the
annotator's requests through its own judge (response cache, rate limits, cost) and records what came back.

Data: `alpaca_eval_gpt4_baseline.json` of the hub dataset tatsu-lab/alpaca_eval (instruction, output = the reference
answer, generator), at `revision`, or a local copy of that file via `path`. An item's position in the full file is
what the GLM's instruction difficulty is looked up by, so `limit` keeps the LC model's features right.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ifforge.errors import StageFailed, UserError
from ifforge.evaluate import SUITES
from ifforge.evaluate.data import read_rows
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.tables import headline_tables, judge_note

# Where alpaca-eval's GLM reads the instruction difficulties from (hard-coded in alpaca_eval.metrics.glm_winrate).
LC_DATA = ("tatsu-lab/alpaca_eval", "df_gamed.csv")
# What ifforge's judge can send on the annotator's behalf: sampling params. An annotator that needs more (function
# calling, a provider's own client) cannot be answered faithfully through a chat request.
_PARAMS = ("max_tokens", "temperature", "top_p", "logprobs", "top_logprobs", "seed", "stop")
_NOT_SENT = ("model_name",)  # the judge's model is judge.model (or eval.alpaca_eval.judge_model)
# A reply without tokens, as the log-probability parser can read it (no m, no M: no verdict)
_NO_TOKEN = {"content": [{"token": "", "logprob": 0.0, "top_logprobs": []}]}


@dataclass
class AlpacaEvalConfig(SuiteConfig):
    hf_name: str = "tatsu-lab/alpaca_eval"
    revision: str = "main"  # the hub dataset's revision; the commit actually read is recorded in metrics.json
    reference_file: str = "alpaca_eval_gpt4_baseline.json"  # AlpacaEval 2.0's baseline: GPT-4 Turbo's answers
    annotator: str = "weighted_alpaca_eval_gpt4_turbo"  # an annotator config shipped with alpaca-eval


def hub_file(repo: str, filename: str, revision: Optional[str] = None) -> Path:
    """A file of a hub dataset, downloaded once into the Hugging Face cache (read from it offline)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, repo_type="dataset", revision=revision))
    except Exception as e:  # offline without a cached copy, gated, renamed
        raise UserError(f"cannot get {filename} from the hub dataset {repo} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160]})") from None


def annotator_config(name: str) -> Path:
    """The annotator's configs.yaml inside the installed alpaca-eval (found without importing it: ~2 s)."""
    spec = importlib.util.find_spec("alpaca_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("eval=alpaca_eval needs the alpaca-eval package: pip install 'alpaca-eval>=0.6.6,<0.7'")
    path = Path(list(spec.submodule_search_locations)[0]) / "evaluators_configs" / name / "configs.yaml"
    if not path.is_file():
        raise UserError(f"eval.alpaca_eval.annotator={name!r} is not an annotator config of the installed "
                        f"alpaca-eval (see alpaca_eval/evaluators_configs/)")
    return path


def _alpaca_eval() -> Any:
    """alpaca_eval, imported quietly: it warns about pkg_resources and sets the root logger to INFO on import."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import alpaca_eval
        import alpaca_eval.annotators
        import alpaca_eval.metrics
        import alpaca_eval.utils
    root.setLevel(level)
    return alpaca_eval


class JudgeCompletions:
    """alpaca-eval's `fn_completions` contract (prompts in; completions, raw choices, prices, times out), answered by
    ifforge's judge generator. A failed request's raw choice carries its error: the annotator finds no verdict in
    it, and the suite leaves the pair out and reports it as a judge failure rather than as an unreadable verdict."""

    def __init__(self, generator: Any):
        self.generator = generator
        # (prompt, what came back): the annotator keeps no reply it could not parse, and marks no failure
        self.replies: List[Tuple[str, Dict[str, Any]]] = []

    def __call__(self, prompts: List[str], **kwargs: Any) -> Dict[str, List[Any]]:
        from alpaca_eval.utils import prompt_to_chatml

        from ifforge.llm import ChatRequest

        params = {k: v for k, v in kwargs.items() if k in _PARAMS}
        requests = [ChatRequest(messages=prompt_to_chatml(p), params=dict(params)) for p in prompts]
        results = self.generator.generate(requests, desc="judge alpaca_eval")
        raw: List[Any] = []
        for prompt, result in zip(prompts, results):
            sample = result.samples[0] if result.samples else None
            if not result.ok:
                raw.append({"text": "", "error": result.error, "logprobs": _NO_TOKEN})
                self.replies.append((prompt, raw[-1]))
                continue
            # (a reply without the log-probabilities asked for is a failed call: the generator sees to it)
            # an empty reply has no token to read alternatives from: an unreadable verdict, not a crash in the parser
            raw.append({"text": sample.text, "logprobs": {"content": sample.logprobs or _NO_TOKEN["content"]}})
            self.replies.append((prompt, {"text": sample.text, "logprobs": sample.logprobs}))
        return {"completions": [r.text or "" for r in results], "completions_all": raw,
                "price_per_example": [math.nan] * len(results),  # ifforge's own cost accounting covers the judge
                "time_per_example": [r.samples[0].latency if r.samples else math.nan for r in results]}


@SUITES.register("alpaca_eval", schema=AlpacaEvalConfig)
class AlpacaEval(Suite):
    name = "alpaca_eval"
    summary_columns = {"AlpacaEval 2.0 LC": "length_controlled_winrate", "Avg. length": "avg_length"}
    uses_judge = True
    scored_by = "alpaca-eval"

    @classmethod
    def preflight(cls, cfg: Any, reference_dir: Optional[str]) -> None:
        """Before any answer is paid for: the annotator exists, and what the LC win rate reads can be had."""
        if cfg.templates.judge:
            raise UserError("eval.alpaca_eval.templates.judge: AlpacaEval's judge prompt is its annotator's "
                            "(eval.alpaca_eval.annotator), read from the alpaca-eval package; it takes no template")
        annotator_config(str(cfg.annotator))
        hub_file(*LC_DATA)
        if not cfg.path:  # answers given in a responses file are still compared with the reference answers
            hub_file(str(cfg.hf_name), str(cfg.reference_file), str(cfg.revision))

    @classmethod
    def judge_budget(cls, cfg: Any) -> Optional[Tuple[int, int]]:
        """The annotator's prompt template and its reply budget (one token for AlpacaEval 2.0's)."""
        import yaml

        path = annotator_config(str(cfg.annotator))
        (config,) = yaml.safe_load(path.read_text(encoding="utf-8")).values()
        template = path.parents[1] / config["prompt_template"]
        reply = int((config.get("completions_kwargs") or {}).get("max_tokens") or 1)
        return len(template.read_text(encoding="utf-8")) // 4 + 1, reply

    def load(self) -> List[Item]:
        if self.cfg.path:
            rows, self.source = read_rows(self.cfg.path), str(self.cfg.path)
        else:
            path = hub_file(str(self.cfg.hf_name), str(self.cfg.reference_file), str(self.cfg.revision))
            # the snapshot folder is the commit: which reference answers were read is part of the result
            rows, self.source = read_rows(path), f"{self.cfg.hf_name}@{path.parent.name}/{self.cfg.reference_file}"
        items = []
        for index, r in enumerate(rows):
            if "instruction" not in r or "output" not in r:
                raise UserError(f"an AlpacaEval row needs `instruction` and `output` (the reference answer); "
                                f"got fields: {', '.join(sorted(r))}")
            items.append(Item(id=str(index), prompt=str(r["instruction"]),
                              messages=[{"role": "user", "content": str(r["instruction"])}],
                              data={"index": index, "reference": str(r["output"]),
                                    "reference_generator": str(r.get("generator") or "reference"),
                                    "dataset": r.get("dataset")}))
        return self.limited(items)

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        ae = _alpaca_eval()
        annotator = ae.annotators.PairwiseAnnotator(annotators_config=str(self.cfg.annotator), caching_path=None)
        single = list(annotator.annotators.values())
        unknown = sorted({k for s in single for k in s.completions_kwargs} - set(_PARAMS) - set(_NOT_SENT))
        if unknown:
            raise UserError(f"eval.alpaca_eval.annotator={self.cfg.annotator!r} needs {', '.join(unknown)}, which "
                            f"ifforge's judge does not send; use weighted_alpaca_eval_gpt4_turbo (AlpacaEval 2.0)")
        judge = JudgeCompletions(self.ctx.judge())
        for s in single:
            s.fn_completions = judge
        answers = [str(r) for r in responses]
        reference = [{"instruction": it.prompt, "output": it.data["reference"],
                      "generator": it.data["reference_generator"]} for it in items]
        model = [{"instruction": it.prompt, "output": a, "generator": "candidate"} for it, a in zip(items, answers)]
        annotated = annotator.annotate_head2head(outputs_1=reference, outputs_2=model, is_ordered=True,
                                                 chunksize=None)
        # every pair comes back, in input order; the preference is NaN where the parser found neither m nor M
        if len(annotated) != len(items) or any((row["instruction"], row["output_1"], row["output_2"])
                                               != (it.prompt, it.data["reference"], a)
                                               for row, it, a in zip(annotated, items, answers)):
            raise StageFailed(f"eval.alpaca_eval: alpaca-eval {self.library_version()} gave back "
                              f"{len(annotated)} annotations for {len(items)} pairs, not one per pair in order")
        replies = [judge_reply(judge.replies, it.prompt, it.data["reference"], a) for it, a in zip(items, answers)]
        failed = [k for k, raw in enumerate(replies) if raw is not None and raw.get("error")]
        metrics = self._metrics(ae, items, answers, annotated, failed)
        rows = []
        for k, (it, a, row, raw) in enumerate(zip(items, answers, annotated, replies)):
            rows.append({"id": it.id, "index": it.data["index"], "instruction": it.prompt, "response": a,
                         "reference": it.data["reference"], "reference_generator": it.data["reference_generator"],
                         "preference": _number(row.get("preference")),  # 1: reference better .. 2: candidate
                         "glm_preference": _number(row.get("glm_preference")),
                         "judge_failed": k in failed,
                         "judge_output": json.dumps(raw, default=str) if raw is not None else None})
        sampling = {k: v for k, v in single[0].completions_kwargs.items() if k not in _NOT_SENT}
        metrics.update(items_left_out=[items[k].id for k in failed], annotator=str(self.cfg.annotator),
                       annotator_sampling=sampling, reference=self.source,
                       # the instruction difficulties the LC model read, by the commit of the cached copy
                       lc_data=f"{LC_DATA[0]}@{hub_file(*LC_DATA).parent.name}/{LC_DATA[1]}",
                       alpaca_eval_version=self.library_version())
        return rows, metrics

    @staticmethod
    def _metrics(ae: Any, items: List[Item], answers: List[str], annotated: List[Dict[str, Any]],
                 failed: List[int]) -> Dict[str, Any]:
        """Win rate and LC win rate over every pair the judge answered, as alpaca_eval.main.evaluate computes them:
        the win rate over the readable verdicts, the LC model fit on those and averaged over all the answered pairs
        (unreadable ones included). Pairs whose judge request failed are left out: no verdict was given. (The
        package's own client, after its retries, hands the annotator an empty reply instead, which then counts as
        unreadable; ifforge computes nothing from a failed request, and reports the pair as left out.)"""
        import pandas as pd

        avg_length = int(sum(len(a) for a in answers) / len(answers)) if answers else None  # characters, as AlpacaEval
        left_out = set(failed)
        kept = [k for k in range(len(items)) if k not in left_out]
        scored = sum(1 for k in kept if _number(annotated[k].get("preference")) is not None)
        base = {"n_items": len(items), "scored_verdicts": scored, "unparseable": len(kept) - scored,
                "avg_length": avg_length}
        if not scored:
            return {**base, "win_rate": None, "length_controlled_winrate": None}
        # indexed by position in the full reference file: the LC model looks each instruction's difficulty up by it
        df = pd.DataFrame([annotated[k] for k in kept], index=[items[k].data["index"] for k in kept])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = ae.metrics.get_length_controlled_winrate(df, save_weights_dir=None)
        for k, glm in zip(kept, df["glm_preference"]):  # the GLM's preference had the lengths been equal
            annotated[k]["glm_preference"] = float(glm)
        keep = ("win_rate", "standard_error", "length_controlled_winrate", "lc_standard_error", "discrete_win_rate",
                "n_wins", "n_wins_base", "n_draws", "n_total")
        return {**base, **{k: _plain(m[k]) for k in keep if k in m}}

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        return {"AlpacaEval 2.0": {"LC Win Rate": _round(metrics.get("length_controlled_winrate")),
                                   "Win Rate": _round(metrics.get("win_rate")),
                                   "Avg Length": metrics.get("avg_length")}}

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        return headline_tables(self.headline(metrics), label, notes=judge_note(metrics),
                               details={"AlpacaEval 2.0": f"vs {self.cfg.reference_file}, annotator "
                                                          f"{metrics.get('annotator')}, {metrics['scored_verdicts']}"
                                                          f" of {metrics['n_items']} pairs judged"})


def judge_reply(replies: List[Tuple[str, Dict[str, Any]]], instruction: str, *outputs: str) -> Optional[Dict[str, Any]]:
    """What the judge answered for a pair: the reply whose prompt quotes the instruction and both outputs (in either
    order: the annotator swaps them for some instructions). None when the pair was never sent."""
    quoted = [f'"""{text}"""' for text in (instruction, *outputs)]
    return next((raw for prompt, raw in replies if all(q in prompt for q in quoted)), None)


def _number(value: Any) -> Optional[float]:
    """A preference as a plain float, None for the annotator's NaN/None (no verdict)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _plain(value: Any) -> Any:
    """numpy scalars as plain Python numbers for metrics.json."""
    return value.item() if hasattr(value, "item") else value


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 2)
