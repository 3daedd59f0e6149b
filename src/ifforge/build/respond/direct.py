"""`response=direct`: every instruction answered on its own (DeMoRecon's "Aug" responses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Sequence

from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.build.respond import RESPONSES, ResponseMode
from ifforge.build.step import LLMStep


@dataclass
class DirectConfig:
    name: str = "direct"
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for response calls


class AnswerDirectly(LLMStep):
    """The instruction itself is the prompt (no template); an empty answer is a reject."""

    name = "respond_direct"
    reads = ("instruction",)
    writes = ("response",)

    def messages(self, row: Row, batch: Any, structured: bool = False) -> List[Dict[str, str]]:
        return user_message(row["instruction"])

    def emit(self, row: Row, text: str, ctx: BuildContext, raw: str) -> Iterable[Row]:
        return [{**row, "response": text}]


@RESPONSES.register("direct", schema=DirectConfig)
class Direct(ResponseMode):
    def steps(self) -> Sequence[Step]:
        return [AnswerDirectly(self.cfg.get("params"))]
