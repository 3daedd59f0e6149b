"""Markdown tables laid out like the papers' result tables (one row per model, one column per metric)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence


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
    protocol = metrics.get("protocol")
    if judge:
        notes.append(f"Judge: {judge.get('model')} ({judge.get('backend')})"
                     + (f", {protocol} protocol." if protocol else "."))
    if "unparseable" in metrics:  # always said, 0 included: a reader compares it with the score
        handling = metrics.get("unparseable_rule") or "they are left out of the rates"
        notes.append(f"{metrics['unparseable']} judge answer(s) could not be read; {handling}.")
    for key, what in (("items_left_out", "item(s)"), ("examples_left_out", "example(s)")):
        left = metrics.get(key)
        count = sum(len(v) for v in left.values()) if isinstance(left, dict) else len(left or [])
        if count:
            notes.append(f"{count} {what} left out: a judge call failed (accepted under judge.max_failed_fraction).")
    if metrics.get("not_asked"):
        notes.append(f"{metrics['not_asked']} question(s) not asked after an unreadable answer, as in the "
                     f"benchmark's own code.")
    if metrics.get("generation_failures"):
        notes.append(f"{metrics['generation_failures']} generation(s) failed and are left out of every score "
                     f"(accepted under candidate.max_failed_fraction).")
    return notes


Headline = Dict[str, Dict[str, Any]]  # {table title: {column: value}}: a suite's main numbers for one model


def headline_tables(headline: Headline, label: str, details: Optional[Dict[str, str]] = None,
                    notes: Sequence[str] = ()) -> str:
    """One table per headline title, one row for `label`; `details` adds a parenthesis to a title."""
    out = []
    for i, (title, columns) in enumerate(headline.items()):
        extra = (details or {}).get(title)
        out.append(markdown_table(["Model", *columns], [[label, *columns.values()]],
                                  title=f"{title} ({extra})" if extra else title, notes=notes if i == 0 else ()))
    return "\n".join(out)


def comparison_tables(runs: Dict[str, Headline]) -> str:
    """Several runs side by side, one row per run label, as in the papers' result tables."""
    titles: List[str] = []
    for headline in runs.values():
        titles += [t for t in headline if t not in titles]
    out = []
    for title in titles:
        columns: List[str] = []
        for headline in runs.values():
            columns += [c for c in headline.get(title, {}) if c not in columns]
        rows = [[label, *[runs[label].get(title, {}).get(c) for c in columns]] for label in runs if title in runs[label]]
        out.append(markdown_table(["Model", *columns], rows, title=title))
    return "\n".join(out)
