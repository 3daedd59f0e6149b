"""Asking the judge and reading its answers tolerantly.

Every parser returns None for an answer it cannot read; callers count those as `unparseable` and leave them out of
every rate, so a garbled judge answer is reported, never scored as a pass or a fail.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence

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


def ask(generator: Any, prompts: Sequence[str], desc: str) -> List[Dict[str, Optional[str]]]:
    """One single-turn request per prompt; returns {"text", "error"} per prompt (text None when the call failed)."""
    from ifforge.llm import ChatRequest

    results = generator.generate([ChatRequest(messages=[{"role": "user", "content": p}]) for p in prompts], desc=desc)
    return [{"text": r.text if r.ok else None, "error": r.error} for r in results]

