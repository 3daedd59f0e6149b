"""Conifer's instruction-collection steps (section 3.1), in pipeline order.

seed -> reframe (>= min_forms queries) -> filter_context -> constraints ({category: [items]})
     -> recombine (one row per difficulty level) -> format_numeric (a seeded sample gets format/numeric
        requirements) -> filter_conflicts

Every step is an `LLMStep` (ifforge.build.step): it declares its template and reads its reply with
`conifer.parsing`; the base asks, and puts each item it drops into rejects with the reason and the raw reply. No step reads a curriculum switch: the curriculum
is pure assembly, so changing it reuses every cached request.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ifforge.build.conifer import resources
from ifforge.build.conifer.parsing import (Growth, parse_constraint_set, parse_format_numeric, parse_levels,
                                           parse_reframes)
from ifforge.build.context import BuildContext, Row, Step
from ifforge.build.sampling import pick, rng_for
from ifforge.build.step import ASK, SKIP, LLMStep, Reply, YesNoFilter
from ifforge.llm.structured import obj, string_list

# A free-form map category -> items (enforced by vLLM and xgrammar; only guided by OpenAI's non-strict mode). The
# caps end a weak model's reply in time; no set the recombination uses needs more.
CONSTRAINT_SET = {"type": "object", "minProperties": 1, "maxProperties": 12,
                  "additionalProperties": string_list(1, 6, longest=120)}


@dataclass
class Options:
    """What the steps need from `augmentation.*`, as plain values."""

    levels: int = 5
    seed: int = 0
    params: Dict[str, Any] = field(default_factory=dict)  # sampling overrides for every augmentation call
    templates: Dict[str, Optional[str]] = field(default_factory=dict)  # step name -> a user's own template file
    min_forms: int = 3
    max_forms: Optional[int] = None
    examples: Optional[str] = None
    growth: Growth = field(default_factory=Growth)
    format_list: Optional[str] = None
    format_sample: float = 0.028  # the share of leveled instructions that get format/numeric requirements
    format_per_instruction: Sequence[int] = (1, 2)


class ConiferStep(LLMStep):
    def __init__(self, opts: Options):
        super().__init__(opts.params, opts.templates)
        self.opts = opts


class ReframeQueries(ConiferStep):
    name = "reframe"
    template = "conifer/reframe.j2"
    reads = ("seed_id", "instruction")
    writes = ("seed_instruction", "query_id", "query")
    schema = obj(queries=string_list(1, 10, longest=400))

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        return {"query": row["instruction"], "min_forms": self.opts.min_forms}

    def parse(self, reply: Reply, row: Row) -> List[str]:
        return parse_reframes(reply.text, row["instruction"], self.opts.min_forms, self.opts.max_forms)

    def emit(self, row: Row, forms: List[str], ctx: BuildContext, raw: str) -> Iterable[Row]:
        return [{"seed_id": row["seed_id"], "seed_instruction": row["instruction"],
                 "query_id": f"{row['seed_id']}.q{k}", "query": form} for k, form in enumerate(forms, 1)]


class FilterMissingContext(YesNoFilter, ConiferStep):
    name = "filter_context"
    template = "conifer/filter_context.j2"
    reads = ("query",)
    field = variable = "query"
    drop_reason = "filtered: cannot be answered without missing context (first filter answered No)"


class GenerateConstraints(ConiferStep):
    name = "constraints"
    template = "conifer/constraints.j2"
    reads = ("query",)
    writes = ("constraint_set",)
    schema = CONSTRAINT_SET

    def prepare(self, rows: List[Row]) -> List[Dict[str, str]]:
        return [{"instruction": ex["instruction"], "constraints_json": json.dumps(ex["constraints"], ensure_ascii=False)}
                for ex in resources.constraint_examples(self.opts.examples)]

    def variables(self, row: Row, examples: Any) -> Dict[str, Any]:
        return {"query": row["query"], "examples": examples,
                "min_categories": self.opts.levels * self.opts.growth.categories[0]}

    def schema_for(self, row: Row) -> Dict[str, Any]:
        """No more categories than the top level can use (levels x the most a level adds; 10 for the paper's five
        levels): a weak model under a grammar otherwise lists categories until max_tokens."""
        return {**CONSTRAINT_SET, "maxProperties": min(CONSTRAINT_SET["maxProperties"],
                                                       self.opts.levels * self.opts.growth.categories[1])}

    def parse(self, reply: Reply, row: Row) -> Dict[str, List[str]]:
        return parse_constraint_set(reply.text)

    def emit(self, row: Row, constraint_set: Dict[str, List[str]], ctx: BuildContext, raw: str) -> Iterable[Row]:
        return [{**row, "constraint_set": constraint_set}]


class Recombine(ConiferStep):
    name = "recombine"
    template = "conifer/recombine.j2"
    reads = ("seed_id", "query_id", "query", "constraint_set")
    writes = ("group_id", "instruction_id", "is_original", "level", "instruction", "constraints",
              "format_constraints")
    schema = obj(levels={"type": "array", "items": obj(level={"type": "integer"}, constraints=CONSTRAINT_SET,
                                                       instruction={"type": "string"})})

    def levels(self, row: Row) -> int:
        return self.opts.growth.supported_levels(row["constraint_set"], self.opts.levels)

    def choose(self, rows: List[Row]) -> List[Any]:
        g = self.opts.growth
        return [ASK if self.levels(r) else f"constraint set too small for level 1 (needs {g.categories[0]} "
                                           f"categories and {g.items[0]} items)" for r in rows]

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        g = self.opts.growth
        return {"query": row["query"], "n_levels": self.levels(row),
                "constraints_json": json.dumps(row["constraint_set"], ensure_ascii=False),
                "cat_lo": g.categories[0], "cat_hi": g.categories[1], "item_lo": g.items[0], "item_hi": g.items[1]}

    def schema_for(self, row: Row) -> Dict[str, Any]:
        """Exactly the row's levels, each drawing on the row's own categories and items, no more categories than
        the top level may have (n x the most a level adds) and no item or instruction longer than its sources
        allow: a weak model under a grammar otherwise copies every category into every level until max_tokens."""
        n, cs = self.levels(row), row["constraint_set"]
        longest = max(len(str(item)) for items in cs.values() for item in items) + 20
        constraints = {"type": "object", "additionalProperties": False,
                       "maxProperties": min(len(cs), n * self.opts.growth.categories[1]),
                       "properties": {c: string_list(1, len(items), longest=longest) for c, items in cs.items()}}
        level = obj(level={"type": "integer", "minimum": 1, "maximum": n}, constraints=constraints,
                    instruction={"type": "string", "maxLength": len(row["query"]) + 300 * n})
        return obj(levels={"type": "array", "items": level, "minItems": n, "maxItems": n})

    def parse(self, reply: Reply, row: Row) -> Any:
        return parse_levels(reply.text, row["constraint_set"], self.levels(row), self.opts.growth)

    def emit(self, row: Row, parsed: Any, ctx: BuildContext, raw: str) -> Iterable[Row]:
        levels, problems = parsed
        for level, reason in problems:
            ctx.reject(self.name, {**row, "level": level}, reason, raw=raw)
        return [{**row, "group_id": row["query_id"], "instruction_id": f"{row['query_id']}.L{lv.level}",
                 "is_original": False, "level": lv.level, "instruction": lv.instruction,
                 "constraints": lv.constraints, "format_constraints": []} for lv in levels]


class AddFormatNumeric(ConiferStep):
    """A seeded sample (the share `format_sample`, rounded up) of the (query, level) instructions gets 1-2
    requirements from the format/numeric list; the rewritten instruction replaces the original (kept as
    `base_instruction`). A failed rewrite leaves the row as it was and is recorded in rejects."""

    name = "format_numeric"
    template = "conifer/format_numeric.j2"
    reads = ("instruction_id", "instruction")
    writes = ("format_constraints", "base_instruction")
    passes_through = True
    invalid_prefix = "format/numeric augmentation dropped, instruction kept as is: "
    schema = obj(instruction={"type": "string"}, added=string_list(1, 4))

    def choose(self, rows: List[Row]) -> List[Any]:
        ids = list(dict.fromkeys(r["instruction_id"] for r in rows))
        # Rounded up so that a small pilot still exercises the step; the tolerance keeps 0.2 x 30 at 6, not 7.
        n = math.ceil(self.opts.format_sample * len(ids) - 1e-9)
        chosen = pick(ids, n, self.opts.seed)
        return [ASK if r["instruction_id"] in chosen else SKIP for r in rows]

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        pool = resources.format_numeric_constraints(self.opts.format_list)
        lo, hi = self.opts.format_per_instruction
        rng = rng_for(self.opts.seed, row["instruction_id"])
        candidates = [c["text"] for c in rng.sample(pool, min(len(pool), rng.randint(lo, hi)))]
        return {"instruction": row["instruction"], "candidates": candidates}

    def parse(self, reply: Reply, row: Row) -> Any:
        return parse_format_numeric(reply.text, row["instruction"])

    def emit(self, row: Row, parsed: Any, ctx: BuildContext, raw: str) -> Iterable[Row]:
        instruction, added = parsed
        return [{**row, "instruction": instruction, "base_instruction": row["instruction"],
                 "format_constraints": added}]


class FilterConflicts(YesNoFilter, ConiferStep):
    name = "filter_conflicts"
    template = "conifer/filter_conflicts.j2"
    reads = ("instruction",)
    drop_reason = "filtered: conflicting or unsatisfiable constraints (second filter answered No)"


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
