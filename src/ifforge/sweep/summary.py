"""Gather every job of a sweep into `summary.md`, `summary.csv` and `summary.png` in the sweep directory.

The experiment's `summary` spec (SummaryConfig in config.py) lays `summary.md` out like the paper's table: `rows`
label the rows, `pivot` spreads one config key's values over column groups, `groups` splits the rows into sections
(or makes one section per metric, as DeMoRecon Table 2 does), `labels` print values under the paper's names and a
`{mean: [...]}` column derives a number from others. Without a spec: one row per job, labelled by the overrides
that tell it apart, and every suite's headline metric.

`summary.csv` stays flat whatever the layout: one line per job with its (labelled) row, pivot and group values,
every metric column, `cost_usd`, the job's directory, its error and its status. `summary.png` draws one bar per
job and metric.

No job is ever silently missing: a failed job's cells say `failed`, an unfinished one's `running`, and each is
listed under the table with its error. Cost: each job's stage manifests (`outputs.json` names them) carry what
their LLM calls cost (`stats.<role>.cost_usd`); when any is non-zero the table gets a cost column and a total for
the sweep, in which an artifact that several jobs share counts once.
`ifforge-summary SWEEP_DIR` rebuilds the summary of a finished or partly finished sweep.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from ifforge.errors import UserError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
METRICS = "metrics"  # `groups: metrics`: one section per metric column
COST = "Cost (USD)"
ABSENT = object()  # a key the job's config does not have (shown as "?")
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


@dataclass
class Column:
    label: str
    sources: List[str]  # one metric path, or what a mean is taken of (metric paths or earlier column labels)
    mean: bool = False


@dataclass
class Spec:
    title: Optional[str] = None
    rows: List[Tuple[str, str]] = field(default_factory=list)  # (header, "{key}" template)
    columns: List[Column] = field(default_factory=list)
    pivot: Optional[str] = None
    groups: Optional[str] = None
    labels: Dict[str, Dict[str, str]] = field(default_factory=dict)


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


# -- the spec -----------------------------------------------------------------------------------------------------

def _entries(value: Any, where: str) -> List[Tuple[str, Any]]:
    """A mapping, or a list of one-entry mappings (a list replaces what an inherited experiment set; Hydra merges
    mappings), as (label, value) pairs; `rows` also takes a bare key (its own header)."""
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    if not isinstance(value, list):
        raise UserError(f"{where} must be a mapping or a list of one-entry mappings (got {value!r})")
    out = []
    for item in value:
        if where == "summary.rows" and isinstance(item, str):
            out.append((item, item))
        elif isinstance(item, Mapping) and len(item) == 1:
            out.extend((str(k), v) for k, v in item.items())
        else:
            raise UserError(f"{where}: each entry must be one `label: value` mapping (got {item!r})")
    return out


def parse_spec(raw: Optional[Mapping[str, Any]]) -> Spec:
    """The `summary` node as a Spec; a malformed one is one line naming the key."""
    raw = dict(raw or {})
    spec = Spec(title=raw.get("title"), pivot=raw.get("pivot"), groups=raw.get("groups"))
    for key in ("title", "pivot", "groups"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise UserError(f"summary.{key} must be a string (got {raw[key]!r})")
    for header, source in _entries(raw.get("rows") or [], "summary.rows"):
        if not isinstance(source, str) or not source:
            raise UserError(f"summary.rows.{header} must be a config key or a text with {{key}} placeholders")
        spec.rows.append((header, source if PLACEHOLDER.search(source) else "{" + source + "}"))
    for label, source in _entries(raw.get("columns") or {}, "summary.columns"):
        if source is None:  # a column an inherited experiment declared, dropped
            continue
        if isinstance(source, str):
            spec.columns.append(Column(label, [source]))
        elif isinstance(source, Mapping) and list(source) == ["mean"] and isinstance(source["mean"], list) \
                and source["mean"] and all(isinstance(s, str) for s in source["mean"]):
            spec.columns.append(Column(label, list(source["mean"]), mean=True))
        else:
            raise UserError(f"summary.columns.{label} must be a metric path (<suite>.<metric>) or "
                            f"{{mean: [metric paths or earlier column labels]}} (got {source!r})")
    labels = raw.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(v, Mapping) for v in labels.values()):
        raise UserError(f"summary.labels must map config keys to {{value: label}} mappings (got {labels!r})")
    spec.labels = {str(k): {_text(val): str(lab) for val, lab in v.items()} for k, v in labels.items()}
    return spec


# -- one job --------------------------------------------------------------------------------------------------------

def _get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return ABSENT
        d = d[part]
    return d


def _text(value: Any) -> str:
    """A config value as YAML writes it (null, true), which is also how `labels` keys are written."""
    if value is ABSENT:
        return "?"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return str(value)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def read_job(job_dir: Path) -> Dict[str, Any]:
    """{'dir', 'config', 'overrides', 'status', 'error', 'metrics', 'costs'} for one job directory; `costs`:
    {artifact dir: USD} for the stage artifacts it ran on."""
    hydra_dir = job_dir / ".hydra"
    config = _yaml(hydra_dir / "config.yaml") or {}
    hydra_cfg = _yaml(hydra_dir / "hydra.yaml") or {}
    # the group choices (model, variant, ...) are config keys here too: `choices.<group>`
    config["choices"] = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    job: Dict[str, Any] = {"dir": str(job_dir), "config": config, "overrides": _yaml(hydra_dir / "overrides.yaml") or [],
                           "status": "running or killed", "error": "", "metrics": {}, "costs": {}}
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
        job["costs"] = {path: _artifact_cost(Path(path)) for path in outputs.values()}
    return job


def _artifact_cost(artifact: Path) -> float:
    """What the LLM calls behind one stage artifact cost: each role's `cost_usd` in its manifest's stats."""
    manifest = artifact / "manifest.json"
    stats = (json.loads(manifest.read_text()).get("stats") or {}) if manifest.is_file() else {}
    costs = [v.get("cost_usd") for v in stats.values() if isinstance(v, dict)]
    return float(sum(c for c in costs if isinstance(c, (int, float))))


def job_dirs(sweep_dir: Path) -> List[Path]:
    dirs = [p.parent.parent for p in sweep_dir.glob("*/.hydra/config.yaml")]
    return sorted(dirs, key=lambda p: (len(p.name), p.name))  # 0, 1, ..., 10 in numeric order


def _unique(items: Any) -> List[Any]:
    """Distinct items in the order they first come (jobs come in sweep order: the order of the grid's values)."""
    return list(dict.fromkeys(items))


def _show(key: str, value: Any, labels: Dict[str, Dict[str, str]]) -> str:
    text = _text(value)
    return labels.get(key, {}).get(text, text)


def fill(template: str, config: Dict[str, Any], labels: Dict[str, Dict[str, str]]) -> str:
    """`template` with each `{key}` replaced by the config's (labelled) value."""
    return PLACEHOLDER.sub(lambda m: _show(m[1], _get(config, m[1]), labels), template)


def _values(metrics: Dict[str, Any], columns: List[Column]) -> Dict[str, Optional[float]]:
    out: Dict[str, Any] = {}
    for c in columns:
        found = [out[s] if s in out else _get(metrics, s) for s in c.sources]
        found = [None if v is ABSENT else v for v in found]
        if not c.mean:
            out[c.label] = found[0]
        else:  # a mean over part of its inputs would not be the paper's number: all or nothing
            ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in found)
            out[c.label] = sum(found) / len(found) if ok else None
    return out


