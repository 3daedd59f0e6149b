"""Hydra callback: refresh the sweep summary whenever a job ends, and once more when the multirun ends.

Refreshing per job matters: Hydra's sweeper raises at the first failed job of a batch before `on_multirun_end`
runs, and under Slurm each job ends in its own process. A file lock keeps concurrent jobs from interleaving.
The experiment's `summary` spec is checked when the multirun starts: a malformed one is one line before any job
runs, not a missing summary at the end.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ifforge.errors import UserError
from ifforge.sweep.summary import parse_spec, write_summary

log = logging.getLogger("ifforge")


def _refresh(sweep_dir: Path) -> None:
    try:
        with FileLock(str(sweep_dir / ".summary.lock")):
            path = write_summary(sweep_dir)
        log.info("sweep summary: %s", path)
    except Exception as e:  # a summary must never turn a finished job into a failed one
        log.warning("could not write the sweep summary in %s: %s", sweep_dir, e)


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            parse_spec(OmegaConf.to_container(config.summary) if config.get("summary") is not None else None)
        except UserError as e:
            print(f"ifforge: error: {e}", file=sys.stderr)
            sys.exit(2)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            _refresh(Path(hc.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _refresh(Path(config.hydra.sweep.dir))
