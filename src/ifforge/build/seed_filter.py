"""DeMoRecon E.1 "Filter Invalid Seeds": drop instructions that lack context to be answered on their own."""

from __future__ import annotations

from typing import List

from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.llm import ChatRequest
from ifforge.parsing import parse_yes_no
from ifforge.prompts import render


class FilterSeeds(Step):
    name = "filter_seeds"
    reads = ("instruction",)

    def __init__(self, template_override: str | None = None):
        self.template_override = template_override

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        prompts = [render("demorecon/filter_seed.j2", self.template_override, prompt=r["instruction"]) for r in rows]
        results = ctx.ask(self.name, rows, [ChatRequest(user_message(p), params={"max_tokens": 16}) for p in prompts],
                          allow_cut_off=True)  # the verdict is the first word; the rest may be cut short
        kept = []
        for row, res in zip(rows, results):
            if res is None:
                continue
            verdict = parse_yes_no(res.text)
            if verdict is None:
                ctx.reject(self.name, row, "unparseable filter verdict (expected Yes or No)", raw=res.text)
            elif verdict:
                ctx.reject(self.name, row, "filtered: missing details or context (E.1 answered Yes)", raw=res.text)
            else:
                kept.append(row)
        return kept
