"""What goes into and comes out of the generator layer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

Messages = List[Dict[str, str]]


@dataclass
class ChatRequest:
    """One chat request. `params` override the generator's sampling defaults (temperature, top_p, max_tokens,
    seed, stop). `n` samples are drawn as n separate calls, each cached under its own sample index."""

    messages: Messages
    params: Dict[str, Any] = field(default_factory=dict)
    n: int = 1
    metadata: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Call:
    """One backend call: a request's messages with fully resolved sampling params and a sample index."""

    messages: Messages
    params: Dict[str, Any]
    sample_index: int = 0


@dataclass
class Completion:
    text: Optional[str] = None
    finish_reason: Optional[str] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    error: Optional[str] = None  # set when the call never succeeded; text is None then
    raw: Optional[str] = None  # the raw body for malformed responses, kept for rejects.jsonl
    cached: bool = False
    retries: int = 0
    # Per generated token, as OpenAI's chat `choices[0].logprobs.content`: {"token", "logprob", "top_logprobs":
    # [{"token", "logprob"}, ...]}. Only when the call's params asked (`logprobs: true`, `top_logprobs: k`).
    logprobs: Optional[List[Dict[str, Any]]] = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@dataclass
class ChatResult:
    request: ChatRequest
    samples: List[Completion]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.samples)

    @property
    def text(self) -> Optional[str]:
        return self.samples[0].text if self.samples else None

    @property
    def texts(self) -> List[Optional[str]]:
        return [s.text for s in self.samples]

    @property
    def error(self) -> Optional[str]:
        errs = [s.error for s in self.samples if s.error]
        return "; ".join(errs) if errs else None


@dataclass
class GeneratorStats:
    calls: int = 0  # backend requests actually sent (cache hits excluded; retries counted separately)
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        d["cost_usd"] = round(d["cost_usd"], 6)
        return d


def merge_reports(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Any]:
    """Two `Generator.report()`s of one role (a generator closed and made again) as one: counts added, overall and
    per step; the later price unless it was never looked up."""
    counts = list(GeneratorStats().as_dict())

    def add(x: Dict[str, Any], y: Dict[str, Any]) -> Dict[str, Any]:
        return {k: round(x.get(k, 0) + y.get(k, 0), 6) for k in counts}

    steps = dict(a.get("steps") or {})
    for name, s in (b.get("steps") or {}).items():
        steps[name] = add(steps.get(name, {}), s)
    price = b.get("price")
    if a.get("price") and (price is None or price.get("known") is None):
        price = a["price"]
    return {**a, **b, **add(a, b), "steps": steps, "price": price}


def logprobs_wanted(params: Dict[str, Any]) -> Optional[int]:
    """How many top alternatives per token a call asked for (`top_logprobs`, 0 when unset), or None when it did not
    ask for log-probabilities at all. A bad `top_logprobs` raises ValueError."""
    if not params.get("logprobs"):
        return None
    k = params.get("top_logprobs") or 0
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"top_logprobs must be a whole number >= 0, not {k!r}")
    return k


def covering(entries: List[Dict[str, Any]], text: str) -> List[Dict[str, Any]]:
    """The shortest run of leading token entries whose token strings reach the length of `text`: the tokens of the
    reply proper, without an end-of-sequence token or the stop string the text was cut before. All of them when
    they never reach it (tokens that decode alone to less than their share of the text)."""
    if not text:
        return []
    length = 0
    for n, entry in enumerate(entries, 1):
        length += len(entry["token"])
        if length >= len(text):
            return entries[:n]
    return entries


def json_schema(params: Dict[str, Any]) -> str:
    """The JSON schema of a call's OpenAI-style `response_format` (what `structured: json` sends) as canonical
    text, or "" without one: how the local backends read it."""
    fmt = params.get("response_format") or {}
    if fmt.get("type") != "json_schema":
        return ""
    return json.dumps(fmt["json_schema"]["schema"])  # property order kept: it is the order decoded
