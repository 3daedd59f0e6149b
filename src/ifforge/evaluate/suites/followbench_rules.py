"""FollowBench's rule-scored items: sources whose answer can be checked without a judge.

Written for ifforge from the benchmark's data: each rule reads the item's `target`. Answers are compared with
surrounding whitespace stripped (a trailing newline from a decoder is not a constraint violation). Sources whose
constraints are counts and word rules per level (cnn_dailymail, xsum, samsum, gigaword, arxiv; format examples 22
and 30) go to the judge here, which sees the whole constraint path.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Callable, Dict, Optional


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


def rule_for(category: str, source: str) -> Optional[Callable[[str, str], bool]]:
    if category == "example":
        return example_template_match
    return RULES.get(source)


def rule_verdict(category: str, row: Dict[str, Any], response: str) -> Optional[bool]:
    rule = rule_for(category, str(row.get("source", "")))
    return None if rule is None else bool(rule(response, str(row.get("target", ""))))
