"""From answered instruction rows to the five DeMoRecon splits.

- sft:   originals and variants of the training seeds, chat rows with `group_id` and `is_original`.
- dpo:   per training seed, ordered pairs (Pi, Pj) of its set {P, P_1..P_M}: prompt Pi, chosen = response to Pi,
         rejected = response to Pj (TRL's conversational prompt/chosen/rejected); a seeded sample of at most
         `max_pairs_per_seed`.
- eval:  the variants of the held-out seeds (DeMoRecon-Eval: 170 seeds x 4 variants = 680 instructions).
- det:   every eval instruction with the response of each variant of its seed, its own labelled Yes, the
         siblings' No (DeMoRecon-Det, appendix B: 680 x 4 = 2,720 pairs).
- plain: the training seeds with their own responses only (the "plain" baseline).
Held-out seeds appear in eval and det only.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

from ifforge.build.chat import sft_row
from ifforge.build.context import BuildContext, Row
from ifforge.build.sampling import rng

SPLITS = ("sft", "dpo", "eval", "det", "plain")
STEP = "assemble"

# Fields of the eval split besides instruction/response: enough to tell what was modified.
EVAL_FIELDS = ("seed_id", "group_id", "instruction_id", "variant_index", "original_instruction", "sub_instruction",
               "modified_sub_instruction", "sub_instructions", "facts")


def dpo_pairs(members: List[Row], max_pairs: Optional[int], rng: random.Random) -> List[Row]:
    """Ordered pairs of distinct members; pairs whose two responses are identical teach nothing and are left out
    before sampling."""
    pairs = [(a, b) for a in members for b in members
             if a is not b and a["response"].strip() != b["response"].strip()]
    if max_pairs is not None and len(pairs) > max_pairs:
        picked = sorted(rng.sample(range(len(pairs)), max_pairs))
        pairs = [pairs[i] for i in picked]
    return [{"prompt": [{"role": "user", "content": a["instruction"]}],
             "chosen": [{"role": "assistant", "content": a["response"]}],
             "rejected": [{"role": "assistant", "content": b["response"]}],
             "seed_id": a["seed_id"], "group_id": a["group_id"],
             "chosen_instruction_id": a["instruction_id"], "rejected_instruction_id": b["instruction_id"]}
            for a, b in pairs]


def eval_rows(variants: List[Row]) -> List[Row]:
    return [{"id": v["instruction_id"], "instruction": v["instruction"], "response": v["response"],
             **{k: v.get(k) for k in EVAL_FIELDS}} for v in variants]


def det_rows(variants: List[Row]) -> List[Row]:
    return [{"id": f"{v['instruction_id']}|{w['instruction_id']}", "instruction": v["instruction"],
             "response": w["response"], "label": "Yes" if w is v else "No", "seed_id": v["seed_id"],
             "group_id": v["group_id"], "instruction_id": v["instruction_id"],
             "response_instruction_id": w["instruction_id"]}
            for v in variants for w in variants]


def by_group(rows: List[Row]) -> Dict[str, List[Row]]:
    groups: Dict[str, List[Row]] = {}
    for r in rows:
        groups.setdefault(r["group_id"], []).append(r)
    return groups


def training_groups(groups: Dict[str, List[Row]], seed: int, train_seeds: Optional[int]) -> List[str]:
    """The seeds kept for sft/dpo/plain. Table 3: fewer training seeds, the same eval split; a seeded choice
    among the seeds left for training."""
    trainable = [g for g, ms in groups.items() if not ms[0]["eval_holdout"]]
    if train_seeds is None or train_seeds >= len(trainable):
        return trainable
    keep = set(rng(seed, "train_seeds").sample(trainable, train_seeds))
    return [g for g in trainable if g in keep]


def assemble(rows: List[Row], ctx: BuildContext, *, seed: int, max_pairs_per_seed: Optional[int],
             eval_sub_instructions: int, train_seeds: Optional[int] = None
             ) -> Tuple[Dict[str, List[Row]], Dict[str, Any]]:
    """(splits, the assembly's line for the steps table when train_seeds cut the training seeds)."""
    groups = by_group(rows)
    splits: Dict[str, List[Row]] = {name: [] for name in SPLITS}
    n_trainable = sum(1 for ms in groups.values() if not ms[0]["eval_holdout"])
    train = set(training_groups(groups, seed, train_seeds))
    steps: Dict[str, Any] = {}
    if len(train) < n_trainable:
        steps["train_seeds"] = {"in": n_trainable, "out": len(train), "rejected": 0}
        groups = {g: ms for g, ms in groups.items() if ms[0]["eval_holdout"] or g in train}
    for g, members in groups.items():
        members = sorted(members, key=lambda r: r["variant_index"])
        original = next((m for m in members if m["is_original"]), None)
        variants = [m for m in members if not m["is_original"]]
        if original is None or not variants:
            # Responses failed (already in rejects); a seed without its original, or without any variant,
            # would only teach what the plain data already does.
            why = "its original has no response" if original is None else "none of its variants has a response"
            for m in members:
                ctx.reject(STEP, m, f"seed left out: {why}")
            continue
        if original["eval_holdout"]:
            if len(variants) != eval_sub_instructions:
                for m in members:
                    ctx.reject(STEP, m, f"eval seed left out: {len(variants)} of its {eval_sub_instructions} "
                                        f"variants have a response")
                continue
            splits["eval"].extend(eval_rows(variants))
            splits["det"].extend(det_rows(variants))
            continue
        splits["sft"].extend(sft_row(m) for m in members)
        splits["plain"].append(sft_row(original))
        splits["dpo"].extend(dpo_pairs(members, max_pairs_per_seed, rng(seed, "dpo", g)))
    return splits, steps


def split_texts(name: str, rows: List[Row]) -> Dict[str, List[str]]:
    """Instructions and responses of a split, whatever its row format (dpo: the chosen responses)."""
    if name == "dpo":
        return {"instructions": [r["prompt"][0]["content"] for r in rows],
                "responses": [r["chosen"][0]["content"] for r in rows]}
    if rows and "messages" in rows[0]:
        return {"instructions": [r["messages"][0]["content"] for r in rows],
                "responses": [r["messages"][1]["content"] for r in rows]}
    return {"instructions": [r["instruction"] for r in rows], "responses": [r["response"] for r in rows]}
