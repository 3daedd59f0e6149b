"""Conifer dataset statistics, as in the paper's section 3.3 (Table 1) and Figure 4: conversations per part,
instructions per difficulty level, turns per conversation, instruction and response length in words, with
histograms written as PNG files and a markdown section for the dataset card.

Lengths count words and punctuation marks separately, the way NLTK's word tokenizer splits text (the paper counts
with NLTK); a regular expression does it here so the numbers never depend on which NLTK data is installed. In an
external-feedback conversation [instruction, student answer, critique, teacher answer] only the instruction and
the teacher's answer count as instruction and response; the student's answer and the critique are not data the
paper measures.
"""

from __future__ import annotations

import re
import statistics as st
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
PART_TITLES = {"curriculum": "Easy-to-hard (multi-turn)", "internal_feedback": "Process feedback: internal",
               "external_feedback": "Process feedback: external", "general": "General conversations (mixed in)"}
FIGURES = {"turns": "Turns per conversation", "instruction_words": "Instruction length (words)",
           "response_words": "Response length (words)"}


def count_words(text: str) -> int:
    return len(_TOKEN.findall(text or ""))


def _texts(row: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    """(instructions, responses) of one conversation."""
    msgs = row["messages"]
    if row["part"] == "external_feedback" and len(msgs) == 4:
        return [msgs[0]["content"]], [msgs[3]["content"]]
    return ([m["content"] for m in msgs if m["role"] == "user"],
            [m["content"] for m in msgs if m["role"] == "assistant"])


def _summary(values: Sequence[int]) -> Dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(values), "mean": round(st.fmean(values), 2), "median": st.median(values),
            "min": min(values), "max": max(values)}


def conifer_statistics(rows: Sequence[Dict[str, Any]], out: Optional[Path],
                       mix_sources: Sequence[Dict[str, Any]] = ()) -> Dict[str, Any]:
    """Numbers for the manifest (and figures under out/figures/ when `out` is given)."""
    conifer = [r for r in rows if r["part"] != "general"]
    turns = [sum(m["role"] == "user" for m in r["messages"]) for r in conifer]
    instr, resp = [], []
    for r in conifer:
        i, a = _texts(r)
        instr += [count_words(t) for t in i]
        resp += [count_words(t) for t in a]
    external = [r for r in conifer if r["part"] == "external_feedback"]
    by_part = Counter(r["part"] for r in rows)
    stats: Dict[str, Any] = {
        "conversations": len(conifer),
        "conversations_by_part": {p: by_part.get(p, 0) for p in PART_TITLES},
        "instructions_by_part": {p: sum(len(r["levels"]) for r in rows if r["part"] == p) for p in PART_TITLES},
        "instructions_per_level": {str(k): v for k, v in sorted(
            Counter(lv for r in conifer if r["part"] == "curriculum" for lv in r["levels"]).items())},
        "avg_turns": round(st.fmean(turns), 2) if turns else None,
        "turns_histogram": {str(k): v for k, v in sorted(Counter(turns).items())},
        "instruction_words": _summary(instr),
        "response_words": _summary(resp),
        "external_feedback": {"with_critique": sum(len(r["messages"]) == 4 for r in external),
                              "without_critique": sum(len(r["messages"]) == 2 for r in external)},
        "mix_sources": list(mix_sources),
        "figures": [],
    }
    if out is not None:
        stats["figures"] = write_histograms(Path(out) / "figures",
                                            {"turns": turns, "instruction_words": instr, "response_words": resp})
    return stats


def write_histograms(folder: Path, series: Dict[str, List[int]]) -> List[str]:
    """One PNG per non-empty series; returns paths relative to the artifact directory."""
    from ifforge.build.stats.figures import save_figure

    def draw(key: str, values: List[int]):
        def on(ax: Any) -> None:
            if key == "turns":  # few distinct values: one bar each
                counts = Counter(values)
                ax.bar(list(counts), list(counts.values()), width=0.8, color="#3b7dd8")
                ax.set_xticks(sorted(counts))
            else:
                ax.hist(values, bins=min(40, max(5, len(set(values)))), color="#3b7dd8")
        return on

    return [save_figure(folder, f"conifer_{key}.png", draw(key, values), FIGURES[key])
            for key, values in series.items() if values]


def card_section(stats: Dict[str, Any]) -> str:
    lines = ["## Conifer statistics", "",
             "Counted as in the paper's Table 1 (section 3.3); lengths in words (NLTK-style tokens).", "",
             "| part | conversations | instructions |", "|---|---|---|"]
    for part, title in PART_TITLES.items():
        n = stats["conversations_by_part"][part]
        if part == "general" and not n:
            continue
        lines.append(f"| {title} | {n} | {stats['instructions_by_part'][part]} |")
        if part == "curriculum":
            lines += [f"| &nbsp;&nbsp;difficulty {lv} | | {k} |" for lv, k in stats["instructions_per_level"].items()]
    ext = stats["external_feedback"]
    iw, rw = stats["instruction_words"], stats["response_words"]
    spread = ", ".join(f"{n} with {t}" for t, n in stats["turns_histogram"].items())
    if stats["conversations"]:
        lines += ["", f"{stats['conversations']} Conifer conversations, {stats['avg_turns']} turns on average "
                      f"({spread} turns). External feedback: {ext['with_critique']} with a critique and revision, "
                      f"{ext['without_critique']} where the student broke no constraint.",
                  f"Instruction length: mean {iw['mean']}, median {iw['median']} words; response length: mean "
                  f"{rw['mean']}, median {rw['median']} words."]
    else:
        lines += ["", "No Conifer conversations in this split (see `rejects.jsonl`, or `mix.only`)."]
    for src in stats["mix_sources"]:
        lines.append(f"Mixed in from {src['source']}: {src['used']} of {src['available']} conversations "
                     f"(requested {src['requested'] if src['requested'] is not None else 'all'}).")
    if stats["figures"]:
        lines += [""] + [f"![{Path(f).stem}]({f})" for f in stats["figures"]]
    return "\n".join(lines) + "\n"
