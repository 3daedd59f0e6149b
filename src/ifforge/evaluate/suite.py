"""The suite interface and the options every suite shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from omegaconf import MISSING


@dataclass
class SuiteTemplatesConfig:
    judge: Optional[str] = None  # a user's own Jinja2 judge prompt instead of the packaged one


@dataclass
class SuiteConfig:
    name: str = MISSING
    path: Optional[str] = None  # a local copy (file or directory); null: the public hub dataset `hf_name`
    hf_name: Optional[str] = None
    split: str = "train"
    limit: Optional[int] = None  # the first N items (smoke runs, demos)
    responses: Optional[str] = None  # JSONL of {prompt, response} produced elsewhere: scored, nothing generated
    max_tokens: Optional[int] = None  # the candidate's answer budget here (null: candidate.max_tokens)
    templates: SuiteTemplatesConfig = field(default_factory=SuiteTemplatesConfig)  # eval.<suite>.templates.judge
    # this suite's judge model (null: judge.model): the judge's backend and settings with another model, for a
    # benchmark whose authors prescribe their own judge (AlpacaEval 2.0: GPT-4 Turbo; MT-Bench: GPT-4)
    judge_model: Optional[str] = None
    # fail | skip: what a run does when the benchmark cannot be had (no local copy at `path`, the hub unreachable,
    # its official files missing). fail (paper runs): a one-line error before anything is paid for. skip (the
    # demo, smoke runs): a `path` that does not exist falls back to the hub, and a benchmark found nowhere is left
    # out of this run with one line saying how to get it.
    if_missing: str = "fail"


@dataclass
class Item:
    """One benchmark prompt. `prompt` is the text a responses file is matched on; `messages` what the model under
    test is asked (the backend applies its chat template); `data` the fields its scorer needs."""

    id: str
    prompt: str
    messages: List[Dict[str, str]]
    data: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SuiteContext:
    """What a suite may use: generators are made on first use, so scoring given answers loads no model."""

    candidate: Callable[[], Any]
    judge: Callable[[], Any]
    build_dir: Optional[Path] = None  # the upstream build artifact, when one is wired in
    reference_dir: Optional[str] = None  # a local copy of the benchmarks' official files (paths.reference)
    judge_concurrency: Optional[int] = None  # how many items a reference protocol judges at once


class Suite:
    name = "suite"
    uses_judge = False  # whether the `judge` generator scores this suite (its config joins the fingerprint)
    uses_build = False  # whether the suite can read an upstream build artifact's split
    # The number(s) a paper table reports, as {column label: metric key}: a sweep summary's default columns.
    summary_columns: Dict[str, str] = {}

    def __init__(self, cfg: Any, ctx: SuiteContext):
        self.cfg = cfg
        self.ctx = ctx

    # A suite with `protocol: reference | ifforge`: the loader of its benchmark's official files (ifforge.evaluate
    # .reference), called with the local copy's folder (or None: download).
    official: Any = None
    # Bumped when a suite's arithmetic changes, so that results scored the old way are never reused.
    scoring_version = 1
    # The distribution whose code scores the suite (alpaca-eval, lm-eval): its installed version joins the
    # fingerprint, so an upgrade that changes the arithmetic never reuses the old scores.
    scored_by: Optional[str] = None

    @classmethod
    def library_version(cls) -> Optional[str]:
        """The installed version of `scored_by` (None when it is not installed: preflight says how to get it)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(cls.scored_by) if cls.scored_by else None
        except PackageNotFoundError:
            return None

    @property
    def reference(self) -> bool:
        """Whether this suite scores with its benchmark's own protocol (`protocol: reference`)."""
        return self.official is not None and str(self.cfg.protocol) == "reference"

    @classmethod
    def preflight(cls, cfg: Any, reference_dir: Optional[str]) -> None:
        """Cheap checks before any request: the protocol's name, and that its official files can be had."""
        if cls.official is None:
            return
        if str(cfg.protocol) not in ("reference", "ifforge"):
            from ifforge.errors import UserError

            raise UserError(f"eval.{cls.name}.protocol must be reference or ifforge (got {cfg.protocol!r})")
        if str(cfg.protocol) == "reference":
            cls.official(reference_dir)  # fetched (or found) and hash-checked before any answer is paid for

    @classmethod
    def judge_budget(cls, cfg: Any) -> Optional[Tuple[int, int]]:
        """(judge prompt template tokens, judge reply tokens) for plan=true, where they come from the benchmark's
        own package rather than an ifforge template and the judge's max_tokens; None: those."""
        return None

    def load(self) -> List[Item]:
        raise NotImplementedError

    def answer(self, items: List[Item], generator: Any) -> List[Optional[str]]:
        """One greedy turn per item; None where the call failed."""
        from ifforge.llm import ChatRequest

        params = {"max_tokens": int(self.cfg.max_tokens)} if self.cfg.max_tokens else {}
        results = generator.generate([ChatRequest(messages=it.messages, params=dict(params)) for it in items],
                                     desc=f"answer {self.name}")
        return [r.text if r.ok else None for r in results]

    def score(self, items: List[Item], responses: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        """Per-item rows (written to results.jsonl) and the suite's metrics."""
        raise NotImplementedError

    @classmethod
    def headline(cls, metrics: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        """The suite's main numbers as {table title: {column: value}}: its table and cross-run comparisons."""
        raise NotImplementedError

    def table(self, metrics: Dict[str, Any], label: str) -> str:
        """A Markdown table of `metrics` laid out like the papers' tables, with `label` as the model column."""
        raise NotImplementedError

    def limited(self, items: List[Item]) -> List[Item]:
        return items[: int(self.cfg.limit)] if self.cfg.limit is not None else items
