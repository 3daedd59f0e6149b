"""Chat-format rows shared by assemblies."""

from __future__ import annotations

from typing import Any, Dict

ROW_KEYS = ("seed_id", "group_id", "instruction_id", "is_original")


def sft_row(row: Dict[str, Any]) -> Dict[str, Any]:
    """A single-turn SFT row: `messages` plus the ids training needs to group a seed with its variants."""
    out = {"messages": [{"role": "user", "content": row["instruction"]},
                        {"role": "assistant", "content": row["response"]}]}
    out.update({k: row[k] for k in ROW_KEYS if k in row})
    return out
