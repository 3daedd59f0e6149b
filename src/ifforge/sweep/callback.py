"""Hydra callback: refresh the sweep summary whenever a job ends, and once more when the multirun ends.

Refreshing per job matters: Hydra's sweeper raises at the first failed job of a batch before `on_multirun_end`
runs, and under Slurm each job ends in its own process. A file lock keeps concurrent jobs from interleaving.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ifforge.sweep.summary import write_summary

log = logging.getLogger("ifforge")


def _refresh(sweep_dir: Path) -> None:
    try:
        with FileLock(str(sweep_dir / ".summary.lock")):
            path = write_summary(sweep_dir)
        log.info("sweep summary: %s", path)
    except Exception as e:  # a summary must never turn a finished job into a failed one
        log.warning("could not write the sweep summary in %s: %s", sweep_dir, e)


class SweepSummary(Callback):
    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            _refresh(Path(hc.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _refresh(Path(config.hydra.sweep.dir))
