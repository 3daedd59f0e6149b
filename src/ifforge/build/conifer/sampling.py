"""Seeded choices that do not depend on row order or on which other rows exist.

Each key (an instruction id) gets a rank from a hash of (seed, key); "pick n" takes the n lowest ranks. So the
same rows are chosen whether a run has 10 or 10,000 of them, a row dropped upstream never reshuffles the others,
and a rebuild sends byte-identical requests, which the generator cache answers.
"""

from __future__ import annotations

import hashlib
import random
from typing import Iterable, Optional, Set


def _digest(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).digest()


def pick(keys: Iterable[str], n: Optional[int], seed: int) -> Set[str]:
    """The keys with the n lowest ranks (all keys when n is None)."""
    keys = list(dict.fromkeys(keys))
    if n is None or n >= len(keys):
        return set(keys)
    return set(sorted(keys, key=lambda k: _digest(seed, k))[: max(0, n)])


def rng_for(seed: int, key: str) -> random.Random:
    """A private random generator for one key."""
    return random.Random(int.from_bytes(_digest(seed, key)[:8], "big"))
