"""Write constraints.txt, the lock: the exact version of every package ifforge needs, as installed in this env.

    .venv/bin/python tools/lock.py            # rewrites constraints.txt from what .venv holds now

"Needs": pyproject's dependencies and its `dev` extra, the packages the Makefile installs by `name==version`
(those go in with --no-deps), and everything they require in turn, as far as it is installed (markers and extras
evaluated here). ifforge itself, editable installs, pip/setuptools/wheel, and tools nobody here requires (a linter
installed by hand) stay out. Run it after an upgrade that `make test` passed with.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# Left out like `pip freeze` leaves them out: installer tooling (a setuptools pin would also reach every isolated
# build environment pip makes), and ifforge itself.
SKIP = {"ifforge", "pip", "setuptools", "wheel"}
HEADER = """\
# The lock: the exact versions `make install` installs and `make test` passed with (PIP_CONSTRAINT, see Makefile).
# pyproject.toml declares the compatible ranges a user's own environment may satisfy instead.
# Written by `.venv/bin/python tools/lock.py` from the packages installed in .venv; edit by rerunning it.
# torch is locked without its local label (+cpu here), so the same line fits a CUDA build of that release.
"""


def roots() -> List[Tuple[Requirement, Set[str]]]:
    """(requirement, extras to evaluate its marker with) for ifforge's own and the Makefile's packages."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [(Requirement(r), set()) for r in project["dependencies"]]
    found += [(Requirement(r), {"dev"}) for r in project.get("optional-dependencies", {}).get("dev", [])]
    # `$(PIP) install --no-deps name==version ...` lines: packages whose metadata asks for more than they use.
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        if "install" in line and "--no-deps" in line:
            found += [(Requirement(tok), set()) for tok in re.findall(r"\b[A-Za-z0-9][\w.-]*==[\w.+-]+", line)]
    return found


def closure(start: Iterable[Tuple[Requirement, Set[str]]]) -> Dict[str, md.Distribution]:
    """Installed distributions reachable from `start` through their requirements."""
    seen: Dict[str, md.Distribution] = {}
    expanded: Set[Tuple[str, frozenset]] = set()  # (package, extras) whose requirements are queued already
    todo = list(start)
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            continue
        name = canonicalize_name(req.name)
        try:
            seen[name] = md.distribution(name)
        except md.PackageNotFoundError:  # an optional requirement nothing here installs
            continue
        if (name, frozenset(req.extras)) not in expanded:
            expanded.add((name, frozenset(req.extras)))
            todo += [(Requirement(r), set(req.extras)) for r in seen[name].requires or []]
    return seen


def lock_lines(dists: Dict[str, md.Distribution]) -> List[str]:
    lines = []
    for name, dist in sorted(dists.items()):
        if name in SKIP or '"editable": true' in (dist.read_text("direct_url.json") or ""):
            continue
        version = dist.version.split("+")[0] if name == "torch" else dist.version
        lines.append(f"{dist.metadata['Name']}=={version}")
    return lines


def main() -> None:
    text = HEADER + "\n".join(lock_lines(closure(roots()))) + "\n"
    out = ROOT / "constraints.txt"
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({text.count(chr(10)) - HEADER.count(chr(10))} packages)", file=sys.stderr)


if __name__ == "__main__":
    main()
