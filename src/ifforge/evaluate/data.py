"""Loading benchmark data (a local copy or the public hub dataset) and answers produced elsewhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from ifforge.artifacts import content_digest
from ifforge.errors import UserError
from ifforge.jsonl import read_jsonl


def read_rows(path: str | Path, what: str = "benchmark file") -> List[Dict[str, Any]]:
    """Rows of a JSONL file, a JSON list, or a `datasets` directory saved with save_to_disk."""
    p = Path(path).expanduser()
    if p.is_dir():
        import datasets

        try:
            data = datasets.load_from_disk(str(p))
        except FileNotFoundError as e:
            raise UserError(f"{what} {p} is a directory but not a saved dataset ({e})") from None
        if isinstance(data, datasets.DatasetDict):
            raise UserError(f"{what} {p} holds several splits ({', '.join(data)}); point at one of them")
        return [dict(r) for r in data]
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    if p.suffix == ".json":
        rows = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise UserError(f"{what} {p}: expected a JSON list of objects")
        return rows
    return list(read_jsonl(p, what=what))


def load_hub(hf_name: str, split: str = "train", data_files: Optional[str] = None) -> List[Dict[str, Any]]:
    """The public dataset from the hub (real users); offline runs pass `path` instead."""
    import datasets

    try:
        data = datasets.load_dataset(hf_name, split=split, data_files=data_files)
    except Exception as e:  # offline, gated, renamed: say which option avoids the hub
        raise UserError(f"cannot load the hub dataset {hf_name!r} ({type(e).__name__}: {str(e)[:200]}); "
                        f"set the suite's `path` to a local copy") from None
    return [dict(r) for r in data]


def digest(path: Optional[str]) -> Optional[str]:
    """Content hash of a local file or directory (see ifforge.artifacts.content_digest)."""
    return content_digest(path)


def read_responses(path: str) -> Dict[str, Any]:
    """{prompt text: response} from a JSONL of rows with `prompt` and `response` (IFEval's own tool's format)."""
    out: Dict[str, Any] = {}
    for i, row in enumerate(read_jsonl(path, what="responses file"), start=1):
        if "prompt" not in row or "response" not in row:
            raise UserError(f"{path}:{i}: a responses row needs `prompt` and `response` fields")
        out[str(row["prompt"]).strip()] = row["response"]
    return out


def match_responses(prompts: List[str], answers: Dict[str, Any], path: str) -> List[Any]:
    missing = [p for p in prompts if p.strip() not in answers]
    if missing:
        raise UserError(f"{path}: no response for {len(missing)} of {len(prompts)} prompts "
                        f"(matched by prompt text), e.g. {missing[0][:80]!r}")
    return [answers[p.strip()] for p in prompts]
