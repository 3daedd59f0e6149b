"""Runs one suite into one directory: load, answer (or read given answers), score, write.

Files: `results.jsonl` (every prompt, response, per-check verdicts, raw judge output), `metrics.json`, `table.md`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ifforge.artifacts import write_json_atomic
from ifforge.errors import StageFailed, UserError
from ifforge.evaluate.data import match_responses, read_responses
from ifforge.evaluate.suite import Suite
from ifforge.jsonl import write_jsonl

log = logging.getLogger("ifforge")
HEADLINE_SKIP = ("per_instruction", "per_category", "per_level", "candidate", "judge", "confusion", "per_turn")
# A suite's loaded items and the candidate's answers to them (None where the generation failed).
Answered = Tuple[List[Any], List[Any]]


def given_responses(suite: Suite, items: List[Any]) -> List[Any]:
    path = str(suite.cfg.responses)
    return match_responses([it.prompt for it in items], read_responses(path), path)


def answer_suite(suite: Suite, generator: Any) -> Answered:
    """The suite's items, answered by `generator` (the model under test)."""
    items = suite.load()
    return items, (suite.answer(items, generator) if items else [])


def run_suite(suite: Suite, out: Path, about: Dict[str, Any], answered: Optional[Answered] = None) -> Dict[str, Any]:
    """`about`: {"label", "candidate", "judge"} recorded with the scores; `answered`: what `answer_suite` returned
    earlier, so that nothing is loaded or answered twice. Returns the manifest stats."""
    items = answered[0] if answered is not None else suite.load()
    if not items:
        raise UserError(f"eval.{suite.name}: the benchmark has no items (check path/limit)")
    log.info("[eval/%s] %d items", suite.name, len(items))
    failures = 0
    if suite.cfg.responses:
        responses = given_responses(suite, items)
    else:
        # A failed generation is never scored: past the candidate's max_failed_fraction the generator has already
        # stopped the stage; within it, the item is left out and counted.
        answers = answered[1] if answered is not None else suite.answer(items, suite.ctx.candidate())
        failures = sum(a is None for a in answers)
        if failures:
            log.warning("[eval/%s] %d generation(s) failed; left out of every score (candidate.max_failed_fraction)",
                        suite.name, failures)
        items = [it for it, a in zip(items, answers) if a is not None]
        responses = [a for a in answers if a is not None]
        if not items:
            raise StageFailed(f"eval.{suite.name}: every generation failed; nothing to score")
    rows, metrics = suite.score(items, responses)
    metrics["generation_failures"] = failures
    metrics["responses_file"] = str(suite.cfg.responses) if suite.cfg.responses else None
    metrics["candidate"] = None if suite.cfg.responses else about["candidate"]
    if suite.uses_judge:  # judge drift changes scores: every row says who judged it
        metrics["judge"] = about["judge"]
        for row in rows:
            row["judge_model"] = f"{about['judge']['backend']}:{about['judge']['model']}"
    write_jsonl(out / "results.jsonl", rows)
    if suite.uses_judge and (metrics.get("scored_verdicts") == 0 or not _scored(suite, metrics)):
        # a judge that returned no readable verdict at all: any number would be an artefact
        # results.jsonl stays for inspection; without a manifest nothing is reused.
        raise StageFailed(f"eval.{suite.name}: the judge scored nothing ({len(items)} items; {_unreadable(metrics)}); "
                          f"every answer and raw verdict: {out / 'results.jsonl'}; a stronger judge (judge=...) "
                          f"or judge.cache=refresh if the endpoint served wrong answers")
    write_json_atomic(out / "metrics.json", metrics)
    label = f"responses: {Path(str(suite.cfg.responses)).name}" if suite.cfg.responses else about["label"]
    (out / "table.md").write_text(suite.table(metrics, label), encoding="utf-8")
    headline = {k: v for k, v in metrics.items() if k not in HEADLINE_SKIP and not isinstance(v, (dict, list))}
    log.info("[eval/%s] %s", suite.name, headline)
    return headline


def _scored(suite: Suite, metrics: Dict[str, Any]) -> bool:
    """Whether any headline number was computed."""
    values = [v for table in suite.headline(metrics).values() for v in table.values()]
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _unreadable(metrics: Dict[str, Any]) -> str:
    counts = {k: v for k, v in metrics.items() if "unparse" in k and isinstance(v, int)}
    return ", ".join(f"{k}={v}" for k, v in counts.items()) or "no headline number could be computed"