# -- the table ------------------------------------------------------------------------------------------------------

@dataclass
class Table:
    title: str
    row_headers: List[str]
    pivot: Optional[str]  # the config key, as in the spec
    groups: Optional[str]
    columns: List[str]
    jobs: List[Dict[str, Any]]  # each with 'row', 'pivot', 'group' (labelled values), 'values', 'cost'
    notes: List[str] = field(default_factory=list)
    total_cost: Optional[float] = None


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def build_table(sweep_dir: Path) -> Table:
    jobs = [read_job(d) for d in job_dirs(sweep_dir)]
    first = next((j["config"] for j in jobs if j["config"].get("summary") is not None), {})
    spec = parse_spec(first.get("summary"))
    if not spec.columns:  # every headline metric that any job produced
        spec.columns = [Column(k, [v]) for k, v in headline_columns().items()
                        if any(_get(j["metrics"], v) not in (None, ABSENT) for j in jobs)]
    # without `rows`: the overrides that tell jobs apart, less those the pivot and groups already show
    shown = {k.removeprefix("choices.") for k in (spec.pivot, spec.groups) if k}
    common = set.intersection(*(set(j["overrides"]) for j in jobs)) if len(jobs) > 1 else set()
    for j in jobs:
        if spec.rows:
            j["row"] = [fill(t, j["config"], spec.labels) for _, t in spec.rows]
        else:
            varying = [o for o in j["overrides"] if o not in common and _override_key(o) not in shown]
            j["row"] = [" ".join(varying) or Path(j["dir"]).name]
        j["pivot"] = _show(spec.pivot, _get(j["config"], spec.pivot), spec.labels) if spec.pivot else None
        j["group"] = (_show(spec.groups, _get(j["config"], spec.groups), spec.labels)
                      if spec.groups and spec.groups != METRICS else None)
        j["values"] = _values(j["metrics"], spec.columns)
        j["cost"] = sum(j["costs"].values()) if j["costs"] else None
    title = spec.title or first.get("experiment") or "/".join(sweep_dir.parts[-2:])
    # a placeholder takes every value the jobs have, e.g. "(Mistral-7B, LLaMA-2-13B)"
    title = PLACEHOLDER.sub(lambda m: ", ".join(_unique(_show(m[1], _get(j["config"], m[1]), spec.labels)
                                                        for j in jobs)) or "?", title)
    table = Table(title=title, row_headers=[h for h, _ in spec.rows] or ["job"], pivot=spec.pivot,
                  groups=spec.groups, columns=[c.label for c in spec.columns], jobs=jobs)
    keys = PLACEHOLDER.findall(" ".join([spec.title or ""] + [t for _, t in spec.rows]))
    keys += [k for k in (spec.pivot, spec.groups) if k and k != METRICS]
    table.notes = [f"no job's config has `{k}` (a summary key): its values show as ?"
                   for k in dict.fromkeys(keys) if jobs and all(_get(j["config"], k) is ABSENT for j in jobs)]
    artifacts = {p: c for j in jobs for p, c in j["costs"].items()}
    if any(artifacts.values()):
        table.total_cost = sum(artifacts.values())
    return table


