"""Tolerant reading of LLM replies: short verdicts, JSON wherever it sits, and the one parse-error type."""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Tuple

_WORD = re.compile(r"[a-z]+")


def parse_yes_no(text: Optional[str]) -> Optional[bool]:
    """'Yes'/'No' with any casing, markdown, punctuation or explanation after it; None when it is neither
    or says both in its first words ("Yes and no"). Callers count None as unparseable, never as a verdict."""
    if not text:
        return None
    words = _WORD.findall(text.lower().replace("**", " "))
    head = words[:3]
    yes, no = "yes" in head, "no" in head
    if yes != no:
        return yes
    if not yes and not no:
        # "Judgement: Yes" / "My answer is no." : look for a single verdict word anywhere in a short answer.
        ys, ns = words.count("yes"), words.count("no")
        if len(words) <= 40 and (ys > 0) != (ns > 0):
            return ys > 0
    return None


class Invalid(ValueError):
    """A reply that does not have the expected content; the message is the reject reason. The one parse-error
    type of every build step (`ifforge.build.step.LLMStep` turns it into a rejects.jsonl entry)."""


# The label every reject of a reply stopped at max_tokens carries: its end is missing, whatever it looks like.
CUT_OFF = "the answer was cut off at max_tokens"


def reject_reason(error: Exception, cut_off: bool) -> str:
    """The reject reason for a reply that failed to parse; says so when the reply was cut off at max_tokens,
    since that, not the model, is then usually what to fix."""
    if cut_off and CUT_OFF not in str(error):
        return f"{error} ({CUT_OFF}: raise generator.max_tokens or the step's params)"
    return str(error)


_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def _kind(want: Tuple[type, ...]) -> str:
    return " or ".join({dict: "object", list: "list"}[t] for t in want)


def extract_json(text: Optional[str], want: Tuple[type, ...] = (dict, list)) -> Any:
    """The first JSON value of a type in `want`: the whole reply, else a fenced block, else the first `{`/`[`
    from which a complete value decodes. Models wrap JSON in code fences and put sentences around it."""
    if not text or not text.strip():
        raise Invalid("empty reply")
    candidates = [text.strip()] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for cand in candidates:
        try:
            value = json.loads(cand)
        except ValueError:
            continue
        if isinstance(value, want):
            return value
    for i, ch in enumerate(text):
        if ch not in "{[":
            continue
        try:
            value, _ = _DECODER.raw_decode(text, i)
        except ValueError:
            continue
        if isinstance(value, want):
            return value
    raise Invalid(f"no JSON {_kind(want)} in the reply")
