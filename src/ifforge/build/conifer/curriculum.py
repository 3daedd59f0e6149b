"""Turning answered instruction rows into Conifer's training conversations (section 3.2), with the switches that
reproduce Table 4's progressive-learning ablations:

  order        easy_to_hard | hard_to_easy | random   the order of one query's levels inside its conversation
  levels       all | easy_only | hard_only            which levels are kept (ranges: easy_levels, hard_levels)
  single_turn  false | true                           one multi-turn conversation per reframed query, or one
                                                      conversation per instruction

Feedback conversations (written by `response=process_feedback` into `feedback_conversations`) are separate
samples, as in the paper's Table 1, and are not touched by these switches. Every conversation row carries
`part` (curriculum | internal_feedback | external_feedback | general), `levels` (the difficulty of each
instruction turn) and the ids training and statistics group by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from ifforge.build.sampling import rng_for
from ifforge.build.context import Row
from ifforge.errors import UserError

ORDERS = ("easy_to_hard", "hard_to_easy", "random")
LEVEL_SETS = ("all", "easy_only", "hard_only")


def _range(value: Sequence[int], name: str) -> Tuple[int, int]:
    v = list(value) if value is not None else []
    if len(v) != 2 or not all(isinstance(x, int) for x in v) or v[0] > v[1]:
        raise UserError(f"augmentation.curriculum.{name} must be an inclusive range [low, high], got {v!r}")
    return v[0], v[1]


@dataclass(frozen=True)
class Curriculum:
    order: str = "easy_to_hard"
    levels: str = "all"
    easy_levels: Tuple[int, int] = (1, 3)
    hard_levels: Tuple[int, int] = (4, 5)
    single_turn: bool = False
    seed: int = 0  # for order=random

    @classmethod
    def from_config(cls, node) -> "Curriculum":
        order, levels = str(getattr(node.order, "value", node.order)), str(getattr(node.levels, "value", node.levels))
        if order not in ORDERS:
            raise UserError(f"augmentation.curriculum.order must be one of {', '.join(ORDERS)}, not {order!r}")
        if levels not in LEVEL_SETS:
            raise UserError(f"augmentation.curriculum.levels must be one of {', '.join(LEVEL_SETS)}, not {levels!r}")
        return cls(order=order, levels=levels, easy_levels=_range(node.easy_levels, "easy_levels"),
                   hard_levels=_range(node.hard_levels, "hard_levels"), single_turn=bool(node.single_turn),
                   seed=int(node.seed))

    def keeps(self, level: int) -> bool:
        if self.levels == "easy_only":
            return self.easy_levels[0] <= level <= self.easy_levels[1]
        if self.levels == "hard_only":
            return self.hard_levels[0] <= level <= self.hard_levels[1]
        return True

    def arrange(self, rows: List[Row], group_id: str) -> List[Row]:
        if self.order == "random":
            shuffled = sorted(rows, key=lambda r: r["level"])
            rng_for(self.seed, group_id).shuffle(shuffled)  # per conversation, independent of the others
            return shuffled
        return sorted(rows, key=lambda r: r["level"], reverse=self.order == "hard_to_easy")


def conversation(rows: Sequence[Row], part: str) -> Row:
    messages = []
    for r in rows:
        messages += [{"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["response"]}]
    return {"messages": messages, "seed_id": rows[0]["seed_id"], "group_id": rows[0]["group_id"], "part": part,
            "levels": [r["level"] for r in rows], "instruction_ids": [r["instruction_id"] for r in rows]}


def curriculum_conversations(rows: Sequence[Row], cur: Curriculum) -> List[Row]:
    groups: Dict[str, List[Row]] = {}
    for r in rows:  # dict keeps first-seen order: conversations follow the seeds' order
        groups.setdefault(r["group_id"], []).append(r)
    out: List[Row] = []
    for gid, group in groups.items():
        kept = cur.arrange([r for r in group if cur.keeps(r["level"])], gid)
        if not kept:
            continue
        if cur.single_turn:
            out += [conversation([r], "curriculum") for r in kept]
        else:
            out.append(conversation(kept, "curriculum"))
    return out


def feedback_conversations(rows: Sequence[Row]) -> List[Row]:
    out = []
    for r in rows:
        for fb in r.get("feedback_conversations") or []:
            out.append({"messages": fb["messages"], "seed_id": r["seed_id"], "group_id": r["group_id"],
                        "part": f"{fb['kind']}_feedback", "levels": [r["level"]],
                        "instruction_ids": [r["instruction_id"]]})
    return out
