"""The DeMoRecon build steps: decompose (E.2), modify + reconstruct (E.3), select variants and eval seeds.

Seed rows go in; instruction rows come out: one per seed original (`variant_index` 0) and one per usable variant
(`variant_index` j = the modified sub-instruction's position), all sharing the seed's `group_id`.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from typing import Any, Dict, List, Optional

from ifforge.build.context import BuildContext, Row, Step, user_message
from ifforge.build.demorecon.parsing import (CUT_OFF, ParseError, parse_decomposition, parse_variant_blocks,
                                             validate_variants)
from ifforge.llm import ChatRequest
from ifforge.prompts import render

log = logging.getLogger("ifforge")

DECOMPOSE_TEMPLATE = "demorecon/decompose.j2"
MODIFY_TEMPLATE = "demorecon/modify_reconstruct.j2"


def instruction_id(seed_id: str, variant_index: int) -> str:
    return f"{seed_id}:{variant_index}"


def cut_off(result: Any) -> bool:
    """The answer stopped at max_tokens: its end is missing, whatever it looks like."""
    samples = getattr(result, "samples", None) or []
    return bool(samples) and samples[0].finish_reason == "length"


def _reason_kind(reason: str) -> str:
    # "no block for sub-instruction 3" and "... 4" are one kind in the summary.
    return re.sub(r"\d+", "N", reason)


class Decompose(Step):
    name = "decompose"
    reads = ("seed_id", "instruction")
    writes = ("facts", "sub_instructions")

    def __init__(self, template: Optional[str], params: Dict[str, Any], max_sub_instructions: Optional[int]):
        self.template = template
        self.params = params
        self.max_sub_instructions = max_sub_instructions

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        requests = [ChatRequest(user_message(render(DECOMPOSE_TEMPLATE, self.template, prompt=r["instruction"])),
                                params=dict(self.params)) for r in rows]
        kept = []
        for row, res in zip(rows, ctx.ask(self.name, rows, requests)):
            if res is None:
                continue
            try:
                d = parse_decomposition(res.text, prompt=row["instruction"], cut_off=cut_off(res))
            except ParseError as e:
                extra = f" ({CUT_OFF})" if cut_off(res) and CUT_OFF not in str(e) else ""
                ctx.reject(self.name, row, f"unparseable decomposition: {e}{extra}", raw=res.text)
                continue
            if self.max_sub_instructions is not None and len(d.sub_instructions) > self.max_sub_instructions:
                ctx.reject(self.name, row, f"{len(d.sub_instructions)} sub-instructions, more than "
                                           f"max_sub_instructions={self.max_sub_instructions}", raw=res.text)
                continue
            kept.append({**row, "facts": d.facts, "sub_instructions": d.sub_instructions})
        return kept


class ModifyReconstruct(Step):
    """One E.3 call per seed returns a modified sub-instruction and a revised prompt for each sub-instruction.
    Every block that cannot be used (INVALID, missing, unchanged, duplicate, out of range) is a reject; a seed
    left with no usable variant is dropped whole, so that every seed in the splits has variants."""

    name = "modify_reconstruct"
    reads = ("seed_id", "instruction", "facts", "sub_instructions")
    writes = ("group_id", "instruction_id", "is_original", "variant_index", "original_instruction",
              "sub_instruction", "modified_sub_instruction")

    def __init__(self, template: Optional[str], params: Dict[str, Any]):
        self.template = template
        self.params = params
        self.summary: Dict[str, Any] = {}

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        prompts = [render(MODIFY_TEMPLATE, self.template, prompt=r["instruction"], facts=r["facts"],
                          instructions=r["sub_instructions"]) for r in rows]
        requests = [ChatRequest(user_message(p), params=dict(self.params)) for p in prompts]
        out: List[Row] = []
        asked, dropped = 0, Counter()
        for row, res in zip(rows, ctx.ask(self.name, rows, requests)):
            asked += len(row["sub_instructions"])
            if res is None:
                dropped["generation failed"] += len(row["sub_instructions"])
                continue
            try:
                blocks, duplicates = parse_variant_blocks(res.text)
            except ParseError as e:
                extra = f" ({CUT_OFF})" if cut_off(res) else ""
                ctx.reject(self.name, row, f"unparseable modification: {e}{extra}", raw=res.text)
                dropped["unparseable answer"] += len(row["sub_instructions"])
                continue
            variants, bad = validate_variants(blocks, row["instruction"], row["sub_instructions"], cut_off(res))
            for d in duplicates + bad:
                item = {"seed_id": row["seed_id"], "variant_index": d.index,
                        "modified_sub_instruction": d.block.modified if d.block else None,
                        "revised_prompt": d.block.revised if d.block else None}
                ctx.reject(self.name, item, d.reason, raw=res.text)
                dropped[_reason_kind(d.reason)] += 1
            if not variants:
                ctx.reject(self.name, row, "no usable variant for this seed", raw=res.text)
                continue
            base = {**row, "group_id": row["seed_id"], "original_instruction": row["instruction"]}
            out.append({**base, "instruction_id": instruction_id(row["seed_id"], 0), "is_original": True,
                        "variant_index": 0, "sub_instruction": None, "modified_sub_instruction": None})
            for v in variants:
                out.append({**base, "instruction": v.instruction, "is_original": False,
                            "instruction_id": instruction_id(row["seed_id"], v.index), "variant_index": v.index,
                            "sub_instruction": v.sub_instruction,
                            "modified_sub_instruction": v.modified_sub_instruction})
        kept = sum(1 for r in out if not r["is_original"])
        self.summary = {"sub_instructions": asked, "variants_kept": kept, "variants_dropped": dict(dropped)}
        log.info("[build] %-24s variants kept=%d of %d sub-instructions; dropped: %s", self.name, kept, asked,
                 dict(dropped) or "none")
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
        self.summary: Dict[str, Any] = {}

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
        held_out = set(random.Random(f"{self.seed}:eval").sample(eligible, n_eval))
        out: List[Row] = []
        not_selected = 0
        for g, members in groups.items():
            holdout = g in held_out
            variants = [m for m in members if not m["is_original"]]
            if not holdout and self.variants_per_seed is not None and len(variants) > self.variants_per_seed:
                chosen = random.Random(f"{self.seed}:variants:{g}").sample(variants, self.variants_per_seed)
                keep = {m["variant_index"] for m in chosen}
                not_selected += len(variants) - len(keep)
                members = [m for m in members if m["is_original"] or m["variant_index"] in keep]
            out.extend({**m, "eval_holdout": holdout} for m in members)
        self.summary = {"eval_eligible_seeds": len(eligible), "eval_seeds": n_eval,
                        "variants_not_selected": not_selected}
        log.info("[build] %-24s eval seeds=%d (of %d eligible); variants not selected=%d", self.name, n_eval,
                 len(eligible), not_selected)
        return out
