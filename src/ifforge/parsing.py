"""Tolerant parsing of short LLM verdicts."""

from __future__ import annotations

import re
from typing import Optional

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
