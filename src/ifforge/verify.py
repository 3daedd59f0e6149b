"""`ifforge-verify PATH...`: check done artifacts against their manifests, file by file (sizes and SHA-256).

PATH is an artifact directory or any folder above artifacts (e.g. `./artifacts`). Prints one line per artifact and
exits 1 when any is damaged. A run checks sizes before every reuse on its own; this (or `verify=hash`) also
catches a file whose content changed at the same size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

from ifforge.artifacts import MANIFEST, Artifact


def find_artifacts(path: Path) -> List[Path]:
    if (path / MANIFEST).is_file():
        return [path]
    return sorted(m.parent for m in path.rglob(MANIFEST) if ".damaged-" not in str(m.parent))


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ifforge-verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="artifact directories, or folders that hold artifacts")
    args = parser.parse_args(argv)
    damaged = checked = 0
    for root in args.paths:
        if not root.is_dir():
            print(f"ifforge-verify: error: not a directory: {root}", file=sys.stderr)
            return 2
        for path in find_artifacts(root):
            art = Artifact(stage=path.parent.name, fingerprint=path.name, path=path)
            problem = art.problem(hashes=True)
            checked += 1
            damaged += problem is not None
            print(f"ok       {path}" if problem is None else f"DAMAGED  {path}: {problem}")
    if not checked:
        print("ifforge-verify: error: no artifact (no manifest.json) under the given paths", file=sys.stderr)
        return 2
    print(f"{checked} artifact(s) checked, {damaged} damaged")
    return 1 if damaged else 0


if __name__ == "__main__":
    sys.exit(main())
