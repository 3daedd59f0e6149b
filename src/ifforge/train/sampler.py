"""Grouped batches (DeMoRecon appendix A): every batch holds whole groups, a seed instruction with all of its
variants (rows sharing `group_id`), so the model sees a seed and its small modifications in the same step.

The batch size counts groups, not rows: `per_device_train_batch_size=1` is the paper's "batch size 1 for the seed
instructions". Groups are shuffled once per epoch from (seed, epoch) alone, so a resumed run sees the same order;
the rows of a group keep their build order. Under several processes each batch goes whole to one rank (accelerate's
shard of a batch sampler without `batch_size` deals out whole batches).
"""

from __future__ import annotations

import math
import random
from typing import Dict, Hashable, Iterator, List, Sequence


class GroupedBatchSampler:
    """Yields lists of dataset row indices; pass it to a DataLoader as `batch_sampler`.

    No `batch_size` attribute on purpose: batches vary in size, and accelerate treats a batch sampler without
    one as dynamic instead of padding every batch to a fixed size.
    """

    def __init__(self, group_ids: Sequence[Hashable], groups_per_batch: int = 1, shuffle: bool = True,
                 seed: int = 0):
        if groups_per_batch < 1:
            raise ValueError("groups_per_batch must be >= 1")
        self.groups: List[List[int]] = _groups_in_order(group_ids)
        self.groups_per_batch = groups_per_batch
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.drop_last = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.groups) / self.groups_per_batch)

    def __iter__(self) -> Iterator[List[int]]:
        order = list(range(len(self.groups)))
        if self.shuffle:
            # A fresh generator per epoch: the order depends on (seed, epoch) only, never on how many batches an
            # earlier (possibly interrupted) process drew.
            random.Random(f"{self.seed}:{self.epoch}").shuffle(order)
        for start in range(0, len(order), self.groups_per_batch):
            batch: List[int] = []
            for g in order[start:start + self.groups_per_batch]:
                batch.extend(self.groups[g])
            yield batch


def _groups_in_order(group_ids: Sequence[Hashable]) -> List[List[int]]:
    """Row indices per group, groups in order of first appearance."""
    by_group: Dict[Hashable, List[int]] = {}
    for index, gid in enumerate(group_ids):
        by_group.setdefault(gid, []).append(index)
    return list(by_group.values())
