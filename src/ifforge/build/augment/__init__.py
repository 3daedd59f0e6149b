"""Augmentation strategies (`augmentation` group). One module each, registered with `@AUGMENTATIONS.register`.

A strategy turns seed rows into instruction rows (its `steps`), may add steps that run after the responses
(`final_steps`: e.g. statistics that need LLM calls), and turns the answered rows into named dataset splits with
their statistics (`assemble`, pure: everything it reports comes from the rows and the steps' counts). Modules here
must stay cheap to import: their schemas are registered at startup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

from ifforge.build.context import BuildContext, BuildOption, Row, Step
from ifforge.registry import Registry

AUGMENTATIONS = Registry("augmentation strategy", group="augmentation")


@dataclass
class Assembly:
    splits: Dict[str, List[Row]]
    stats: Dict[str, Any] = field(default_factory=dict)  # json-able, for the manifest
    card: str = ""  # the dataset card's section (markdown)
    steps: Dict[str, Dict[str, int]] = field(default_factory=dict)  # the assembly's own lines of the steps table


class Augmentation(BuildOption):
    # Fields the assembly reads from every answered row (checked before any request is sent).
    assembly_reads: tuple[str, ...] = ("instruction", "response", "seed_id", "group_id", "is_original")

    def final_steps(self, response_cfg: Any) -> Sequence[Step]:
        """Steps that run after the response mode's (they may read `response`)."""
        return ()

    def assemble(self, rows: List[Row], ctx: BuildContext) -> Assembly:
        """The splits and their statistics (figures may go into ctx.out; dropped rows to ctx.reject; the steps'
        own counters are in ctx.tallies)."""
        raise NotImplementedError
