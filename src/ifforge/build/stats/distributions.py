"""Figure 4 of the Conifer paper for any build: turns per conversation, instruction length and response length in
words, with a histogram each and a few lines for the dataset card.

Lengths count words and punctuation marks separately, the way NLTK's word tokenizer splits text (the paper counts
with NLTK); a regular expression does it here so the numbers never depend on which NLTK data is installed.
"""

from __future__ import annotations

import re
import statistics as st
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
FIGURES = {"turns": "Turns per conversation", "instruction_words": "Instruction length (words)",
           "response_words": "Response length (words)"}
Conversation = Tuple[int, List[str], List[str]]  # (its turns, the instructions measured, the responses measured)


def count_words(text: str) -> int:
    return len(_TOKEN.findall(text or ""))


def user_and_assistant(messages: Sequence[Dict[str, str]]) -> Conversation:
    """A chat's turns (its user messages), every user message as instruction, every assistant one as response."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return (len(users), users,
            [m["content"] for m in messages if m["role"] == "assistant"])


def summary(values: Sequence[int]) -> Dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(values), "mean": round(st.fmean(values), 2), "median": st.median(values),
            "min": min(values), "max": max(values)}


def series(conversations: Iterable[Conversation]) -> Dict[str, List[int]]:
    """The three distributions: one turn count per conversation, one length per instruction and per response."""
    out: Dict[str, List[int]] = {"turns": [], "instruction_words": [], "response_words": []}
    for turns, instructions, responses in conversations:
        out["turns"].append(turns)
        out["instruction_words"] += [count_words(t) for t in instructions]
        out["response_words"] += [count_words(t) for t in responses]
    return out


def distributions(conversations: Iterable[Conversation], out: Optional[Path], prefix: str) -> Dict[str, Any]:
    """Numbers for the manifest, and figures/<prefix>_<series>.png when `out` is given."""
    s = series(conversations)
    stats = {"avg_turns": round(st.fmean(s["turns"]), 2) if s["turns"] else None,
             "turns_histogram": {str(k): v for k, v in sorted(Counter(s["turns"]).items())},
             "instruction_words": summary(s["instruction_words"]), "response_words": summary(s["response_words"]),
             "figures": write_histograms(Path(out) / "figures", s, prefix) if out is not None else []}
    return stats


def write_histograms(folder: Path, values_by_key: Dict[str, List[int]], prefix: str) -> List[str]:
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

    return [save_figure(folder, f"{prefix}_{key}.png", draw(key, values), FIGURES[key])
            for key, values in values_by_key.items() if values]


def lengths_line(stats: Dict[str, Any]) -> str:
    iw, rw = stats["instruction_words"], stats["response_words"]
    return (f"Instruction length: mean {iw['mean']}, median {iw['median']} words; response length: mean "
            f"{rw['mean']}, median {rw['median']} words.")


def card_section(stats: Dict[str, Any], what: str) -> str:
    """Markdown: the Figure 4 distributions of `what` (e.g. "the sft split")."""
    spread = ", ".join(f"{n} with {t}" for t, n in stats["turns_histogram"].items())
    lines = ["### Turns and lengths (Conifer Figure 4)", "",
             f"Over {what}; lengths in words (NLTK-style tokens). {stats['avg_turns']} turns per conversation on "
             f"average ({spread} turns).", lengths_line(stats)]
    if stats["figures"]:
        lines += [""] + [f"![{Path(f).stem}]({f})" for f in stats["figures"]]
    return "\n".join(lines) + "\n"
