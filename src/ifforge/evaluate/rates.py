"""Small arithmetic shared by the suites: percentages that say how many items they rest on."""

from __future__ import annotations

from typing import Iterable, Optional


def pct(numer: float, denom: float) -> Optional[float]:
    """A percentage rounded to 2 decimals, None (not 0) when there is nothing to rate."""
    return round(100.0 * numer / denom, 2) if denom else None


def mean(values: Iterable[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 2) if vals else None