def _fmt(v: Any, label: str = "") -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if label == COST else f"{v:.2f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _cell(jobs: List[Dict[str, Any]], label: str) -> str:
    """What one cell shows: the value, '-' for a finished job without it, the status of one that did not finish;
    several jobs that land in one cell (rows that do not tell them apart) all show."""
    parts = []
    for j in jobs:
        v = j["cost"] if label == COST else j["values"].get(label)
        if v is not None:
            parts.append(_fmt(v, label))
        else:
            parts.append("-" if j["status"] == "ok" else "running" if j["status"] == "running or killed"
                         else j["status"])
    return " / ".join(parts)


def _grid(t: Table, columns: List[str], by_metric: bool) -> List[List[str]]:
    """The markdown table's lines (header first) for `columns`: rows x pivot values, in sections when asked."""
    rows = _unique(tuple(j["row"]) for j in t.jobs)
    pivots, groups = _unique(j["pivot"] for j in t.jobs), _unique(j["group"] for j in t.jobs)
    if by_metric:
        heads = [str(p) for p in pivots] if t.pivot else ["value"]
    elif t.pivot:
        heads = [str(p) if len(columns) == 1 else f"{p}: {c}" for p in pivots for c in columns]
    else:
        heads = list(columns)
    lines = [t.row_headers + heads]
    width = len(lines[0])

    def body(group: Any, metrics: List[str]) -> None:
        for row in rows:
            mine = [j for j in t.jobs if tuple(j["row"]) == row and j["group"] == group]
            if mine:
                lines.append(list(row) + [_cell([j for j in mine if j["pivot"] == p], c)
                                          for p in pivots for c in metrics])

    for group in groups:
        if group is not None:
            lines.append([f"**{group}**"] + [""] * (width - 1))
        if by_metric:
            for c in columns:
                lines.append([f"**{c}**"] + [""] * (width - 1))
                body(group, [c])
        else:
            body(group, columns)
    return lines


