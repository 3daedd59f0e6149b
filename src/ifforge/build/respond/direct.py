"""`response=direct`: every instruction answered on its own (DeMoRecon's "Aug" responses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.build.respond import RESPONSES, ResponseMode
from ifforge.llm import ChatRequest


@dataclass
class DirectConfig:
    name: str = "direct"
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for response calls


class AnswerDirectly(Step):
    name = "respond_direct"
    reads = ("instruction",)
    writes = ("response",)

    def __init__(self, params: Dict[str, Any]):
        self.params = params

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        requests = [ChatRequest(user_message(r["instruction"]), params=dict(self.params)) for r in rows]
        kept = []
        for row, res in zip(rows, ctx.ask(self.name, rows, requests)):
            if res is None:
                continue
            if not res.text.strip():
                ctx.reject(self.name, row, "empty response", raw=res.text)
                continue
            kept.append({**row, "response": res.text})
        return kept


@RESPONSES.register("direct", schema=DirectConfig)
class Direct(ResponseMode):
    def steps(self) -> Sequence[Step]:
        return [AnswerDirectly(dict(self.cfg.get("params") or {}))]
