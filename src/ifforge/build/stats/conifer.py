"""Conifer dataset statistics, as in the paper's section 3.3 (Table 1) and Figure 4: conversations per part,
instructions per difficulty level, turns per conversation, instruction and response length in words, with
histograms written as PNG files and a markdown section for the dataset card.

Lengths are counted by ifforge.build.stats.distributions (NLTK-style words), which draws the same Figure 4 for
other strategies' builds. In an external-feedback conversation [instruction, student answer, critique, teacher
answer] only the instruction and the teacher's answer count as instruction and response; the student's answer and
the critique are not data the paper measures.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ifforge.build.stats.distributions import distributions, lengths_line, user_and_assistant

PART_TITLES = {"curriculum": "Easy-to-hard (multi-turn)", "internal_feedback": "Process feedback: internal",
               "external_feedback": "Process feedback: external", "general": "General conversations (mixed in)"}


def _texts(row: Dict[str, Any]) -> Tuple[int, List[str], List[str]]:
    """(turns, instructions, responses) of one conversation."""
    msgs = row["messages"]
    if row["part"] == "external_feedback" and len(msgs) == 4:  # two turns, one instruction and answer measured
        return 2, [msgs[0]["content"]], [msgs[3]["content"]]
    return user_and_assistant(msgs)


def conifer_statistics(rows: Sequence[Dict[str, Any]], out: Optional[Path],
                       mix_sources: Sequence[Dict[str, Any]] = ()) -> Dict[str, Any]:
    """Numbers for the manifest (and figures under out/figures/ when `out` is given)."""
    conifer = [r for r in rows if r["part"] != "general"]
    figure4 = distributions((_texts(r) for r in conifer), out, "conifer")
    external = [r for r in conifer if r["part"] == "external_feedback"]
    by_part = Counter(r["part"] for r in rows)
    stats: Dict[str, Any] = {
        "conversations": len(conifer),
        "conversations_by_part": {p: by_part.get(p, 0) for p in PART_TITLES},
        "instructions_by_part": {p: sum(len(r["levels"]) for r in rows if r["part"] == p) for p in PART_TITLES},
        "instructions_per_level": {str(k): v for k, v in sorted(
            Counter(lv for r in conifer if r["part"] == "curriculum" for lv in r["levels"]).items())},
        **figure4,
        "external_feedback": {"with_critique": sum(len(r["messages"]) == 4 for r in external),
                              "without_critique": sum(len(r["messages"]) == 2 for r in external)},
        "mix_sources": list(mix_sources),
    }
    return stats


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
    spread = ", ".join(f"{n} with {t}" for t, n in stats["turns_histogram"].items())
    if stats["conversations"]:
        lines += ["", f"{stats['conversations']} Conifer conversations, {stats['avg_turns']} turns on average "
                      f"({spread} turns). External feedback: {ext['with_critique']} with a critique and revision, "
                      f"{ext['without_critique']} where the student broke no constraint.",
                  lengths_line(stats)]
    else:
        lines += ["", "No Conifer conversations in this split (see `rejects.jsonl`, or `mix.only`)."]
    for src in stats["mix_sources"]:
        lines.append(f"Mixed in from {src['source']}: {src['used']} of {src['available']} conversations "
                     f"(requested {src['requested'] if src['requested'] is not None else 'all'}).")
    if stats["figures"]:
        lines += [""] + [f"![{Path(f).stem}]({f})" for f in stats["figures"]]
    return "\n".join(lines) + "\n"
