"""Experiment tracking (`tracking` group: `none`, `wandb`).

One W&B run per job and stage (`job_type` = the stage; runs of one sweep share a `group`), logged from the
stage's manifest once the stage is done: config with secrets redacted, stage stats (dataset statistics, generator
calls/tokens/cost), the training curve, eval metrics and tables of sample rows (one per split or suite file, a
column per field: prompt, response, verdicts...). A failed stage finishes its run with a non-zero exit code, so W&B
never shows it as finished. Without an API key W&B runs offline (nothing breaks without an account).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from ifforge.artifacts import Artifact
from ifforge.registry import Registry
from ifforge.secrets import redact, redact_url

log = logging.getLogger("ifforge")
# `tracking.name` -> a callable taking the whole config and returning a Tracker
TRACKERS = Registry("tracking")


def _flatten(d: Any, prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}/"))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix.rstrip("/")] = d
    return out


# Files of an artifact that are not samples of what it made (every dropped item, failed requests).
NOT_SAMPLES = frozenset({"rejects.jsonl", "failures.jsonl"})
MAX_CELL = 2000  # characters of one table cell: a sample table is for reading, the artifact holds the rest


def _is_chat(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value)


def _cell(value: Any) -> Any:
    """One table cell: text and numbers as they are, a chat as its turns, anything else as compact JSON."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:MAX_CELL]
    if _is_chat(value):
        return "\n\n".join(f"[{m['role']}] {m['content']}" for m in value)[:MAX_CELL]
    return json.dumps(value, ensure_ascii=False, default=str)[:MAX_CELL]


@TRACKERS.register("none")
class Tracker:
    def __init__(self, cfg: Optional[DictConfig] = None):
        pass

    def stage_done(self, stage: str, artifact: Artifact) -> None:
        pass

    def stage_failed(self, stage: str, error: BaseException) -> None:
        pass


class WandbTracker(Tracker):
    def __init__(self, cfg: DictConfig, job_name: str, sweep_group: Optional[str]):
        import wandb

        self.wandb = wandb
        self.tcfg = cfg.tracking
        self.config = redact(OmegaConf.to_container(cfg, resolve=True))
        self.job_name = job_name
        self.group = self.tcfg.group or sweep_group
        mode = self.tcfg.mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.mode = os.environ.get("WANDB_MODE") or mode

    def _run(self, stage: str):
        # W&B records the command line of the process; it gets none (the config, redacted, says what ran).
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            return self.wandb.init(project=self.tcfg.project, entity=self.tcfg.entity, group=self.group,
                                   job_type=stage, name=f"{self.job_name}/{stage}", config=self.config,
                                   mode=self.mode, dir=self.tcfg.dir, reinit="create_new")
        finally:
            sys.argv = argv

    def stage_done(self, stage: str, artifact: Artifact) -> None:
        manifest = artifact.manifest()
        run = self._run(stage)
        try:
            stats = manifest.get("stats", {})
            run.summary.update({"artifact": str(artifact.path), "fingerprint": artifact.fingerprint})
            for i, entry in enumerate(stats.get("log_history") or stats.get("loss_curve") or []):
                if isinstance(entry, dict):  # the training curve, step by step
                    run.log({k: v for k, v in entry.items() if isinstance(v, (int, float))},
                            step=int(entry.get("step", i)))
            run.summary.update(_flatten({k: v for k, v in stats.items() if k not in ("log_history", "loss_curve")}))
            metrics_file = artifact.path / "metrics.json"
            if metrics_file.is_file():
                run.summary.update(_flatten(json.loads(metrics_file.read_text()), "metrics/"))
            self._samples(run, stage, artifact.path)
            if self.tcfg.log_artifacts:
                art = self.wandb.Artifact(f"{stage}-{artifact.fingerprint}", type="dataset" if stage == "build"
                                          else "model" if stage == "train" else "evaluation")
                art.add_dir(str(artifact.path))
                run.log_artifact(art)
        finally:
            run.finish(exit_code=0)

    def _samples(self, run: Any, stage: str, path: Path) -> None:
        """A few sample rows per file, one table each (`samples/<split>` for build, `samples/<suite>/<file>` for
        eval), with the rows' own fields as columns: prompt, response, verdicts, scores..."""
        files = [(f"samples/{f.stem}", f) for f in sorted(path.glob("*.jsonl")) if f.name not in NOT_SAMPLES] \
            if stage == "build" else []
        if stage == "eval" and (path / "suites.json").is_file():
            for suite, suite_dir in json.loads((path / "suites.json").read_text()).items():
                files += [(f"samples/{suite}/{f.stem}", f) for f in sorted(Path(suite_dir).glob("*.jsonl"))]
        tables = {}
        for key, f in files:
            with f.open() as fh:
                records = [redact(json.loads(line)) for _, line in zip(range(self.tcfg.samples), fh)]
            columns = list(dict.fromkeys(k for rec in records if isinstance(rec, dict) for k in rec))
            if columns:
                data = [[_cell(rec.get(c)) for c in columns] for rec in records if isinstance(rec, dict)]
                # A field may be a number in one row and null or text in another (an unparseable verdict).
                tables[key] = self.wandb.Table(columns=columns, data=data, allow_mixed_types=True)
        if tables:
            run.log(tables)

    def stage_failed(self, stage: str, error: BaseException) -> None:
        run = self._run(stage)
        run.summary.update({"error": redact_url(f"{type(error).__name__}: {error}")[:1000]})
        run.finish(exit_code=1)


@TRACKERS.register("wandb")
def _wandb_tracker(cfg: DictConfig) -> WandbTracker:
    """The run is named after the Hydra job; a multirun's jobs share the sweep directory as their group."""
    from hydra.core.hydra_config import HydraConfig

    job_name, group = "run", None
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        if str(hc.mode) == "RunMode.MULTIRUN":
            group = Path(hc.sweep.dir).name and "/".join(Path(hc.sweep.dir).parts[-2:])
            job_name = f"job{hc.job.num}"
        else:
            job_name = Path(hc.runtime.output_dir).name
    return WandbTracker(cfg, job_name, group)


def make_tracker(cfg: DictConfig) -> Tracker:
    return TRACKERS.get(str(cfg.tracking.name))(cfg)
