"""Response modes (`response` group). One module each, registered with `@RESPONSES.register`.

A mode is a list of steps that read instruction rows and write `response` (and whatever else it adds)."""

from __future__ import annotations

from typing import Any, Sequence

from ifforge.build.context import Step
from ifforge.registry import Registry

RESPONSES = Registry("response mode", group="response")


class ResponseMode:
    def __init__(self, cfg: Any):
        self.cfg = cfg

    def uses_judge(self) -> bool:
        return False

    def steps(self) -> Sequence[Step]:
        raise NotImplementedError
