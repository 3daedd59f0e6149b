"""Table 1 of the DeMoRecon paper for a build (instructions, average instruction and response tokens, response
uniformity U per split), the Figure 2 t-SNE plot, and the dataset card section that shows both.

With `stats.compare_modes`, the training variants are also answered in the other response mode (direct if this
build is reference, and the other way round: the strategy's `compare_<mode>` step, run after the responses), so
the table and the figure show Aug and Ref side by side as in the paper. Those extra requests go through the same
generator and cache: after a build in each mode they cost nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ifforge.build.context import Row
from ifforge.build.demorecon.assembly import SPLITS, split_texts
from ifforge.build.sampling import rng

FIGURE = "tsne.png"
PAPER_NAMES = {"direct": "Aug", "reference": "Ref"}
COLOURS = {"original": "#9e9e9e", "variant": "#ff8c00", "direct": "#ff8c00", "reference": "#1f77b4"}
U_SPLITS = ("sft", "eval", "plain")  # responses of dpo and det repeat those of sft and eval


def other_mode(mode: str) -> Optional[str]:
    return {"direct": "reference", "reference": "direct"}.get(mode)


def _sample(items: Sequence[Any], k: int, rng: random.Random) -> List[Any]:
    return list(items) if len(items) <= k else [items[i] for i in sorted(rng.sample(range(len(items)), k))]


def compute(splits: Dict[str, List[Row]], out: Path, stats_cfg: Any, seed: int, mode: str,
            other_responses: Dict[str, str]) -> Dict[str, Any]:
    """{"table1": {split: {instructions, instruction_tokens, response_tokens, uniformity}}, "compare": {...} with
    compare_modes, "figure": file name or None, and the tokenizer / embedding model used}. `other_responses`:
    {instruction_id: answer} of the sft variants in the other response mode (empty without compare_modes)."""
    from ifforge.build.stats.embeddings import Embedder
    from ifforge.build.stats.tokens import TokenCounter
    from ifforge.build.stats.uniformity import distribution_uniformity

    tokens = TokenCounter(stats_cfg.tokenizer)
    embedder = Embedder(stats_cfg.embedding_model, device=stats_cfg.device, batch_size=stats_cfg.batch_size)

    def row_of_table(n: int, instructions: Optional[List[str]], responses: List[str], with_u: bool):
        u = distribution_uniformity(embedder.encode(responses)) if with_u else None
        return {"instructions": n, "instruction_tokens": tokens.average(instructions) if instructions else None,
                "response_tokens": tokens.average(responses), "uniformity": _round(u)}

    table = {}
    for name in SPLITS:
        if splits.get(name):
            t = split_texts(name, splits[name])
            table[name] = row_of_table(len(splits[name]), t["instructions"], t["responses"], name in U_SPLITS)
    result: Dict[str, Any] = {"table1": table, "response_mode": mode, "tokenizer": tokens.name,
                              "embedding_model": embedder.name}

    sft = splits.get("sft") or []
    if sft:  # Conifer's Figure 4 for the training split
        from ifforge.build.stats.distributions import distributions, user_and_assistant

        result["distributions"] = distributions((user_and_assistant(r["messages"]) for r in sft), out, "demorecon")
    originals = [r for r in sft if r["is_original"]]
    variants = [r for r in sft if not r["is_original"]]
    other = other_mode(mode) if stats_cfg.compare_modes else None
    if other and variants:
        # The sft set as the other mode would have built it: same originals, the other mode's variant answers.
        texts = [_response(r) for r in originals] + [other_responses[r["instruction_id"]] for r in variants
                                                     if r["instruction_id"] in other_responses]
        result["compare"] = {other: row_of_table(len(texts), None, texts, True)}

    if stats_cfg.figure and variants:
        from ifforge.build.stats.tsne import plot_panels

        draw = rng(seed, "figure")
        cap = int(stats_cfg.figure_max_points)
        orig_s, var_s = _sample(originals, cap, draw), _sample(variants, cap, draw)
        response_sets = [("original", COLOURS["original"], embedder.encode([_response(r) for r in orig_s])),
                         (f"variant, {mode}", COLOURS.get(mode, "#2ca02c"),
                          embedder.encode([_response(r) for r in var_s]))]
        if other_responses:
            answered = [other_responses[r["instruction_id"]] for r in var_s if r["instruction_id"] in other_responses]
            response_sets.append((f"variant, {other}", COLOURS[other], embedder.encode(answered)))
        instruction_sets = [("original", COLOURS["original"], embedder.encode([_instruction(r) for r in orig_s])),
                            ("variant", COLOURS["variant"], embedder.encode([_instruction(r) for r in var_s]))]
        drawn = plot_panels(out / FIGURE, [("Instructions (sft)", instruction_sets),
                                               ("Responses (sft)", response_sets)], seed=seed)
        result["figure"] = FIGURE if drawn else None
    return result


def _instruction(sft_row: Row) -> str:
    return sft_row["messages"][0]["content"]


def _response(sft_row: Row) -> str:
    return sft_row["messages"][1]["content"]


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
        columns.append((other, vals))
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
    if result.get("distributions"):
        from ifforge.build.stats.distributions import card_section as figure4

        lines += ["", figure4(result["distributions"], f"the sft split ({result['table1']['sft']['instructions']} rows)")]
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
