"""Response modes (`response` group). One module each, registered with `@RESPONSES.register`.

A mode is a list of steps that read instruction rows and write `response` (and whatever else it adds)."""

from __future__ import annotations

from ifforge.build.context import BuildOption
from ifforge.registry import Registry

RESPONSES = Registry("response mode", group="response")


class ResponseMode(BuildOption):
    """Its steps write `response` on every instruction row they keep."""
