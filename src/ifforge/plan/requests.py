"""The plan's generator: it answers from the response cache and sends nothing, counting what a run would send.

A request the cache cannot answer comes back as a failed sample (`NOT_SENT`), so the code that asked treats it as
a request that failed within its tolerance (the row is dropped or passes through) and the plan goes on with the
rows it knows. Each (role, step) gets a `Line`: requests known to be missing (their prompts are known), cached
ones, and at most how many more a step sends for rows that only exist once missing replies arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ifforge.llm.base import Backend, Generator
from ifforge.llm.cache import ResponseCache
from ifforge.llm.prices import Price
from ifforge.llm.types import ChatRequest, ChatResult, Completion

NOT_SENT = "not sent: plan=true"
CHARS_PER_TOKEN = 4  # the estimate of a prompt's tokens from its characters (English text, GPT-style tokenizers)


def tokens_of(text_chars: int) -> int:
    return math.ceil(text_chars / CHARS_PER_TOKEN)


def prompt_tokens(messages: Sequence[Dict[str, Any]]) -> int:
    return tokens_of(sum(len(str(m.get("content") or "")) for m in messages))


@dataclass
class Line:
    """One step of one role: what it would ask."""

    stage: str
    role: str
    step: str
    model: str
    price: Price
    missing: int = 0  # requests whose prompts are known and whose answers are not cached: sent for sure
    cached: int = 0  # requests the response cache answers
    more: int = 0  # at most this many more, for rows that depend on replies not received yet
    prompt_tokens: float = 0.0  # estimated, over missing + more
    completion_tokens: float = 0.0  # max_tokens, over missing + more: every reply assumed to run to its limit
    notes: List[str] = field(default_factory=list)  # the assumptions behind `more`

    @property
    def requests(self) -> int:
        return self.missing + self.more

    @property
    def exact(self) -> bool:
        return self.more == 0

    @property
    def cost(self) -> float:
        return self.price.cost(self.prompt_tokens, self.completion_tokens)

    def add_more(self, n: int, prompt: float, completion: float) -> None:
        """`n` requests of unknown prompts, each of about `prompt` tokens and at most `completion` tokens back."""
        self.more += n
        self.prompt_tokens += n * prompt
        self.completion_tokens += n * completion


class Lines:
    """Every line of a plan, in the order steps asked."""

    def __init__(self) -> None:
        self.items: Dict[tuple, Line] = {}

    def get(self, stage: str, gen: "PlanGenerator", step: str) -> Line:
        key = (stage, gen.role, step)
        if key not in self.items:
            self.items[key] = Line(stage, gen.role, step, f"{gen.backend.name}:{gen.model}", gen.price)
        return self.items[key]

    def of(self, stage: str) -> List[Line]:
        return [line for (s, _, _), line in self.items.items() if s == stage]


class _Unsent(Backend):
    """Stands in for the real backend (whose name keys the cache) and is never asked: nothing is sent."""

    def __init__(self, name: str):
        super().__init__(None)
        self.name = name

    def run(self, calls: Any, on_done: Any) -> None:
        raise AssertionError("the plan sends nothing")


def open_cache(path: Optional[str]) -> Optional[ResponseCache]:
    """The response cache if its file exists (a plan creates nothing)."""
    return ResponseCache(path) if path and Path(str(path)).is_file() else None


class PlanGenerator(Generator):
    def __init__(self, cfg: Any, cache: Optional[ResponseCache], role: str, stage: str, lines: Lines):
        from ifforge.llm import BACKENDS
        from ifforge.llm.prices import price_for
        from ifforge.registry import discover

        discover("ifforge.llm.backends")
        backend = _Unsent(BACKENDS.get(str(cfg.name)).name)  # the class's name: no backend is made or checked
        super().__init__(backend, cfg, cache=cache if cfg.get("cache") else None, role=role)
        self._price = price_for(cfg)
        self.stage, self.lines = stage, lines
        self.last_missed: List[bool] = []  # per request of the last `generate`: its answer is not cached

    def generate(self, requests: Sequence[ChatRequest], desc: str = "generate") -> List[ChatResult]:
        calls, owners, _keys, done = self.prepare(requests)
        line = self.lines.get(self.stage, self, desc)
        for i, call in enumerate(calls):
            if done[i] is not None:
                line.cached += 1
                continue
            line.missing += 1
            line.prompt_tokens += prompt_tokens(call.messages)
            line.completion_tokens += int(call.params.get("max_tokens") or 0)
            done[i] = Completion(error=NOT_SENT)
        results = self.results(requests, owners, done)
        self.last_missed = [any(s.error == NOT_SENT for s in r.samples) for r in results]
        return results

    def check_tolerance(self) -> None:
        """Unanswered requests are the plan's subject, not failures."""

    def close(self) -> None:
        pass
