"""Model fixtures shared by generation, training and evaluation tests.

- `smollm2_dir`: the dense SmolLM2-135M-Instruct copy (built once into $IFFORGE_HOME, ~25 s the first time ever,
  then reused by every session).
- `tiny_model_dir`: a random 2-layer Llama (hidden 64) with SmolLM2's tokenizer and chat template, saved to a
  session temp dir; built in about a second from a fixed seed, so its outputs are the same every session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    from ifforge.models import SMOLLM2_ALIAS, resolve_model

    return resolve_model(SMOLLM2_ALIAS)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: str) -> Path:
    from ifforge.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), seed=0)
