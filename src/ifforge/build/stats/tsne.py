"""t-SNE scatter plots of embedding sets (the DeMoRecon paper's Figure 2 style), written as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

# (legend label, colour, embeddings) for each point set of one panel
PointSet = Tuple[str, str, object]


def tsne_2d(emb, seed: int = 0):
    """2-D t-SNE coordinates; perplexity shrinks for small sets (it must stay below the number of points)."""
    from sklearn.manifold import TSNE

    n = len(emb)
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(emb)


def plot_panels(path: Path, panels: Sequence[Tuple[str, Sequence[PointSet]]], seed: int = 0) -> Optional[Path]:
    """One t-SNE per panel over all of its point sets together (so the sets share coordinates). Panels with
    fewer than 4 points are skipped; returns None when nothing could be drawn."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import numpy as np

    drawable: List[Tuple[str, Sequence[PointSet]]] = [
        (title, [s for s in sets if len(s[2])]) for title, sets in panels
        if sum(len(s[2]) for s in sets) >= 4]
    if not drawable:
        return None
    fig, axes = plt.subplots(len(drawable), 1, figsize=(6, 5 * len(drawable)), squeeze=False)
    for ax, (title, sets) in zip(axes[:, 0], drawable):
        xy = tsne_2d(np.concatenate([np.asarray(s[2]) for s in sets]), seed=seed)
        start = 0
        for label, colour, emb in sets:
            part = xy[start:start + len(emb)]
            start += len(emb)
            ax.scatter(part[:, 0], part[:, 1], s=8, c=colour, alpha=0.6, label=f"{label} ({len(emb)})")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
