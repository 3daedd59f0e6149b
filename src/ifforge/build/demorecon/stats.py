"""Table 1 of the DeMoRecon paper for a build (instructions, average instruction and response tokens, response
uniformity U per split), the Figure 2 t-SNE plot, and the dataset card section that shows both.

With `stats.compare_modes`, the training variants are also answered in the other response mode (direct if this
build is reference, and the other way round), so the table and the figure show Aug and Ref side by side as in the
paper. Those extra requests go through the same generator and cache: after a build in each mode they cost nothing.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Dict, List, Optional, Sequence

from ifforge.build.context import BuildContext, Row
from ifforge.build.demorecon.assembly import SPLITS, split_texts

log = logging.getLogger("ifforge")

FIGURE = "tsne.png"
PAPER_NAMES = {"direct": "Aug", "reference": "Ref"}
COLOURS = {"original": "#9e9e9e", "variant": "#ff8c00", "direct": "#ff8c00", "reference": "#1f77b4"}
U_SPLITS = ("sft", "eval", "plain")  # responses of dpo and det repeat those of sft and eval


def other_mode(mode: str) -> Optional[str]:
    return {"direct": "reference", "reference": "direct"}.get(mode)


def answer_in_other_mode(sft: List[Row], mode: str, ctx: BuildContext) -> Dict[str, str]:
    """{instruction_id: response} for the sft variants, answered in `mode` with its default settings plus this
    build's response params."""
    from ifforge.build.respond.direct import AnswerDirectly
    from ifforge.build.respond.reference import ReviseOriginalResponses

    params = dict(ctx.cfg.response.get("params") or {})
    rows = [{"seed_id": r["seed_id"], "group_id": r["group_id"], "instruction_id": r["instruction_id"],
             "is_original": r["is_original"], "instruction": r["messages"][0]["content"],
             "response": r["messages"][1]["content"]} for r in sft]
    # Reference revises each original's response (the sft rows carry them); direct needs the variants only.
    step = ReviseOriginalResponses(params) if mode == "reference" else AnswerDirectly(params)
    step.name = f"compare_{mode}"  # its failures are filed under this name in rejects.jsonl
    todo = rows if mode == "reference" else [r for r in rows if not r["is_original"]]
    return {r["instruction_id"]: r["response"] for r in step(todo, ctx) if not r["is_original"]}


def _sample(items: Sequence[Any], k: int, rng: random.Random) -> List[Any]:
    return list(items) if len(items) <= k else [items[i] for i in sorted(rng.sample(range(len(items)), k))]


def compute(splits: Dict[str, List[Row]], ctx: BuildContext, stats_cfg: Any, seed: int) -> Dict[str, Any]:
    from ifforge.build.stats.embeddings import Embedder
    from ifforge.build.stats.tokens import TokenCounter
    from ifforge.build.stats.uniformity import distribution_uniformity

    mode = str(ctx.cfg.response.name)
    tokens = TokenCounter(stats_cfg.tokenizer)
    embedder = Embedder(stats_cfg.embedding_model, device=stats_cfg.device, batch_size=stats_cfg.batch_size)
    table: Dict[str, Dict[str, Any]] = {}
    for name in SPLITS:
        rows = splits.get(name) or []
        if not rows:
            continue
        t = split_texts(name, rows)
        table[name] = {"instructions": len(rows), "instruction_tokens": tokens.average(t["instructions"]),
                       "response_tokens": tokens.average(t["responses"]),
                       "uniformity": _round(distribution_uniformity(embedder.encode(t["responses"])))
                       if name in U_SPLITS else None}
    result: Dict[str, Any] = {"table1": table, "response_mode": mode, "tokenizer": tokens.name,
                              "embedding_model": embedder.name}

    sft = splits.get("sft") or []
    originals = [r for r in sft if r["is_original"]]
    variants = [r for r in sft if not r["is_original"]]
    other = other_mode(mode) if stats_cfg.compare_modes else None
    other_responses: Dict[str, str] = {}
    if other and variants:
        other_responses = answer_in_other_mode(sft, other, ctx)
        answered = [r for r in variants if r["instruction_id"] in other_responses]
        texts = [r["messages"][1]["content"] for r in originals] + [other_responses[r["instruction_id"]]
                                                                    for r in answered]
        result["compare"] = {other: {"instructions": len(originals) + len(answered),
                                     "response_tokens": tokens.average(texts),
                                     "uniformity": _round(distribution_uniformity(embedder.encode(texts)))}}

    if stats_cfg.figure and variants:
        from ifforge.build.stats.tsne import plot_panels

        rng = random.Random(f"{seed}:figure")
        cap = int(stats_cfg.figure_max_points)
        orig_s, var_s = _sample(originals, cap, rng), _sample(variants, cap, rng)
        instr = lambda rs: embedder.encode([r["messages"][0]["content"] for r in rs])  # noqa: E731
        resp = lambda rs: embedder.encode([r["messages"][1]["content"] for r in rs])  # noqa: E731
        response_sets = [("original", COLOURS["original"], resp(orig_s)),
                         (f"variant, {mode}", COLOURS[mode], resp(var_s))]
        if other_responses:
            ids = [r["instruction_id"] for r in var_s if r["instruction_id"] in other_responses]
            response_sets.append((f"variant, {other}", COLOURS[other],
                                  embedder.encode([other_responses[i] for i in ids])))
        drawn = plot_panels(ctx.out / FIGURE, [
            ("Instructions (sft)", [("original", COLOURS["original"], instr(orig_s)),
                                    ("variant", COLOURS["variant"], instr(var_s))]),
            ("Responses (sft)", response_sets)], seed=seed)
        result["figure"] = FIGURE if drawn else None
    return result


