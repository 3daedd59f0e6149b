"""Asking the judge and reading its answers tolerantly.

Every parser returns None for an answer it cannot read; callers count those as `unparseable` and leave them out of
every rate, so a garbled judge answer is reported, never scored as a pass or a fail.

With `judge.structured=json`, ifforge's own judge prompts (`protocol: ifforge`) render their JSON variant and the
judge's reply is held to a `Shape`'s schema; `ask` turns the JSON back into the text the parsers read ("Yes",
"[[7]]", a verdict list), so one parser serves both. The reference protocols keep their official prompts and
parsing, and the model under test always answers freely: constraining it would change what is measured.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ifforge.llm.structured import obj, response_format
from ifforge.parsing import parse_yes_no

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
_TOKEN = re.compile(r"[A-Za-z]+")
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]|rating\W{0,3}\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*/\s*10\b",
                     re.IGNORECASE)


def parse_verdict(text: Optional[str]) -> Optional[bool]:
    """Yes/No with any casing, markdown, punctuation or explanation; None when it is neither or both."""
    return parse_yes_no(text)


def parse_verdict_list(text: Optional[str], n: int) -> Optional[List[bool]]:
    """The last bracketed list of exactly `n` YES/NO verdicts in `text` (quotes, casing and spaces tolerated);
    a single Yes/No answer is accepted when one verdict is expected. None otherwise."""
    if not text:
        return None
    for inner in reversed(_BRACKETS.findall(text)):
        parts = [p.strip() for p in inner.split(",") if p.strip()]
        words = [_TOKEN.findall(p) for p in parts]
        if len(parts) == n and all(len(w) == 1 and w[0].lower() in ("yes", "no") for w in words):
            return [w[0].lower() == "yes" for w in words]
    if n == 1:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return None if not lines else (lambda v: None if v is None else [v])(parse_verdict(lines[-1]))
    return None


def parse_rating(text: Optional[str], low: float = 1.0, high: float = 10.0) -> Optional[float]:
    """A 1-10 score written as "[[7]]", "Rating: 7" or "7/10" (the last one written wins); None when absent or
    out of range."""
    if not text:
        return None
    found = [next(g for g in m.groups() if g is not None) for m in _RATING.finditer(text)]
    if not found:
        return None
    value = float(found[-1])
    return value if low <= value <= high else None


@dataclass(frozen=True)
class Shape:
    """A structured judge reply: its JSON schema, and the free text the suite's parser reads from it."""

    name: str
    schema: Dict[str, Any]
    text: Callable[[Any], str]


VERDICT = Shape("verdict", obj(verdict={"type": "string", "enum": ["Yes", "No"]}), lambda v: v["verdict"])
RATING = Shape("rating", obj(rating={"type": "integer", "minimum": 1, "maximum": 10}), lambda v: f"[[{v['rating']}]]")


def verdict_list(n: int) -> Shape:
    items = {"type": "array", "items": {"type": "string", "enum": ["YES", "NO"]}, "minItems": n, "maxItems": n}
    return Shape("verdicts", obj(verdicts=items), lambda v: json.dumps(v["verdicts"]))


def structured(generator: Any) -> bool:
    return str(generator.cfg.get("structured") or "off") == "json"


def shape_params(shape: Shape, on: bool) -> Dict[str, Any]:
    """The request params that hold a reply to `shape` when `on` (a structured judge), else none."""
    return {"response_format": response_format(shape.name, shape.schema)} if on else {}


def ask(generator: Any, prompts: Sequence[str], desc: str,
        shape: Union[None, Shape, Sequence[Shape]] = None) -> List[Dict[str, Optional[str]]]:
    """One single-turn request per prompt; returns {"text", "error"} per prompt (text None when the call failed).
    `shape` (one, or one per prompt): what a structured judge's reply is held to."""
    from ifforge.llm import ChatRequest

    shapes = list(shape) if isinstance(shape, (list, tuple)) else [shape] * len(prompts)
    use = shape is not None and structured(generator)
    requests = [ChatRequest(messages=[{"role": "user", "content": p}],
                            params=shape_params(s, use))
                for p, s in zip(prompts, shapes)]
    results = generator.generate(requests, desc=desc)
    return [{"text": (as_text(r.text, s) if use else r.text) if r.ok else None, "error": r.error}
            for r, s in zip(results, shapes)]


def as_text(reply: str, shape: Shape) -> str:
    """The structured reply as the text its parser reads; an unreadable one stays as it is (the parser then
    reports it as unparseable)."""
    try:
        return shape.text(json.loads(reply))
    except (ValueError, KeyError, TypeError):
        return reply

