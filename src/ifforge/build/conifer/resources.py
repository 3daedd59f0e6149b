"""The replaceable data files Conifer reads: in-context examples for constraint generation and the list of
format/numeric constraints. Both ship in `ifforge/resources/conifer/`; a config path points at a user's own file.
They are checked before any request is sent (`check_resources`)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

from ifforge.errors import UserError
from ifforge.jsonl import read_jsonl

PACKAGED = Path(__file__).resolve().parents[2] / "resources" / "conifer"
EXAMPLES = PACKAGED / "constraint_examples.json"
FORMAT_NUMERIC = PACKAGED / "format_numeric_constraints.jsonl"
KINDS = ("format", "numeric")


def _path(path: Optional[str], default: Path) -> Path:
    p = Path(path).expanduser() if path else default
    if not p.is_file():
        raise UserError(f"Conifer data file not found: {p}")
    return p


@lru_cache(maxsize=None)
def constraint_examples(path: Optional[str] = None) -> List[Dict[str, Any]]:
    """[{"instruction": str, "constraints": {category: [items]}}, ...] from a JSON file."""
    p = _path(path, EXAMPLES)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list) or not data:
        raise UserError(f"{p}: expected a non-empty JSON list of {{instruction, constraints}} examples")
    for i, ex in enumerate(data, 1):
        ok = (isinstance(ex, dict) and isinstance(ex.get("instruction"), str) and ex["instruction"].strip()
              and isinstance(ex.get("constraints"), dict) and ex["constraints"]
              and all(isinstance(v, list) and v and all(isinstance(x, str) for x in v)
                      for v in ex["constraints"].values()))
        if not ok:
            raise UserError(f"{p}: example {i} needs an 'instruction' string and 'constraints' mapping each "
                            "category to a non-empty list of strings")
    return data


@lru_cache(maxsize=None)
def format_numeric_constraints(path: Optional[str] = None) -> List[Dict[str, str]]:
    """[{"kind": "format"|"numeric", "text": str}, ...] from a JSONL file; numbers are offered as choices in the
    text ("[3, 5, 7]") and the teacher picks one."""
    p = _path(path, FORMAT_NUMERIC)
    rows = list(read_jsonl(p, what="format/numeric constraint list"))
    if not rows:
        raise UserError(f"{p}: the format/numeric constraint list is empty")
    for i, r in enumerate(rows, 1):
        if r.get("kind") not in KINDS or not isinstance(r.get("text"), str) or not r["text"].strip():
            raise UserError(f"{p}: entry {i} needs 'kind' ({' or '.join(KINDS)}) and a non-empty 'text'")
    return rows


def check_resources(examples: Optional[str], format_list: Optional[str], need_format_list: bool) -> None:
    constraint_examples(examples)
    if need_format_list:
        format_numeric_constraints(format_list)
