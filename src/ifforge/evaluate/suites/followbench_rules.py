"""FollowBench's rule-scored items: sources whose answer can be checked without a judge.

Written for ifforge from the benchmark's data. Two kinds:
- answer rules read the item's `target` (one verdict for the whole item). Answers are compared with surrounding
  whitespace stripped (a trailing newline from a decoder is not a constraint violation).
- constraint rules: the five summarisation sources of the mixed category add one checkable constraint per level
  (sentence and word counts, required and banned words, tense), so level k is checked against the first k of
  them and gets one verdict per constraint, which makes its SSR exact.
The two open-ended format examples with countable constraints (22, 30) stay with the judge, which sees the whole
constraint path.
"""

from __future__ import annotations

import ast
import re
import string
from typing import Any, Callable, Dict, List, Optional


def _exact(response: str, target: str) -> bool:
    return response.strip() == target.strip()


def _lines_in_target(response: str, target: str) -> bool:
    """Every extracted event (one per line) is one of the acceptable ones."""
    allowed = {t.strip() for t in target.split("\n")}
    return all(line.strip() in allowed for line in response.strip().split("\n"))


def _one_of(response: str, target: str) -> bool:
    options = ast.literal_eval(target) if target.strip().startswith("[") else [target]
    return response.strip() in [str(o).strip() for o in options]


def _last_match(pattern: str) -> Callable[[str, str], bool]:
    """The last answer-shaped string in the response (models reason first, answer last) equals the target."""
    regex = re.compile(pattern)

    def check(response: str, target: str) -> bool:
        found = regex.findall(response)
        return bool(found) and found[-1] == target.strip()

    return check


def _contains(response: str, target: str) -> bool:
    return target.strip() in response


RULES: Dict[str, Callable[[str, str], bool]] = {
    "E2E": _exact,
    "WIKIEVENTS": _lines_in_target,
    "CONLL2003": _one_of,
    "text_editing": _exact,
    "BBH_logical": _last_match(r"\([A-Z]\)"),
    "BBH_time": _last_match(r"\d{2}/\d{2}/\d{4}"),
    "self_made_space": _contains,
    "gsm_8k": _last_match(r"\$\d+"),
}


def example_template_match(response: str, target: str) -> bool:
    """Example-category items give the answer's shape: `target` is "{instruction}\\n<shape with {answer}>", with
    literal braces doubled. The answer must have exactly that shape (anything on one line where {answer} is)."""
    shape = target.replace("{instruction}\n", "", 1).replace("{{", "{").replace("}}", "}")
    pattern = ".*".join(re.escape(part) for part in shape.split("{answer}"))
    return re.fullmatch(pattern, response.strip()) is not None


def sentences(text: str) -> List[str]:
    """Sentences as the benchmark counts them: pieces between . ! ? that are not empty."""
    return [p for p in re.split(r"[.!?]", text) if p.strip()]


def has_word(text: str, word: str) -> bool:
    return re.search(r"\b" + re.escape(word) + r"\b", text) is not None


def _nth_has(n: int, word: str) -> Callable[[str], bool]:
    return lambda t: len(sentences(t)) >= n and has_word(sentences(t)[n - 1], word)


def _present_perfect(text: str) -> bool:
    return re.search(r"\b(has|have)\s+\w+", text) is not None


def _present_progressive(text: str) -> bool:
    return re.search(r"\b(am|is|are)\s+\w+ing\b", text) is not None


def _words(text: str) -> int:
    return len(text.split())


# One checkable constraint per level, in the order the levels add them (read off each level's instruction).
CONSTRAINTS: Dict[str, List[Callable[[str], bool]]] = {
    "cnn_dailymail": [
        lambda t: len(sentences(t)) == 3,
        lambda t: all(_words(s) < 15 for s in sentences(t)),
        lambda t: _nth_has(1, "Potter")(t) and _nth_has(2, "actor")(t) and _nth_has(3, "films")(t),
        lambda t: not _nth_has(2, "lavish")(t),
        lambda t: len(sentences(t)) >= 3 and _present_perfect(sentences(t)[2]),
    ],
    "xsum": [
        lambda t: len(sentences(t)) == 1,
        lambda t: _words(t) < 20,
        lambda t: not has_word(t, "Newton Stewart"),
        _present_progressive,
        lambda t: has_word(t, "operation"),
    ],
    "samsum": [
        lambda t: len(sentences(t)) == 1,
        lambda t: _words(t) < 15,
        lambda t: has_word(t, "stuff"),
        lambda t: re.search(r"procrast", t, re.IGNORECASE) is None,
        lambda t: sum(ch in string.punctuation for ch in t) == 1,
    ],
    "gigaword": [
        lambda t: _words(t) == 8,
        lambda t: not any(ch in string.punctuation for ch in t),
        lambda t: t == t.lower(),
        lambda t: not has_word(t, "bus"),
        lambda t: has_word(t, "in"),
    ],
    "arxiv": [
        lambda t: len(sentences(t)) == 1,
        lambda t: _words(t) <= 20,
        lambda t: t.startswith("We"),
        lambda t: has_word(t, "activations"),
        lambda t: not has_word(t, "transformer"),
    ],
}


def rule_for(category: str, source: str) -> Optional[Callable[[str, str], bool]]:
    if category == "example":
        return example_template_match
    return RULES.get(source)


def rule_verdicts(category: str, row: Dict[str, Any], response: str) -> Optional[List[bool]]:
    """Verdicts for an item a rule can score (one per constraint for constraint rules, one for the whole item
    for answer rules); None when the item needs the judge."""
    source = str(row.get("source", ""))
    if category == "mixed" and source in CONSTRAINTS:
        text = response.strip()
        return [bool(check(text)) for check in CONSTRAINTS[source][: int(row["level"])]]
    rule = rule_for(category, source)
    return None if rule is None else [bool(rule(response, str(row.get("target", ""))))]
