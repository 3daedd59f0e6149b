"""What every build step gets: the generator(s), the rejects file, and per-step accounting.

A step is a small object with `name`, `reads`, `writes` and `__call__(rows, ctx) -> rows`. Rows are plain dicts.
Steps that ask an LLM are `ifforge.build.step.LLMStep`s.
`check_wiring` proves, before any request is sent, that every field a step reads is written by someone earlier.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ifforge.errors import UserError
from ifforge.llm import ChatRequest, ChatResult, Generator

log = logging.getLogger("ifforge")
Row = Dict[str, Any]


class Step:
    name: str = "step"
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def __call__(self, rows: List[Row], ctx: "BuildContext") -> List[Row]:
        raise NotImplementedError


class BuildOption:
    """What a strategy and a response mode have in common: their config node, the steps they add, and what the
    build stage asks of them before any request is sent."""

    # Dotted config keys that cannot change the output (devices, batch sizes): left out of the fingerprint.
    runtime_fields: tuple[str, ...] = ()

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def uses_judge(self) -> bool:
        return False

    def preflight(self) -> None:
        """Cheap checks (data files, option ranges, a nested model's backend); raise UserError on what the user
        must fix."""

    def steps(self) -> Sequence[Step]:
        raise NotImplementedError


def check_wiring(steps: Sequence[Step], available: Iterable[str], final_reads: Iterable[str] = ()) -> None:
    have = set(available)
    for step in steps:
        missing = [f for f in step.reads if f not in have]
        if missing:
            raise UserError(f"step {step.name!r} reads {missing}, which no earlier step writes (have: {sorted(have)})")
        have.update(step.writes)
    missing = [f for f in final_reads if f not in have]
    if missing:
        raise UserError(f"assembly reads {missing}, which no step writes (have: {sorted(have)})")


class Rejects:
    """`rejects.jsonl`: every item dropped anywhere, with its step, raw LLM output and reason."""

    def __init__(self, path: Path, stage: str = "build"):
        self.path = path
        self.stage = stage
        self.counts: Dict[str, int] = {}
        self.reasons: Counter = Counter()  # (step, reason with numbers as N): what an empty build reports
        self._f = path.open("w", encoding="utf-8")  # a fresh file per build attempt

    def add(self, step: str, item: Any, reason: str, raw: Optional[str] = None) -> None:
        self.counts[step] = self.counts.get(step, 0) + 1
        self.reasons[(step, re.sub(r"\d+", "N", reason)[:120])] += 1
        seed_id = item.get("seed_id") if isinstance(item, dict) else None
        rec = {"stage": self.stage, "step": step, "seed_id": seed_id, "reason": reason, "raw": raw, "item": item}
        self._f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
        self._f.flush()

    def top(self, k: int = 3) -> str:
        """The k commonest reject reasons, e.g. `decompose: cut off at max_tokens (N) x12`."""
        return "; ".join(f"{step}: {reason} x{n}" for (step, reason), n in self.reasons.most_common(k))

    def close(self) -> None:
        self._f.close()


@dataclass
class BuildContext:
    cfg: Any
    out: Path
    rejects: Rejects
    make_generator: Callable[[str, Any], Generator]  # (role, config node or None) -> generator, built on first use
    step_counts: Dict[str, Dict[str, int]] = field(default_factory=dict)  # in/out/rejected/failed per step
    tallies: Dict[str, Dict[str, int]] = field(default_factory=dict)  # the steps' own counters (`count`)
    replies: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # per step: replies read, unreadable, structured
    failed: Dict[str, int] = field(default_factory=dict)  # per step: rows lost to failed requests (tolerated)
    _generators: Dict[str, Generator] = field(default_factory=dict)

    def generator(self, role: str = "generator", node: Any = None) -> Generator:
        """The generator for `role`: `cfg.generator`/`cfg.judge` by default, or any generator-schema `node`
        (e.g. a student model under the response config), cached per role."""
        if role not in self._generators:
            self._generators[role] = self.make_generator(role, node)
        return self._generators[role]

    @property
    def generators(self) -> Dict[str, Generator]:
        return dict(self._generators)

    def reject(self, step: str, item: Any, reason: str, raw: Optional[str] = None) -> None:
        self.rejects.add(step, item, reason, raw)

    def structured(self, role: str = "generator", node: Any = None) -> bool:
        """Whether the role's generator holds replies to the step's schema (`structured: json`)."""
        return str(self.generator(role, node).cfg.get("structured") or "off") == "json"

    def replied(self, step: str, structured: bool, unreadable: bool = False) -> None:
        """Account a reply the step tried to read (the dataset card's format-reject rate)."""
        counts = self.replies.setdefault(step, {"replies": 0, "unreadable": 0, "structured": structured})
        counts["unreadable" if unreadable else "replies"] += 1

    def count(self, step: str, key: str, n: int = 1) -> None:
        """Add to a step's own counter (e.g. variants kept), for the strategy's statistics and the log."""
        counts = self.tallies.setdefault(step, {})
        counts[key] = counts.get(key, 0) + n

    def ask(self, step: str, rows: Sequence[Row], requests: Sequence[ChatRequest],
            role: str = "generator", node: Any = None, allow_cut_off: bool = False) -> List[Optional[ChatResult]]:
        """Send one request per row. A row comes back as None when its request failed (only possible within the
        generator's `max_failed_fraction`: past it, the generator stops the stage) or when its reply was cut off at
        max_tokens (a reject, unless the generator keeps cut-off replies or the step reads only the reply's start,
        `allow_cut_off`)."""
        gen = self.generator(role, node)
        results = gen.generate(list(requests), desc=step)
        keep_cut_off = allow_cut_off or bool(gen.cfg.get("keep_cut_off"))
        out: List[Optional[ChatResult]] = []
        for row, req, res in zip(rows, requests, results):
            if not res.ok:
                self.failed[step] = self.failed.get(step, 0) + 1  # lost, and logged in failures.jsonl
                out.append(None)
                continue
            cut = next((s for s in res.samples if s.finish_reason == "length"), None)
            if cut is not None and not keep_cut_off:
                limit = req.params.get("max_tokens") or gen.cfg.get("max_tokens")
                self.reject(step, row, f"cut off at max_tokens ({limit})", raw=cut.text)
                out.append(None)
                continue
            out.append(res)
        return out

    def run_steps(self, steps: Sequence[Step], rows: List[Row]) -> List[Row]:
        for step in steps:
            before = self.rejects.counts.get(step.name, 0)
            n_in = len(rows)
            rows = step(rows, self)
            rejected = self.rejects.counts.get(step.name, 0) - before
            own = self.tallies.get(step.name, {})
            self.step_counts[step.name] = {"in": n_in, "out": len(rows), "rejected": rejected}
            if self.failed.get(step.name):
                self.step_counts[step.name]["failed"] = self.failed[step.name]
            log.info("[build] %-24s in=%d out=%d rejected=%d%s%s", step.name, n_in, len(rows), rejected,
                     f" failed={self.failed[step.name]}" if self.failed.get(step.name) else "",
                     "".join(f"; {k}={v}" for k, v in own.items()))
        return rows


def user_message(text: str) -> List[Dict[str, str]]:
    return [{"role": "user", "content": text}]
