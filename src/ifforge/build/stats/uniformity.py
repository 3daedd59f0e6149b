"""Distribution uniformity U (DeMoRecon eqs. 1-3, after Guo et al. 2023): the variance of every embedding's
Euclidean distance to its nearest neighbour, U = 1/Q * sum_i (d_i - mu)^2 with mu = 1/Q * sum_i d_i."""

from __future__ import annotations

from typing import Optional


def nearest_neighbour_distances(emb, chunk: int = 1024):
    """d_i = ||e_i - e_NN(i)|| for every row, computed in row chunks so memory stays O(chunk * Q)."""
    import numpy as np

    x = np.asarray(emb, dtype=np.float64)
    sq = (x * x).sum(axis=1)
    out = np.empty(len(x))
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk]
        d2 = sq[start:start + chunk, None] + sq[None, :] - 2.0 * block @ x.T
        d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not its own neighbour
        out[start:start + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def distribution_uniformity(emb) -> Optional[float]:
    """U of a set of embeddings; None for fewer than two (no neighbour to measure)."""
    if len(emb) < 2:
        return None
    d = nearest_neighbour_distances(emb)
    return float(((d - d.mean()) ** 2).mean())
