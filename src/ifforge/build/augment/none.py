"""`augmentation=none`: the seeds themselves are the instructions (the papers' "plain" data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

from ifforge.build.augment import AUGMENTATIONS, Assembly, Augmentation
from ifforge.build.context import BuildContext, Row, Step
from ifforge.build.chat import sft_row


@dataclass
class NoAugmentationConfig:
    name: str = "none"


class SeedsAsInstructions(Step):
    name = "seeds_as_instructions"
    reads = ("seed_id", "instruction")
    writes = ("group_id", "instruction_id", "is_original")

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        return [{**r, "group_id": r["seed_id"], "instruction_id": r["seed_id"], "is_original": True} for r in rows]


@AUGMENTATIONS.register("none", schema=NoAugmentationConfig)
class NoAugmentation(Augmentation):
    def steps(self) -> Sequence[Step]:
        return [SeedsAsInstructions()]

    def assemble(self, rows: List[Row], ctx: BuildContext) -> Assembly:
        return Assembly({"sft": [sft_row(r) for r in rows]})