def _round(x: Optional[float]) -> Optional[float]:
    # Significant digits, not decimals: U of near-identical responses is tiny but still worth comparing.
    return None if x is None else float(f"{x:.4g}")


def _fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:,}" if isinstance(x, int) else f"{x:g}")


def card_section(result: Dict[str, Any], summary: Dict[str, Any]) -> str:
    """Markdown: Table 1 (columns in the paper's order), the variant bookkeeping, and the figure."""
    mode = result.get("response_mode", "")
    columns = [(n, result["table1"][n]) for n in ("eval", "sft", "dpo", "det", "plain") if n in result["table1"]]
    heads = [f"{n} ({PAPER_NAMES.get(mode, mode)})" if n in ("sft", "dpo") else n for n, _ in columns]
    for other, vals in (result.get("compare") or {}).items():
        columns.append((other, {**vals, "instruction_tokens": None}))
        heads.append(f"sft ({PAPER_NAMES.get(other, other)}, compare)")
    lines = ["## DeMoRecon statistics", "",
             f"Tokens counted with `{result['tokenizer']}`; U (eqs. 1-3: variance of nearest-neighbour distances "
             f"between `{result['embedding_model']}` response embeddings) over each split's responses. "
             f"dpo responses are the chosen ones; det pairs repeat eval's responses.", "",
             "| | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for key, label in (("instructions", "Number of instructions"), ("instruction_tokens", "Instruction avg tokens"),
                       ("response_tokens", "Response avg tokens"), ("uniformity", "U of responses")):
        lines.append(f"| {label} | " + " | ".join(_fmt(c.get(key)) for _, c in columns) + " |")
    lines += ["", summary_text(summary)]
    if result.get("figure"):
        lines += ["", f"![t-SNE of sft instructions and responses]({result['figure']})",
                  "", "t-SNE of sentence embeddings: instructions (originals vs variants), then responses "
                      "(originals vs variants in each response mode built)."]
    return "\n".join(lines)


def summary_text(summary: Dict[str, Any]) -> str:
    dropped = summary.get("variants_dropped") or {}
    why = "; ".join(f"{k}: {v}" for k, v in sorted(dropped.items())) or "none"
    return (f"Variants: {summary.get('variants_kept', 0)} kept of {summary.get('sub_instructions', 0)} "
            f"sub-instructions (dropped: {why}); {summary.get('variants_not_selected', 0)} not selected by "
            f"variants_per_seed; {summary.get('eval_seeds', 0)} eval seeds held out of "
            f"{summary.get('eval_eligible_seeds', 0)} eligible.")
