"""The papers' global batch on any cluster: gradient accumulation derived from the world size at launch.

A paper recipe (`conf/model/*.yaml`) gives, per objective, the per-device batch and gradient accumulation of its
row in `hparams` and the number of GPUs it ran on in `gpus`. Their product is the global batch the paper trained
with (Conifer B.1, Mistral-7B SFT: 16 per device x 8 GPUs x 4 accumulation = 512). At launch the accumulation is
chosen so that per-device batch x world size x accumulation equals it again: on 2 GPUs, 16 x 2 x 16. When that is
not a whole number (or `objective.trainer.per_device_train_batch_size` was lowered to fit memory and no longer
divides it), the nearest accumulation is used and a warning gives the numbers. `objective.keep_global_batch=false`
turns the derivation off, as does setting `objective.trainer.gradient_accumulation_steps` yourself.
DeMoRecon's grouped SFT counts seed groups: one group per device and step, so its global batch is in groups.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from omegaconf import DictConfig

from ifforge.pipeline import plain


@dataclass(frozen=True)
class GlobalBatch:
    target: int  # the paper's global batch
    per_device: int
    world_size: int
    accumulation: int

    @property
    def actual(self) -> int:
        return self.per_device * self.world_size * self.accumulation

    @property
    def exact(self) -> bool:
        return self.actual == self.target

    def describe(self) -> str:
        gpus = f"{self.world_size} GPU{'s' if self.world_size != 1 else ''}"
        text = f"global batch {self.actual} = {self.per_device} per device x {gpus} x {self.accumulation} accumulation"
        if not self.exact:
            text += (f"; the paper's {self.target} is not a multiple of {self.per_device} x {self.world_size}, "
                     f"so the nearest accumulation is used")
        return text

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "actual": self.actual, "exact": self.exact}


def derive(target: int, per_device: int, world_size: int) -> GlobalBatch:
    """The accumulation that keeps `target` with `per_device` rows on each of `world_size` ranks (nearest, >= 1)."""
    per_step = max(1, per_device) * max(1, world_size)
    accumulation = max(1, int(target / per_step + 0.5))
    return GlobalBatch(target=target, per_device=per_device, world_size=world_size, accumulation=accumulation)


def paper_global_batch(cfg: DictConfig) -> Optional[int]:
    """The recipe's global batch for this objective: per-device batch x accumulation of its row x its GPU count."""
    gpus = (plain(cfg.model.get("gpus")) or {}).get(str(cfg.objective.name))
    if not gpus:
        return None
    row = (plain(cfg.model.get("hparams")) or {}).get(str(cfg.objective.name)) or {}
    # 8 and 1: TrainingArguments' own defaults, for a row that leaves them out
    return int(row.get("per_device_train_batch_size", 8)) * int(row.get("gradient_accumulation_steps", 1)) * int(gpus)


def keep(cfg: DictConfig, trainer_args: Dict[str, Any], world_size: int) -> Optional[GlobalBatch]:
    """Set `gradient_accumulation_steps` in `trainer_args` so that the paper's global batch holds on `world_size`
    ranks; None (and nothing changed) when the recipe states no GPU count or the derivation is off."""
    target = paper_global_batch(cfg)
    user = plain(cfg.objective.trainer) or {}
    if target is None or not cfg.objective.get("keep_global_batch", True) or "gradient_accumulation_steps" in user:
        return None
    found = derive(target, int(trainer_args.get("per_device_train_batch_size", 8)), world_size)
    trainer_args["gradient_accumulation_steps"] = found.accumulation
    return found
