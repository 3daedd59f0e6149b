"""The training split of a build artifact, checked against what the objective needs."""

from __future__ import annotations

from pathlib import Path
from typing import Hashable, List

from ifforge.errors import UserError
from ifforge.train.settings import Objective


def load_split(build_dir: Path, split: str, objective: Objective):
    """`split` of the build's DatasetDict, with the columns `objective` trains on."""
    from ifforge.build.save import load_splits

    splits = load_splits(build_dir)
    if split not in splits:
        raise UserError(f"objective {objective.name!r} trains on split {split!r}, which the build artifact "
                        f"{build_dir} does not have (it has: {', '.join(sorted(splits)) or 'none'}); "
                        "choose another with objective.split=NAME or build with an augmentation that makes it")
    ds = splits[split]
    missing = [c for c in objective.columns if c not in ds.column_names]
    if missing:
        raise UserError(f"split {split!r} has no column(s) {missing} that objective {objective.name!r} needs "
                        f"(it has {ds.column_names})")
    if len(ds) == 0:
        raise UserError(f"split {split!r} of {build_dir} is empty")
    return ds


def group_ids(ds) -> List[Hashable]:
    """Each row's group for grouped batches; a row without `group_id` is a group of its own."""
    if "group_id" not in ds.column_names:
        raise UserError("objective.group_batches=true needs a `group_id` column in the training split "
                        f"(it has {ds.column_names})")
    return [gid if gid is not None else ("row", i) for i, gid in enumerate(ds["group_id"])]
