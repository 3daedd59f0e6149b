"""The few lines printed at the end of a run: what each stage did, read back from the manifests it wrote.

Everything here comes from the artifacts (a reused stage reports what it did when it was built), so the report
says the same thing on the first run and on a rerun that only reuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List


def _stats(path: str) -> Dict[str, Any]:
    manifest = Path(path) / "manifest.json"
    return json.loads(manifest.read_text()).get("stats", {}) if manifest.is_file() else {}


def _requests(stats: Dict[str, Any], roles: tuple) -> str:
    parts = []
    # a suite's own judge model has its own line, `judge:<model>` (eval.<suite>.judge_model)
    keys = [k for role in roles for k in stats if k == role or k.startswith(f"{role}:")]
    for role in keys:
        g = stats.get(role)
        if not isinstance(g, dict) or "calls" not in g:
            continue
        text = f"{role} {g['calls']} requests ({g.get('cache_hits', 0)} from the cache)"
        price = g.get("price") or {}
        if g.get("cost_usd") or price.get("known"):
            text += f", ${g.get('cost_usd', 0):.4f}"
        elif price:  # a local model or an endpoint no price table knows: say so rather than print $0
            text += ", price unknown"
        parts.append(text)
    return "; ".join(parts)


def _build(path: str) -> List[str]:
    s = _stats(path)
    splits = ", ".join(f"{k} {v}" for k, v in (s.get("splits") or {}).items())
    lines = [f"build  {s.get('seeds', '?')} seeds -> {splits or 'no splits'}"]
    counts = s.get("steps") or {}
    order = [n for n in s.get("step_order") or [] if n in counts] + [n for n in counts if n not in (s.get("step_order") or [])]
    steps = [f"{name} {counts[name].get('in', '?')}->{counts[name].get('out', '?')}"
             + (f" ({counts[name]['rejected']} rejected)" if counts[name].get("rejected") else "") for name in order]
    if steps:
        lines.append("       steps: " + ", ".join(steps))
    used = _requests(s, ("generator", "judge", "student"))
    if used:
        lines.append("       " + used)
    if (Path(path) / "rejects.jsonl").is_file() and any((s.get("rejects") or {}).values()):
        lines.append(f"       every reject with its reason: {Path(path) / 'rejects.jsonl'}")
    return lines


def _train(path: str) -> List[str]:
    s = _stats(path)
    curve = [v for _, v in (s.get("loss_curve") or {}).get("loss", [])]
    loss = f"loss {curve[0]:.3f} -> {curve[-1]:.3f}" if len(curve) > 1 else (
        f"loss {s['train_loss']:.3f}" if isinstance(s.get("train_loss"), (int, float)) else "no loss logged")
    seconds = f", {s['train_seconds']:.0f} s" if isinstance(s.get("train_seconds"), (int, float)) else ""
    return [f"train  {s.get('objective') or 'the'} {s.get('steps', '?')} steps on {s.get('rows', '?')} rows: "
            f"{loss}{seconds}"]


def _eval(path: str) -> List[str]:
    from ifforge.sweep.summary import headline_columns

    s = _stats(path)
    metrics_file = Path(path) / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    values: Dict[str, List[str]] = {name: [] for name in metrics}
    for label, dotted in headline_columns().items():  # each suite's summary columns, as in sweep summaries
        name, key = dotted.split(".", 1)
        if isinstance(metrics.get(name, {}).get(key), (int, float)):
            values[name].append(f"{label} {metrics[name][key]:.1f}")
    scores = [", ".join(v) or f"{name}: no headline number" for name, v in values.items()]
    lines = [f"eval   {'; '.join(scores) or 'no suite scored'}"]
    lines += [f"       {why}" for why in (s.get("skipped") or {}).values()]
    used = _requests(s, ("candidate", "judge"))
    if used:
        lines.append("       " + used)
    return lines


REPORTERS = {"build": _build, "train": _train, "eval": _eval}


def run_report(outputs: Dict[str, str]) -> str:
    """A few lines per stage this run built or reused, in stage order."""
    lines = []
    for stage, path in outputs.items():
        reporter = REPORTERS.get(stage)
        if reporter is not None:
            try:
                lines += reporter(path)
            except (OSError, ValueError, KeyError, TypeError) as e:  # a report must never fail a finished run
                lines.append(f"{stage}  (no report: {type(e).__name__}: {e})")
    return "\n".join(lines)
