"""IFEval (Zhou et al., 2023): 541 prompts with verifiable instructions, scored by rules.

The 25 checkers are lm-eval's (`lm_eval.tasks.ifeval`, loaded offline by `ifeval_checkers`). Strict: the response
as written. Loose: the instruction counts as followed if any of eight lightly cleaned variants of the response
follows it (first and/or last line dropped, `*` removed), IFEval's upper bound. Prompt-level accuracy: all of a
prompt's instructions followed; instruction-level: over all instructions.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from ifforge.evaluate import SUITES
from ifforge.evaluate.data import load_hub, read_rows
from ifforge.evaluate.rates import pct
from ifforge.evaluate.suite import Item, Suite, SuiteConfig
from ifforge.evaluate.tables import headline_tables, markdown_table

METRIC_KEYS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")


@dataclass
class IFEvalConfig(SuiteConfig):
    hf_name: str = "google/IFEval"


def loose_variants(response: str) -> List[str]:
    """The response and the seven variants IFEval's loose setting also accepts."""
    lines = response.split("\n")
    trimmed = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [response, response.replace("*", "")] + trimmed + [t.replace("*", "") for t in trimmed]


def _checker(registry: Any, instruction_id: str, kwargs: Dict[str, Any], prompt: str) -> Any:
    checker = registry.INSTRUCTION_DICT[instruction_id](instruction_id)
    # Falsy values are dropped as the reference does (the hub copy fills unused kwargs with None).
    checker.build_description(**{k: v for k, v in (kwargs or {}).items() if v})
    args = checker.get_instruction_args()
    if args and "prompt" in args:  # e.g. "repeat the request first" checks against the prompt itself
        checker.build_description(prompt=prompt)
    return checker


def row_seed(row: Dict[str, Any]) -> int:
    return zlib.crc32(row["prompt"].encode("utf-8"))


def check_response(registry: Any, row: Dict[str, Any], response: str) -> List[Dict[str, Any]]:
    """Strict and loose verdicts for each instruction of one IFEval row.

    The checkers are the reference's (lm-eval's), built and checked in its order (a strict pass, then a fresh
    loose pass), so every verdict equals the reference's wherever the reference is deterministic. It is not
    deterministic on one kind of item: a checker whose kwarg is unusable draws a random value (letter_frequency
    with letter "#" counts a randomly chosen letter), so the reference's own verdict there changes from run to
    run. Here Python's `random` is seeded from the row's prompt, so that item gets one fixed verdict, the same on
    every run; it is one of the verdicts the reference can give, not "the" reference verdict."""
    state = random.getstate()
    random.seed(row_seed(row))
    try:
        pairs = list(zip(row["instruction_id_list"], row["kwargs"]))
        strict = []
        for instruction_id, kwargs in pairs:
            checker = _checker(registry, instruction_id, kwargs, row["prompt"])
            strict.append(bool(response.strip()) and bool(checker.check_following(response)))
        variants = loose_variants(response)
        loose = []
        for instruction_id, kwargs in pairs:
            checker = _checker(registry, instruction_id, kwargs, row["prompt"])
            loose.append(any(v.strip() and checker.check_following(v) for v in variants))
    finally:
        random.setstate(state)
    return [{"instruction_id": i, "strict": s, "loose": bool(lo)}
            for (i, _), s, lo in zip(pairs, strict, loose)]


def aggregate(verdicts: List[List[Dict[str, Any]]]) -> Dict[str, Any]:
    """The four IFEval accuracies (percentages) and per-instruction-type instruction-level accuracies."""
    flat = [v for vs in verdicts for v in vs]
    metrics: Dict[str, Any] = {
        "prompt_level_strict_acc": pct(sum(all(v["strict"] for v in vs) for vs in verdicts), len(verdicts)),
        "inst_level_strict_acc": pct(sum(v["strict"] for v in flat), len(flat)),
        "prompt_level_loose_acc": pct(sum(all(v["loose"] for v in vs) for vs in verdicts), len(verdicts)),
        "inst_level_loose_acc": pct(sum(v["loose"] for v in flat), len(flat)),
        "n_prompts": len(verdicts), "n_instructions": len(flat),
    }
    by_type: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for v in flat:
        by_type[v["instruction_id"]].append(v)
    metrics["per_instruction"] = {
        t: {"n": len(vs), "strict_acc": pct(sum(v["strict"] for v in vs), len(vs)),
            "loose_acc": pct(sum(v["loose"] for v in vs), len(vs))}
        for t, vs in sorted(by_type.items())}
    return metrics


@SUITES.register("ifeval", schema=IFEvalConfig)
class IFEval(Suite):
    name = "ifeval"
    summary_columns = {"IFEval (prompt strict)": "prompt_level_strict_acc",
                       "IFEval (prompt loose)": "prompt_level_loose_acc"}

    def load(self) -> List[Item]:
        rows = read_rows(self.cfg.path) if self.cfg.path else load_hub(self.cfg.hf_name, self.cfg.split)
        items = [Item(id=str(r["key"]), prompt=r["prompt"], messages=[{"role": "user", "content": r["prompt"]}],
                      data={"instruction_id_list": list(r["instruction_id_list"]),
                            "kwargs": [dict(k or {}) for k in r["kwargs"]], "prompt": r["prompt"]})
                 for r in rows]
        return self.limited(items)

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        from ifforge.evaluate.ifeval_checkers import lm_eval_module

        registry = lm_eval_module("instructions_registry")
        verdicts = [check_response(registry, it.data, resp) for it, resp in zip(items, responses)]
        rows = [{"id": it.id, "prompt": it.prompt, "response": resp, "checks": vs,
                 "follow_all_strict": all(v["strict"] for v in vs), "follow_all_loose": all(v["loose"] for v in vs)}
                for it, resp, vs in zip(items, responses, verdicts)]
        return rows, aggregate(verdicts)

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        return {"IFEval": {"strict prompt": metrics["prompt_level_strict_acc"],
                           "loose prompt": metrics["prompt_level_loose_acc"],
                           "strict instruction": metrics["inst_level_strict_acc"],
                           "loose instruction": metrics["inst_level_loose_acc"]}}

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        main = headline_tables(self.headline(metrics), label, details={
            "IFEval": f"{metrics['n_prompts']} prompts, {metrics['n_instructions']} instructions"})
        per = markdown_table(
            ["Instruction", "n", "strict", "loose"],
            [[t, m["n"], m["strict_acc"], m["loose_acc"]] for t, m in metrics["per_instruction"].items()],
            title="IFEval instruction-level accuracy per instruction type")
        return main + "\n" + per
