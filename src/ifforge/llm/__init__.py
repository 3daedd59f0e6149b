"""Generator layer: every model call for generation or judging goes through `make_generator(cfg)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ifforge.llm.base import Backend, Generator
from ifforge.llm.cache import ResponseCache
from ifforge.llm.types import ChatRequest, ChatResult, Completion, GeneratorStats
from ifforge.registry import Registry, discover

BACKENDS = Registry("generator backend")


def make_generator(cfg: Any, cache_path: Optional[str] = None, role: str = "generator",
                   failures_path: Optional[Path] = None) -> Generator:
    """Build the generator for a `generator`/`judge` config node. Raises UserError on what a user must fix.
    Requests that fail after their retries are appended to `failures_path` (JSONL) when given."""
    discover("ifforge.llm.backends")
    backend_cls = BACKENDS.get(str(cfg.name))
    backend: Backend = backend_cls(cfg)
    backend.check()
    cache = ResponseCache(cache_path) if (cache_path and cfg.cache) else None
    return Generator(backend, cfg, cache=cache, role=role, failures_path=failures_path)


__all__ = ["BACKENDS", "Backend", "ChatRequest", "ChatResult", "Completion", "Generator", "GeneratorStats",
           "ResponseCache", "make_generator"]
