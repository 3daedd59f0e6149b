"""The DeMoRecon build steps: decompose (E.2), modify + reconstruct (E.3), select variants and eval seeds.

Seed rows go in; instruction rows come out: one per seed original (`variant_index` 0) and one per usable variant
(`variant_index` j = the modified sub-instruction's position), all sharing the seed's `group_id`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, Iterable, List, Optional

from ifforge.build.context import BuildContext, Row, Step
from ifforge.build.demorecon.parsing import (decomposition_from_json, parse_decomposition, parse_variant_blocks,
                                             validate_variants, variant_blocks_from_json)
from ifforge.build.sampling import rng
from ifforge.build.step import LLMStep, Reply
from ifforge.llm.structured import obj, string_list

log = logging.getLogger("ifforge")


def instruction_id(seed_id: str, variant_index: int) -> str:
    return f"{seed_id}:{variant_index}"


def _reason_kind(reason: str) -> str:
    # "no block for sub-instruction 3" and "... 4" are one kind in the summary.
    return re.sub(r"\d+", "N", reason)


class Decompose(LLMStep):
    name = "decompose"
    template = "demorecon/decompose.j2"
    reads = ("seed_id", "instruction")
    writes = ("facts", "sub_instructions")
    invalid_prefix = "unparseable decomposition: "
    # Instructions first (what the step is for), lists capped: a weak model under a grammar tends to repeat items
    # until max_tokens; the caps end the object in time, and no prompt has more.
    schema = obj(instructions=string_list(1, 8, longest=300), facts=string_list(0, 6, longest=300))
    MOST = 8

    def __init__(self, params: Any, templates: Any, max_sub_instructions: Optional[int]):
        super().__init__(params, templates)
        self.max_sub_instructions = max_sub_instructions

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        return {"prompt": row["instruction"]}

    def schema_for(self, row: Row) -> Dict[str, Any]:
        """The caps narrowed to the seed: a part of an instruction is no longer than the instruction, and one item
        past `max_sub_instructions` is enough to tell that a seed has too many (it is then rejected as before)."""
        longest = min(300, len(row["instruction"]) + 20)
        most = self.MOST if self.max_sub_instructions is None else min(self.MOST, self.max_sub_instructions + 1)
        return obj(instructions=string_list(1, most, longest=longest), facts=string_list(0, 6, longest=longest))

    def parse(self, reply: Reply, row: Row) -> Any:
        return parse_decomposition(reply.text, prompt=row["instruction"], cut_off=reply.cut_off)

    def parse_json(self, value: Any, row: Row) -> Any:
        return decomposition_from_json(value, prompt=row["instruction"])

    def emit(self, row: Row, d: Any, ctx: BuildContext, raw: str) -> Iterable[Row]:
        if self.max_sub_instructions is not None and len(d.sub_instructions) > self.max_sub_instructions:
            ctx.reject(self.name, row, f"{len(d.sub_instructions)} sub-instructions, more than "
                                       f"max_sub_instructions={self.max_sub_instructions}", raw=raw)
            return []
        return [{**row, "facts": d.facts, "sub_instructions": d.sub_instructions}]


class ModifyReconstruct(LLMStep):
    """One E.3 call per seed returns a modified sub-instruction and a revised prompt for each sub-instruction.
    Every block that cannot be used (INVALID, missing, unchanged, duplicate, out of range) is a reject; a seed
    left with no usable variant is dropped whole, so that every seed in the splits has variants. Counts
    `sub_instructions`, `variants_kept` and `dropped: <reason>` (in sub-instructions)."""

    name = "modify_reconstruct"
    template = "demorecon/modify_reconstruct.j2"
    reads = ("seed_id", "instruction", "facts", "sub_instructions")
    writes = ("group_id", "instruction_id", "is_original", "variant_index", "original_instruction",
              "sub_instruction", "modified_sub_instruction")
    invalid_prefix = "unparseable modification: "
    schema = obj(variants={"type": "array", "items": obj(number={"type": "integer"},
                                                         modified_instruction={"type": "string"},
                                                         revised_prompt={"type": "string"})})

    def variables(self, row: Row, batch: Any) -> Dict[str, Any]:
        return {"prompt": row["instruction"], "facts": row["facts"], "instructions": row["sub_instructions"]}

    def schema_for(self, row: Row) -> Dict[str, Any]:
        """One entry per sub-instruction, each bounded by what it rewrites: a modified sub-instruction at most about
        twice the longest sub-instruction, a revised prompt the original with one part swapped for it. A weak model
        under a grammar otherwise writes until max_tokens."""
        n = len(row["sub_instructions"])
        modified = min(300, 2 * max(len(s) for s in row["sub_instructions"]) + 40)
        entry = obj(number={"type": "integer", "minimum": 1, "maximum": n},
                    modified_instruction={"type": "string", "maxLength": modified},
                    revised_prompt={"type": "string", "maxLength": len(row["instruction"]) + modified})
        return obj(variants={"type": "array", "items": entry, "minItems": n, "maxItems": n})

    def parse(self, reply: Reply, row: Row) -> Any:
        return self._validate(*parse_variant_blocks(reply.text), row, reply.cut_off)

    def parse_json(self, value: Any, row: Row) -> Any:
        return self._validate(*variant_blocks_from_json(value), row, False)

    @staticmethod
    def _validate(blocks: Any, duplicates: Any, row: Row, cut_off: bool) -> Any:
        variants, bad = validate_variants(blocks, row["instruction"], row["sub_instructions"], cut_off)
        return variants, duplicates + bad

    def dropped(self, row: Row, why: str, ctx: BuildContext) -> None:
        n = len(row["sub_instructions"])
        ctx.count(self.name, "sub_instructions", n)
        ctx.count(self.name, f"dropped: {why}", n)

    def emit(self, row: Row, parsed: Any, ctx: BuildContext, raw: str) -> Iterable[Row]:
        variants, unusable = parsed
        ctx.count(self.name, "sub_instructions", len(row["sub_instructions"]))
        ctx.count(self.name, "variants_kept", len(variants))
        for d in unusable:
            item = {"seed_id": row["seed_id"], "variant_index": d.index,
                    "modified_sub_instruction": d.block.modified if d.block else None,
                    "revised_prompt": d.block.revised if d.block else None}
            ctx.reject(self.name, item, d.reason, raw=raw)
            ctx.count(self.name, f"dropped: {_reason_kind(d.reason)}")
        if not variants:
            ctx.reject(self.name, row, "no usable variant for this seed", raw=raw)
            return []
        base = {**row, "group_id": row["seed_id"], "original_instruction": row["instruction"]}
        out = [{**base, "instruction_id": instruction_id(row["seed_id"], 0), "is_original": True,
                "variant_index": 0, "sub_instruction": None, "modified_sub_instruction": None}]
        for v in variants:
            out.append({**base, "instruction": v.instruction, "is_original": False,
                        "instruction_id": instruction_id(row["seed_id"], v.index), "variant_index": v.index,
                        "sub_instruction": v.sub_instruction, "modified_sub_instruction": v.modified_sub_instruction})
        return out


class SelectVariants(Step):
    """Holds out the eval seeds (exactly `eval_sub_instructions` sub-instructions, every one with a usable
    variant; a seeded sample of `eval_num_seeds`), then keeps a seeded sample of `variants_per_seed` variants
    of every other seed. Eval seeds keep all their variants: DeMoRecon-Eval and -Det need the full set."""

    name = "select_variants"
    reads = ("group_id", "is_original", "variant_index", "sub_instructions")
    writes = ("eval_holdout",)

    def __init__(self, seed: int, variants_per_seed: Optional[int], eval_sub_instructions: int,
                 eval_num_seeds: int):
        self.seed = seed
        self.variants_per_seed = variants_per_seed
        self.eval_sub_instructions = eval_sub_instructions
        self.eval_num_seeds = eval_num_seeds

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        groups: Dict[str, List[Row]] = {}
        for r in rows:
            groups.setdefault(r["group_id"], []).append(r)
        eligible = [g for g, members in groups.items()
                    if len(members[0]["sub_instructions"]) == self.eval_sub_instructions
                    and sum(1 for m in members if not m["is_original"]) == self.eval_sub_instructions]
        n_eval = min(self.eval_num_seeds, len(eligible))
        if n_eval < self.eval_num_seeds:
            log.warning("[build] only %d seeds qualify for the eval split (%d sub-instructions, all variants "
                        "usable); eval_split.num_seeds asks for %d", len(eligible), self.eval_sub_instructions,
                        self.eval_num_seeds)
        held_out = set(rng(self.seed, "eval").sample(eligible, n_eval))
        out: List[Row] = []
        not_selected = 0
        for g, members in groups.items():
            holdout = g in held_out
            variants = [m for m in members if not m["is_original"]]
            if not holdout and self.variants_per_seed is not None and len(variants) > self.variants_per_seed:
                chosen = rng(self.seed, "variants", g).sample(variants, self.variants_per_seed)
                keep = {m["variant_index"] for m in chosen}
                not_selected += len(variants) - len(keep)
                members = [m for m in members if m["is_original"] or m["variant_index"] in keep]
            out.extend({**m, "eval_holdout": holdout} for m in members)
        for key, n in (("eval_eligible_seeds", len(eligible)), ("eval_seeds", n_eval),
                       ("variants_not_selected", not_selected)):
            ctx.count(self.name, key, n)
        return out


class CompareModes(Step):
    """`stats.compare_modes`: the training seeds' variants answered in the other response mode too (direct for a
    reference build, and the other way round), into `compare_response`, for Table 1 and Figure 2 side by side.
    Its requests are that mode's own, so a build in each mode has them all in the cache."""

    reads = ("instruction", "instruction_id", "group_id", "is_original", "response", "eval_holdout")
    writes = ("compare_response",)

    def __init__(self, other: str, params: Any, seed: int, train_seeds: Optional[int]):
        self.other, self.params, self.seed, self.train_seeds = other, params, seed, train_seeds
        self.name = f"compare_{other}"

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        from ifforge.build.demorecon.assembly import by_group, training_groups
        from ifforge.build.respond.direct import AnswerDirectly
        from ifforge.build.respond.reference import ReviseOriginalResponses

        groups = by_group(rows)
        # The seeds the sft split will hold: training seeds with an answered original and an answered variant.
        train = {g for g in training_groups(groups, self.seed, self.train_seeds)
                 if any(m["is_original"] for m in groups[g]) and not all(m["is_original"] for m in groups[g])}
        step = ReviseOriginalResponses(self.params) if self.other == "reference" else AnswerDirectly(self.params)
        step.name = self.name
        todo = [r for r in rows if r["group_id"] in train and (self.other == "reference" or not r["is_original"])]
        answers = {r["instruction_id"]: r["response"] for r in step(todo, ctx) if not r["is_original"]}
        return [{**r, "compare_response": answers[r["instruction_id"]]} if r["instruction_id"] in answers else r
                for r in rows]