def _markdown(lines: List[List[str]]) -> List[str]:
    out = ["| " + " | ".join(_fmt(c) for c in lines[0]) + " |", "|" + "---|" * len(lines[0])]
    return out + ["| " + " | ".join(_fmt(c) for c in line) + " |" for line in lines[1:]]


def render_markdown(t: Table) -> str:
    costly = t.total_cost is not None
    by_metric = t.groups == METRICS
    # Cost joins the columns, except under a pivot without metric sections: there it gets its own table of the
    # same layout, so that the paper's header stays as it is.
    apart = costly and t.pivot is not None and not by_metric
    md = [f"# {t.title}", ""] + _markdown(_grid(t, t.columns + ([COST] if costly and not apart else []), by_metric))
    if apart:
        md += ["", f"{COST}, per job:", ""] + _markdown(_grid(t, [COST], False))
    if costly:
        md += ["", f"Sweep cost: ${t.total_cost:.4f} (LLM calls recorded in the stage manifests; an artifact that "
                   f"several jobs share counts once)."]
    unfinished = [j for j in t.jobs if j["status"] != "ok"]
    if unfinished:
        md += ["", "Jobs without a result:", ""]
        for j in unfinished:
            where = " / ".join(str(x) for x in [*j["row"], j["pivot"], j["group"]] if x is not None)
            md.append(f"- job {Path(j['dir']).name} ({where}): {j['status']}" + (f": {j['error']}" if j["error"] else ""))
    if t.notes:
        md += [""] + [f"Note: {n}" for n in t.notes]
    return "\n".join(md) + "\n"


def write_summary(sweep_dir: str | Path) -> Path:
    sweep_dir = Path(sweep_dir)
    t = build_table(sweep_dir)
    extra = [k for k in (t.pivot, t.groups) if k and k != METRICS]  # the config keys, as headers
    with (sweep_dir / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(t.row_headers + extra + t.columns + ["cost_usd", "dir", "error", "status"])
        for j in t.jobs:
            w.writerow(j["row"] + [j[k] for k in ("pivot", "group") if j[k] is not None]
                       + ["" if j["values"][c] is None else j["values"][c] for c in t.columns]
                       + ["" if j["cost"] is None else round(j["cost"], 6), Path(j["dir"]).name, j["error"],
                          j["status"]])
    (sweep_dir / "summary.md").write_text(render_markdown(t), encoding="utf-8")
    _plot(sweep_dir / "summary.png", t)
    return sweep_dir / "summary.md"


def _plot(path: Path, t: Table) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics, jobs = t.columns, t.jobs
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(metrics) * max(1, len(jobs)) ** 0.5), 4.5))
    width = 0.8 / max(1, len(jobs))
    for i, j in enumerate(jobs):
        label = " / ".join(str(x) for x in [*j["row"], j["pivot"], j["group"]] if x is not None)
        vals = [v if isinstance(v, (int, float)) else 0.0 for v in (j["values"][c] for c in metrics)]
        ax.bar([m + i * width for m in range(len(metrics))], vals, width, label=label[:60])
    ax.set_xticks([m + width * (len(jobs) - 1) / 2 for m in range(len(metrics))])
    ax.set_xticklabels(metrics, rotation=20, ha="right", fontsize=8)
    ax.set_title(t.title)
    if jobs:
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
    try:
        print(write_summary(args[0]))
    except UserError as e:
        print(f"ifforge-summary: error: {e}", file=sys.stderr)
        sys.exit(2)
