"""Every seeded choice a build makes, for every strategy.

`pick` chooses a subset by key: each key (an instruction id) gets a rank from a hash of (seed, key) and "pick n"
takes the n lowest ranks. So the same rows are chosen whether a run has 10 or 10,000 of them, a row dropped
upstream never reshuffles the others, and a rebuild sends byte-identical requests, which the generator cache
answers. `rng_for` is a private random generator for one key (hash-derived, like `pick`); `rng` one named by
the seed and a path of parts (`rng(0, "variants", group)`), for draws over a list that is already fixed.
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


def rng(seed: int, *parts: str) -> random.Random:
    """A random generator named by the seed and `parts`: rng(0, "dpo", "s1") is Random("0:dpo:s1"), and
    rng(0) is Random(0)."""
    return random.Random(":".join([str(seed), *parts])) if parts else random.Random(seed)
