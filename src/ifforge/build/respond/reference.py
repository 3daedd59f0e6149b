"""`response=reference` (DeMoRecon's "Ref"): originals are answered on their own, then every variant is answered
by revising its original's response with the paper's E.4 prompt, so variant responses differ from the original
only where the variant's instruction does.

The originals' requests are exactly `response=direct`'s, so switching between the two modes re-sends nothing
for originals (the generator cache answers them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.build.respond import RESPONSES, ResponseMode
from ifforge.build.respond.direct import AnswerDirectly
from ifforge.llm import ChatRequest
from ifforge.prompts import render

REFERENCE_TEMPLATE = "demorecon/respond_reference.j2"


@dataclass
class ReferenceConfig:
    name: str = "reference"
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for response calls
    # A user's own Jinja2 file for E.4; variables: original_prompt, original_response, new_prompt.
    template: Optional[str] = None


class AnswerOriginals(Step):
    """Answers the rows marked `is_original`, with the very requests `response=direct` sends; the other rows
    pass through to be revised next. A failed original is dropped (and rejected); its variants are rejected by
    the next step."""

    name = "respond_original"
    reads = ("instruction", "instruction_id", "is_original")
    writes = ("response",)

    def __init__(self, params: Dict[str, Any]):
        self.answer = AnswerDirectly(params)
        self.answer.name = self.name

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        answered = {r["instruction_id"]: r for r in self.answer([r for r in rows if r["is_original"]], ctx)}
        return [answered[r["instruction_id"]] if r["is_original"] else r for r in rows
                if not r["is_original"] or r["instruction_id"] in answered]


_LABEL = re.compile(r"^\s*(?:[*_#]+\s*)?new\s+response\s*:?\s*(?:[*_]+)?\s*:?\s*", re.IGNORECASE)


def strip_response_label(text: str) -> str:
    """E.4 ends with "**New Response:**"; some models start their answer by repeating it."""
    return _LABEL.sub("", text, count=1).strip()


class ReviseOriginalResponses(Step):
    name = "respond_reference"
    reads = ("instruction", "instruction_id", "group_id", "is_original", "response")
    writes = ("response",)

    def __init__(self, params: Dict[str, Any], template: Optional[str] = None):
        self.params = params
        self.template = template

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        originals = {r["group_id"]: r for r in rows if r["is_original"]}
        done: Dict[str, Row] = {}
        todo = []
        for r in rows:
            if r["is_original"]:
                done[r["instruction_id"]] = r
            elif r["group_id"] not in originals:
                ctx.reject(self.name, r, "the original instruction has no response to revise")
            else:
                todo.append(r)
        requests = [ChatRequest(user_message(self.prompt(originals[r["group_id"]], r)), params=dict(self.params))
                    for r in todo]
        for row, res in zip(todo, ctx.ask(self.name, todo, requests)):
            if res is None:
                continue
            text = strip_response_label(res.text)
            if not text:
                ctx.reject(self.name, row, "empty response", raw=res.text)
                continue
            done[row["instruction_id"]] = {**row, "response": text}
        return [done[r["instruction_id"]] for r in rows if r["instruction_id"] in done]  # input order

    def prompt(self, original: Row, variant: Row) -> str:
        return render(REFERENCE_TEMPLATE, self.template, original_prompt=original["instruction"],
                      original_response=original["response"], new_prompt=variant["instruction"])


@RESPONSES.register("reference", schema=ReferenceConfig)
class Reference(ResponseMode):
    def steps(self) -> Sequence[Step]:
        params = dict(self.cfg.get("params") or {})
        return [AnswerOriginals(params), ReviseOriginalResponses(params, self.cfg.get("template"))]
