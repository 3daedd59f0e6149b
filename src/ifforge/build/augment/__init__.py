"""Augmentation strategies (`augmentation` group). One module each, registered with `@AUGMENTATIONS.register`.

A strategy turns seed rows into instruction rows (its `steps`) and, once responses exist, turns those into named
dataset splits (`assemble`). Modules here must stay cheap to import: their schemas are registered at startup.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from ifforge.build.context import BuildContext, Row, Step
from ifforge.registry import Registry

AUGMENTATIONS = Registry("augmentation strategy", group="augmentation")


class Augmentation:
    # Fields every instruction row carries after augmentation, read by response modes and assembly.
    writes: tuple[str, ...] = ("group_id", "instruction_id", "is_original")
    assembly_reads: tuple[str, ...] = ("instruction", "response", "seed_id", "group_id", "is_original")

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def uses_judge(self) -> bool:
        return False

    def preflight(self) -> None:
        """Cheap checks before any request is sent (the data files a strategy reads, its option ranges); raise
        UserError on what the user must fix."""

    def steps(self) -> Sequence[Step]:
        raise NotImplementedError

    def assemble(self, rows: List[Row], ctx: BuildContext) -> Dict[str, List[Row]]:
        raise NotImplementedError

    def statistics(self, splits: Dict[str, List[Row]], ctx: BuildContext) -> Dict[str, Any]:
        """Strategy-specific statistics for the manifest and the dataset card (may also write figures into
        ctx.out). Return {"card": markdown section or absent, **json-able numbers}."""
        return {}
