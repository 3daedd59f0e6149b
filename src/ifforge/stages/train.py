"""The train stage: the build artifact's chosen split -> a fine-tuned checkpoint artifact (TRL SFT, DPO, DPO+SFT).

Fingerprint: the `model` node (with only this objective's hparams row), the `objective` node minus logging/saving
knobs, and the seed; the build's fingerprint comes in through the inputs. An eval-only change never retrains.
The stage is collective: under torchrun/accelerate/Slurm tasks every rank trains together (see
ifforge.artifacts.ensure), only rank 0 writes the artifact's files and manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from ifforge.artifacts import Artifact
from ifforge.pipeline import STAGES, Stage


@STAGES.register("train")
class TrainStage(Stage):
    name = "train"
    collective = True

    def upstream(self, cfg: DictConfig) -> List[str]:
        return ["build"]

    def config(self, cfg: DictConfig) -> Dict[str, Any]:
        from ifforge.train.settings import fingerprint_slice

        return fingerprint_slice(cfg)

    def preflight(self, cfg: DictConfig) -> None:
        from ifforge.train.run import check

        check(cfg)

    def process_group(self, cfg: DictConfig) -> Optional[Any]:
        from ifforge.train.distributed import process_group

        return process_group()

    def build(self, cfg: DictConfig, out: Path, inputs: Dict[str, Artifact]) -> Dict[str, Any]:
        from ifforge.train.run import train

        return train(cfg, out, inputs["build"].path, inputs["build"].fingerprint)
