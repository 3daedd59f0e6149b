"""A tiny registry keyed by config option name: `augmentation.name: none` -> the class registered as "none".

Each option is one module in a registry package; `discover(package)` imports them all, so adding a strategy,
suite or backend means adding one module (and one config file), never editing a switch ladder.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Dict, Optional

from ifforge.config import register_schema
from ifforge.errors import UserError


class Registry:
    def __init__(self, kind: str, group: Optional[str] = None):
        self.kind = kind
        self.group = group  # the Hydra config group whose option schemas this registry owns
        self._items: Dict[str, Any] = {}

    def register(self, name: str, schema: Any = None) -> Callable[[Any], Any]:
        def wrap(obj: Any) -> Any:
            if name in self._items and self._items[name] is not obj:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            if schema is not None and self.group is not None:
                register_schema(self.group, name, schema)
            return obj

        return wrap

    def get(self, name: str) -> Any:
        if name not in self._items:
            raise UserError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)


_discovered: set = set()


def discover(package: str) -> None:
    """Import every module of `package` so that their @register decorators run (once per package: a registry that
    already holds an entry may still miss the modules nobody imported directly)."""
    if package in _discovered:
        return
    _discovered.add(package)
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
