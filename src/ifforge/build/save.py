"""Write a build's splits: a `datasets.DatasetDict` under data/ and one JSONL per split."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from ifforge.jsonl import write_jsonl


def save_splits(splits: Dict[str, List[Dict[str, Any]]], out: Path) -> Dict[str, int]:
    import datasets

    datasets.disable_progress_bars()  # a save of a few MB needs no bar; ours show the long work
    dd = datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items() if rows})
    dd.save_to_disk(str(out / "data"))
    for name, rows in splits.items():
        write_jsonl(out / f"{name}.jsonl", rows)
    return {name: len(rows) for name, rows in splits.items()}


def load_splits(artifact_dir: str | Path):
    """The build artifact's DatasetDict (what the train and eval stages read)."""
    import datasets

    return datasets.load_from_disk(str(Path(artifact_dir) / "data"))
