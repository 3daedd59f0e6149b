"""Gather every job of a sweep into `summary.md`, `summary.csv` and `summary.png` in the sweep directory.

Rows are jobs (labelled by the experiment's `summary.rows` config keys, or by the job's overrides), columns are
benchmark metrics (the experiment's `summary.columns`, or each suite's headline metric). A job that failed is a
row with its error; a job that has not finished is a row that says so: no job is ever silently missing.
`ifforge-summary SWEEP_DIR` rebuilds the summary of a finished or partly finished sweep.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def headline_columns() -> Dict[str, str]:
    """Every suite's `summary_columns` as {label: "<suite>.<metric key>"}, suites in `eval=all`'s order (the
    papers' order), then any suite that file leaves out."""
    from ifforge.evaluate import SUITES
    from ifforge.registry import discover

    discover("ifforge.evaluate.suites")
    listed = yaml.safe_load((CONF_DIR / "eval" / "all.yaml").read_text()).get("defaults") or []
    order = [n for n in listed if isinstance(n, str) and n in SUITES.names()]
    order += [n for n in SUITES.names() if n not in order]
    return {label: f"{name}.{key}" for name in order for label, key in SUITES.get(name).summary_columns.items()}


def _get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def read_job(job_dir: Path) -> Dict[str, Any]:
    """{'dir', 'config', 'overrides', 'status', 'error', 'metrics'} for one job directory."""
    hydra_dir = job_dir / ".hydra"
    config = yaml.safe_load((hydra_dir / "config.yaml").read_text()) if (hydra_dir / "config.yaml").is_file() else {}
    overrides = yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) if (hydra_dir / "overrides.yaml").is_file() else []
    config = config or {}
    hydra_file = hydra_dir / "hydra.yaml"
    if hydra_file.is_file():  # the group choices (model, variant, ...) label rows as `choices.<group>`
        hydra_cfg = yaml.safe_load(hydra_file.read_text()) or {}
        config["choices"] = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    job: Dict[str, Any] = {"dir": str(job_dir), "config": config, "overrides": overrides or [],
                           "status": "running or killed", "error": "", "metrics": {}}
    status_file = job_dir / "status.json"
    if status_file.is_file():
        status = json.loads(status_file.read_text())
        job["status"] = status.get("status", job["status"])
        job["error"] = status.get("error", "")
    outputs_file = job_dir / "outputs.json"
    if outputs_file.is_file():
        outputs = json.loads(outputs_file.read_text())
        metrics_file = Path(outputs["eval"]) / "metrics.json" if "eval" in outputs else None
        if metrics_file is not None and metrics_file.is_file():
            job["metrics"] = json.loads(metrics_file.read_text())
        job["outputs"] = outputs
    return job


def job_dirs(sweep_dir: Path) -> List[Path]:
    dirs = [p.parent.parent for p in sweep_dir.glob("*/.hydra/config.yaml")]
    return sorted(dirs, key=lambda p: (len(p.name), p.name))  # 0, 1, ..., 10 in numeric order


def _label(job: Dict[str, Any], rows: List[str], common: set) -> List[str]:
    if rows:
        return [str(_get(job["config"], key)) for key in rows]
    varying = [o for o in job["overrides"] if o not in common]  # what tells this job apart from the others
    return [" ".join(varying) or Path(job["dir"]).name]


def build_table(sweep_dir: Path, rows: Optional[List[str]] = None, columns: Optional[Dict[str, str]] = None):
    jobs = [read_job(d) for d in job_dirs(sweep_dir)]
    first = next((j["config"] for j in jobs if j["config"]), {})
    spec = first.get("summary") or {}
    rows = list(rows if rows is not None else spec.get("rows") or [])
    columns = dict(columns if columns is not None else spec.get("columns") or {})
    if not columns:  # every headline metric that any job produced
        columns = {k: v for k, v in headline_columns().items()
                   if any(_get(j["metrics"], v) is not None for j in jobs)}
    header = (rows or ["job"]) + list(columns) + ["status"]
    common = set.intersection(*(set(j["overrides"]) for j in jobs)) if len(jobs) > 1 else set()
    table = []
    for j in jobs:
        values = [_get(j["metrics"], path) for path in columns.values()]
        status = j["status"] if not j["error"] else f"{j['status']}: {j['error']}"
        table.append(_label(j, rows, common) + ["" if v is None else v for v in values] + [status])
    title = spec.get("title") or first.get("experiment") or "/".join(sweep_dir.parts[-2:])
    return title, header, table, len(rows) or 1


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v).replace("|", "\\|").replace("\n", " ")


def write_summary(sweep_dir: str | Path) -> Path:
    sweep_dir = Path(sweep_dir)
    title, header, table, n_label = build_table(sweep_dir)
    with (sweep_dir / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(table)
    md = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table]
    (sweep_dir / "summary.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    _plot(sweep_dir / "summary.png", title, header, table, n_label)
    return sweep_dir / "summary.md"


def _plot(path: Path, title: str, header: List[str], table: List[List[Any]], n_label: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = header[n_label:-1]
    labels = [" / ".join(str(x) for x in row[:n_label]) for row in table]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(metrics) * max(1, len(table)) ** 0.5), 4.5))
    width = 0.8 / max(1, len(table))
    for i, (label, row) in enumerate(zip(labels, table)):
        vals = [v if isinstance(v, (int, float)) else 0.0 for v in row[n_label:-1]]
        ax.bar([m + i * width for m in range(len(metrics))], vals, width, label=label[:60])
    ax.set_xticks([m + width * (len(table) - 1) / 2 for m in range(len(metrics))])
    ax.set_xticklabels(metrics, rotation=20, ha="right", fontsize=8)
    ax.set_title(title)
    if table:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> None:
    """`ifforge-summary SWEEP_DIR`: (re)build a sweep's summary from its job directories."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: ifforge-summary SWEEP_DIR   (a multirun/<date>/<time> directory)", file=sys.stderr)
        sys.exit(2)
    if not job_dirs(Path(args[0])):
        print(f"ifforge-summary: error: no job directories in {args[0]}", file=sys.stderr)
        sys.exit(2)
    print(write_summary(args[0]))
