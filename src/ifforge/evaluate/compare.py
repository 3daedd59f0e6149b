"""Several eval runs side by side, one row per run, as in the papers' result tables.

    python -m ifforge.evaluate.compare "Ori.=artifacts/eval/<fp>" "SFT Aug.=artifacts/eval/<fp2>" [> table.md]

Each argument is LABEL=PATH, PATH an eval stage artifact (its metrics.json maps suite -> metrics).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

from ifforge.errors import UserError
from ifforge.evaluate import SUITES
from ifforge.evaluate.tables import Headline, comparison_tables
from ifforge.registry import discover


def load_runs(pairs: List[str]) -> Dict[str, Headline]:
    discover("ifforge.evaluate.suites")
    runs: Dict[str, Headline] = {}
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep:
            raise UserError(f"expected LABEL=PATH, got {pair!r}")
        metrics_file = Path(path) / "metrics.json" if Path(path).is_dir() else Path(path)
        if not metrics_file.is_file():
            raise UserError(f"no metrics.json at {path}")
        headline: Headline = {}
        for suite, metrics in json.loads(metrics_file.read_text()).items():
            headline.update(SUITES.get(suite).headline(metrics))
        runs[label] = headline
    return runs


def main(argv: List[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    try:
        print(comparison_tables(load_runs(args)))
    except UserError as e:
        print(f"ifforge: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
