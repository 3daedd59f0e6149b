"""General SFT conversations mixed into the Conifer split (the paper trains on Conifer plus 53k ShareGPT).

`augmentation.mix.datasets` is a list of sources in the `seeds` schema (jsonl | hf | sharegpt, path or hf_name,
the same selection rules, dedupe, sample and limit) plus how many to take: `count` (a number of conversations) or
`weight` (conversations per Conifer conversation, e.g. 3.9 for the paper's 53k : 13.6k). Records are whole
conversations: ShareGPT turns ({from, value} or {role, content}) under `conversations_field`, or an instruction
and an answer column (`field`, `response_field`). Unusable records go to rejects under the step "mix".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ifforge.build.context import BuildContext, Step
from ifforge.build.sampling import pick
from ifforge.build.seeds import check_seeds_source, records, selection_reason
from ifforge.config import SeedsConfig
from ifforge.errors import UserError

Row = Dict[str, Any]
Reject = Callable[[Row, str], None]
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
         "bard": "assistant", "bing": "assistant", "system": "system"}


@dataclass
class MixDatasetConfig(SeedsConfig):
    name: str = "sharegpt"
    response_field: Optional[str] = None  # jsonl/hf: the answer column beside `field`
    count: Optional[int] = None  # take this many conversations
    weight: Optional[float] = None  # or this many per Conifer conversation


def check_mix(datasets: List[Any]) -> None:
    for i, ds in enumerate(datasets):
        where = f"augmentation.mix.datasets[{i}]"
        if ds.count is not None and ds.weight is not None:
            raise UserError(f"{where}: set count or weight, not both")
        if (ds.count is not None and ds.count < 0) or (ds.weight is not None and ds.weight < 0):
            raise UserError(f"{where}: count and weight must not be negative")
        if ds.filter:
            raise UserError(f"{where}: the LLM seed filter does not apply to mixed conversations")
        if ds.name != "sharegpt" and not ds.response_field:
            raise UserError(f"{where}: name={ds.name} needs response_field (the answer column), or use sharegpt")
        check_seeds_source(ds)


def check_only(datasets: List[Any]) -> None:
    """`mix.only=true` makes no strategy conversation, so a `weight` (conversations per strategy conversation) has
    nothing to scale."""
    if not datasets:
        raise UserError("augmentation.mix.only=true needs augmentation.mix.datasets")
    for i, ds in enumerate(datasets):
        if ds.weight is not None:
            raise UserError(f"augmentation.mix.datasets[{i}].weight counts per generated conversation, and "
                            f"augmentation.mix.only=true generates none: set its count instead (or neither, for "
                            f"every usable conversation)")


class GeneralOnly(Step):
    """`mix.only=true` (Conifer's "w/o Conifer" row): the split is the general conversations alone, so the
    strategy's steps are replaced by this one, which asks nothing and passes no row on (the response mode then has
    nothing to answer either). It declares what the replaced steps write, so the wiring check still holds."""

    name = "mix_only"
    reads = ("seed_id",)

    def __init__(self, replaced: Sequence[Step]):
        self.writes = tuple(dict.fromkeys(field for step in replaced for field in step.writes))

    def __call__(self, rows: List[Row], ctx: BuildContext) -> List[Row]:
        return []


def _turns(rec: Row, ds: Any) -> Tuple[Optional[List[Dict[str, str]]], str]:
    """(messages, "") or (None, why not)."""
    if ds.name != "sharegpt":
        q, a = rec.get(ds.field), rec.get(ds.response_field)
        if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
            return None, f"empty {ds.field!r} or {ds.response_field!r}"
        return [{"role": "user", "content": q.strip()}, {"role": "assistant", "content": a.strip()}], ""
    messages = []
    for t in rec.get(ds.conversations_field) or []:
        who = ROLES.get(str(t.get("from", t.get("role"))).lower()) if isinstance(t, dict) else None
        text = t.get("value", t.get("content")) if isinstance(t, dict) else None
        if who is None or not isinstance(text, str):
            return None, f"unreadable turn {t!r:.80}"
        if who == "system":
            continue
        if messages and messages[-1]["role"] == who:
            return None, "turns do not alternate between user and assistant"
        if not messages and who != "user":
            return None, "does not start with a user turn"
        messages.append({"role": who, "content": text})
    if messages and messages[-1]["role"] == "user":
        messages.pop()  # an unanswered last question teaches nothing
    if not messages or any(not m["content"].strip() for m in messages):
        return None, "no answered user turn" if not messages else "an empty turn"
    return messages, ""


def load_conversations(ds: Any, reject: Reject) -> List[Row]:
    """One source's usable conversations, after the seeds-style selection (rules, dedupe, sample, limit)."""
    out: List[Row] = []
    seen: Dict[str, str] = {}
    for pos, rec, where in records(ds):
        rid = str(rec[ds.id_field]) if ds.id_field and ds.id_field in rec else str(rec.get("id", pos))
        item = {"seed_id": rid, "record": where}
        messages, why = _turns(rec, ds)
        if messages is None:
            reject(item, why)
            continue
        why = selection_reason(messages[0]["content"].strip(), ds, seen, rid, subject="first turn ")
        if why:
            reject(item, why)
            continue
        out.append({"messages": messages, "seed_id": rid})
    if ds.sample is not None:
        keep = pick((r["seed_id"] for r in out), ds.sample, ds.seed)
        out = [r for r in out if r["seed_id"] in keep]
    return out[: ds.limit] if ds.limit is not None else out


def mixed_conversations(datasets: List[Any], n_conifer: int, seed: int, reject: Reject) -> Tuple[List[Row], List[Row]]:
    """(conversation rows for the split, one summary per source for the statistics)."""
    rows: List[Row] = []
    summary: List[Row] = []
    for i, ds in enumerate(datasets):
        source = ds.path or ds.hf_name
        found = load_conversations(ds, reject)
        want = ds.count if ds.count is not None else (round(ds.weight * n_conifer) if ds.weight is not None else None)
        keep = pick((r["seed_id"] for r in found), want, seed)
        chosen = [r for r in found if r["seed_id"] in keep]
        summary.append({"source": str(source), "available": len(found), "requested": want, "used": len(chosen)})
        for r in chosen:
            rows.append({"messages": r["messages"], "seed_id": r["seed_id"], "group_id": f"mix{i}:{r['seed_id']}",
                         "part": "general", "levels": [], "instruction_ids": []})
    return rows, summary
