"""Conifer's instruction-collection steps (section 3.1), in pipeline order.

seed -> reframe (>= min_forms queries) -> filter_context -> constraints ({category: [items]})
     -> recombine (one row per difficulty level) -> format_numeric (a seeded sample gets format/numeric
        requirements) -> filter_conflicts

Every step sends one request per row through `ctx.ask`, parses the reply with `conifer.parsing`, and puts each
item it drops into rejects with the reason and the raw reply. No step reads a curriculum switch: the curriculum
is pure assembly, so changing it reuses every cached request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ifforge.build.conifer import resources
from ifforge.build.conifer.parsing import (Growth, Invalid, parse_constraint_set, parse_format_numeric,
                                           parse_levels, parse_reframes, reject_reason)
from ifforge.build.conifer.sampling import pick, rng_for
from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.llm import ChatRequest
from ifforge.parsing import parse_yes_no
from ifforge.prompts import render


@dataclass
class Options:
    """What the steps need from `augmentation.*`, as plain values."""

    levels: int = 5
    seed: int = 0
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for every augmentation call
    prompts: Dict[str, Optional[str]] = field(default_factory=dict)  # step name -> a user's own template file
    min_forms: int = 3
    max_forms: Optional[int] = None
    examples: Optional[str] = None
    growth: Growth = field(default_factory=Growth)
    format_list: Optional[str] = None
    format_sample: int = 1000
    format_per_instruction: Sequence[int] = (1, 2)


class ConiferStep(Step):
    template = ""

    def __init__(self, opts: Options):
        self.opts = opts

    def prompt(self, **variables: Any) -> str:
        return render(self.template, self.opts.prompts.get(self.name), **variables)

    max_tokens: Optional[int] = None  # a step's own cap, below `params` (which the user sets)
    allow_cut_off = False  # a step that reads only the start of a reply (a verdict) may take a cut-off one

    def ask(self, ctx: BuildContext, rows: Sequence[Row], prompts: Sequence[str]):
        params = ({"max_tokens": self.max_tokens} if self.max_tokens else {}) | dict(self.opts.params)
        requests = [ChatRequest(user_message(p), params=params) for p in prompts]
        return ctx.ask(self.name, rows, requests, allow_cut_off=self.allow_cut_off)


class ReframeQueries(ConiferStep):
    name = "reframe"
    template = "conifer/reframe.j2"
    reads = ("seed_id", "instruction")
    writes = ("seed_instruction", "query_id", "query")

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        prompts = [self.prompt(query=r["instruction"], min_forms=self.opts.min_forms) for r in rows]
        out = []
        for row, res in zip(rows, self.ask(ctx, rows, prompts)):
            if res is None:
                continue
            try:
                forms = parse_reframes(res.text, row["instruction"], self.opts.min_forms, self.opts.max_forms)
            except Invalid as e:
                ctx.reject(self.name, row, reject_reason(e, res), raw=res.text)
                continue
            for k, form in enumerate(forms, 1):
                out.append({"seed_id": row["seed_id"], "seed_instruction": row["instruction"],
                            "query_id": f"{row['seed_id']}.q{k}", "query": form})
        return out


class YesNoFilter(ConiferStep):
    """Keeps a row when the model answers Yes; No and unparseable verdicts go to rejects."""

    subject = ""  # the row field the prompt shows
    no_reason = ""
    max_tokens = 96  # a verdict and one sentence of reason
    allow_cut_off = True  # the verdict comes first; a reason cut short does not change it

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        prompts = [self.prompt(**{self.subject: r[self.subject]}) for r in rows]
        kept = []
        for row, res in zip(rows, self.ask(ctx, rows, prompts)):
            if res is None:
                continue
            verdict = parse_yes_no(res.text)
            if verdict is None:
                ctx.reject(self.name, row, "unparseable filter verdict (expected Yes or No)", raw=res.text)
            elif not verdict:
                ctx.reject(self.name, row, self.no_reason, raw=res.text)
            else:
                kept.append(row)
        return kept


class FilterMissingContext(YesNoFilter):
    name = "filter_context"
    template = "conifer/filter_context.j2"
    reads = ("query",)
    subject = "query"
    no_reason = "filtered: cannot be answered without missing context (first filter answered No)"


class GenerateConstraints(ConiferStep):
    name = "constraints"
    template = "conifer/constraints.j2"
    reads = ("query",)
    writes = ("constraint_set",)

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        examples = [{"instruction": ex["instruction"], "constraints_json": json.dumps(ex["constraints"],
                                                                                     ensure_ascii=False)}
                    for ex in resources.constraint_examples(self.opts.examples)]
        min_categories = self.opts.levels * self.opts.growth.categories[0]
        prompts = [self.prompt(query=r["query"], examples=examples, min_categories=min_categories) for r in rows]
        out = []
        for row, res in zip(rows, self.ask(ctx, rows, prompts)):
            if res is None:
                continue
            try:
                out.append({**row, "constraint_set": parse_constraint_set(res.text)})
            except Invalid as e:
                ctx.reject(self.name, row, reject_reason(e, res), raw=res.text)
        return out


class Recombine(ConiferStep):
    name = "recombine"
    template = "conifer/recombine.j2"
    reads = ("seed_id", "query_id", "query", "constraint_set")
    writes = ("group_id", "instruction_id", "is_original", "level", "instruction", "constraints",
              "format_constraints")

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        g = self.opts.growth
        asked, prompts = [], []
        for row in rows:
            n = g.supported_levels(row["constraint_set"], self.opts.levels)
            if n == 0:
                ctx.reject(self.name, row, f"constraint set too small for level 1 (needs {g.categories[0]} "
                                           f"categories and {g.items[0]} items)")
                continue
            asked.append((row, n))
            prompts.append(self.prompt(query=row["query"], n_levels=n,
                                       constraints_json=json.dumps(row["constraint_set"], ensure_ascii=False),
                                       cat_lo=g.categories[0], cat_hi=g.categories[1],
                                       item_lo=g.items[0], item_hi=g.items[1]))
        out = []
        for (row, n), res in zip(asked, self.ask(ctx, [r for r, _ in asked], prompts)):
            if res is None:
                continue
            try:
                levels, problems = parse_levels(res.text, row["constraint_set"], n, g)
            except Invalid as e:
                ctx.reject(self.name, row, reject_reason(e, res), raw=res.text)
                continue
            for level, reason in problems:
                ctx.reject(self.name, {**row, "level": level}, reason, raw=res.text)
            for lv in levels:
                out.append({**row, "group_id": row["query_id"], "instruction_id": f"{row['query_id']}.L{lv.level}",
                            "is_original": False, "level": lv.level, "instruction": lv.instruction,
                            "constraints": lv.constraints, "format_constraints": []})
        return out


class AddFormatNumeric(ConiferStep):
    """A seeded sample of (query, level) instructions gets 1-2 requirements from the format/numeric list; the
    rewritten instruction replaces the original (kept as `base_instruction`). A failed rewrite leaves the row as
    it was and is recorded in rejects."""

    name = "format_numeric"
    template = "conifer/format_numeric.j2"
    reads = ("instruction_id", "instruction")
    writes = ("format_constraints", "base_instruction")

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        pool = resources.format_numeric_constraints(self.opts.format_list)
        chosen = pick((r["instruction_id"] for r in rows), self.opts.format_sample, self.opts.seed)
        lo, hi = self.opts.format_per_instruction
        todo, prompts = [], []
        for i, row in enumerate(rows):
            if row["instruction_id"] in chosen:
                rng = rng_for(self.opts.seed, row["instruction_id"])
                candidates = [c["text"] for c in rng.sample(pool, min(len(pool), rng.randint(lo, hi)))]
                todo.append(i)
                prompts.append(self.prompt(instruction=row["instruction"], candidates=candidates))
        out = list(rows)
        for i, res in zip(todo, self.ask(ctx, [rows[i] for i in todo], prompts)):
            if res is None:
                continue
            try:
                instruction, added = parse_format_numeric(res.text, rows[i]["instruction"])
            except Invalid as e:
                why = f"format/numeric augmentation dropped, instruction kept as is: {reject_reason(e, res)}"
                ctx.reject(self.name, rows[i], why, raw=res.text)
                continue
            out[i] = {**rows[i], "instruction": instruction, "base_instruction": rows[i]["instruction"],
                      "format_constraints": added}
        return out


class FilterConflicts(YesNoFilter):
    name = "filter_conflicts"
    template = "conifer/filter_conflicts.j2"
    reads = ("instruction",)
    subject = "instruction"
    no_reason = "filtered: conflicting or unsatisfiable constraints (second filter answered No)"


def conifer_steps(opts: Options, context_filter: bool, conflict_filter: bool, format_numeric: bool) -> List[Step]:
    steps: List[Step] = [ReframeQueries(opts)]
    if context_filter:
        steps.append(FilterMissingContext(opts))
    steps += [GenerateConstraints(opts), Recombine(opts)]
    if format_numeric:
        steps.append(AddFormatNumeric(opts))
    if conflict_filter:
        steps.append(FilterConflicts(opts))
    return steps
