"""`response=reference` (DeMoRecon's "Ref"): originals are answered on their own, then every variant is answered
by revising its original's response with the paper's E.4 prompt, so variant responses differ from the original
only where the variant's instruction does.

The originals' requests are exactly `response=direct`'s, so switching between the two modes re-sends nothing
for originals (the generator cache answers them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ifforge.build.context import BuildContext, Row, Step
from ifforge.build.respond import RESPONSES, ResponseMode
from ifforge.build.respond.direct import AnswerDirectly
from ifforge.build.step import ASK, SKIP, LLMStep, Reply


@dataclass
class ReferenceTemplatesConfig:
    # A user's own Jinja2 file for E.4; variables: original_prompt, original_response, new_prompt.
    respond_reference: Optional[str] = None


@dataclass
class ReferenceConfig:
    name: str = "reference"
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for response calls
    templates: ReferenceTemplatesConfig = field(default_factory=ReferenceTemplatesConfig)


class AnswerOriginals(AnswerDirectly):
    """Answers the rows marked `is_original`, with the very requests `response=direct` sends; the other rows
    pass through to be revised next. A failed original is dropped (and rejected); its variants are rejected by
    the next step."""

    name = "respond_original"
    reads = ("instruction", "instruction_id", "is_original")

    def choose(self, rows: List[Row]) -> List[Any]:
        return [ASK if r["is_original"] else SKIP for r in rows]


_LABEL = re.compile(r"^\s*(?:[*_#]+\s*)?new\s+response\s*:?\s*(?:[*_]+)?\s*:?\s*", re.IGNORECASE)


def strip_response_label(text: str) -> str:
    """E.4 ends with "**New Response:**"; some models start their answer by repeating it."""
    return _LABEL.sub("", text, count=1).strip()


class ReviseOriginalResponses(LLMStep):
    name = "respond_reference"
    template = "demorecon/respond_reference.j2"
    reads = ("instruction", "instruction_id", "group_id", "is_original", "response")
    writes = ("response",)

    def choose(self, rows: List[Row]) -> List[Any]:
        answered = {r["group_id"] for r in rows if r["is_original"]}
        return [SKIP if r["is_original"] else ASK if r["group_id"] in answered
                else "the original instruction has no response to revise" for r in rows]

    def prepare(self, rows: List[Row]) -> Dict[str, Row]:
        return {r["group_id"]: r for r in rows if r["is_original"]}

    def variables(self, row: Row, originals: Dict[str, Row]) -> Dict[str, Any]:
        original = originals[row["group_id"]]
        return {"original_prompt": original["instruction"], "original_response": original["response"],
                "new_prompt": row["instruction"]}

    def parse(self, reply: Reply, row: Row) -> str:
        return super().parse(Reply(strip_response_label(reply.text), reply.cut_off), row)

    def emit(self, row: Row, text: str, ctx: BuildContext, raw: str) -> Iterable[Row]:
        return [{**row, "response": text}]


@RESPONSES.register("reference", schema=ReferenceConfig)
class Reference(ResponseMode):
    def steps(self) -> Sequence[Step]:
        params = self.cfg.get("params")
        return [AnswerOriginals(params), ReviseOriginalResponses(params, self.cfg.templates)]
