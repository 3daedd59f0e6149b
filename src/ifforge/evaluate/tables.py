"""Markdown tables laid out like the papers' result tables (one row per model, one column per metric)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence


def cell(value: Any) -> str:
    if value is None:
        return "-"  # the papers' mark for "not measured"; never a silent 0
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: Optional[str] = None,
                   notes: Sequence[str] = ()) -> str:
    lines: List[str] = []
    if title:
        lines += [f"**{title}**", ""]
    lines.append("| " + " | ".join(cell(h) for h in headers) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|")
    for row in rows:
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    if notes:
        lines.append("")
        lines += [f"_{n}_" for n in notes]
    return "\n".join(lines) + "\n"


def judge_note(metrics: dict) -> List[str]:
    """The footnotes every judged table carries: who judged, and what could not be read."""
    notes = []
    judge = metrics.get("judge")
    if judge:
        notes.append(f"Judge: {judge.get('model')} ({judge.get('backend')}).")
    if metrics.get("unparseable"):
        notes.append(f"{metrics['unparseable']} judge answer(s) were missing (failed calls) or could not be parsed; "
                     f"they are left out of the rates.")
    if metrics.get("generation_failures"):
        notes.append(f"{metrics['generation_failures']} generation(s) failed and were scored as empty answers.")
    return notes
