"""Precision and memory-saving defaults per device, so that no TRL default fails on the machine at hand.

TRL's configs default to `bf16=True` and gradient checkpointing on, which raise or crawl on a CPU. ifforge picks:
- CPU: float32 weights, no mixed precision, no activation checkpointing;
- CUDA with bfloat16 (Ampere and later): bfloat16 weights and bf16 mixed precision, checkpointing on;
- older CUDA: float32 weights with fp16 mixed precision (fp16 weights cannot be trained with the AMP scaler).
Whatever the user sets (`model.dtype`, `objective.trainer.bf16`...) wins over these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from ifforge.errors import UserError

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Device:
    kind: str  # cpu | cuda
    bf16: bool = False  # the GPU computes in bfloat16

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"


def detect() -> Device:
    import torch

    if torch.cuda.is_available():
        return Device("cuda", bf16=torch.cuda.is_bf16_supported())
    return Device("cpu")


def weights_dtype(setting: str, device: Device) -> str:
    """The dtype to load weights in, by name."""
    if setting not in DTYPES:
        raise UserError(f"model.dtype={setting!r}: choose one of {', '.join(DTYPES)}")
    if setting != "auto":
        return setting
    return "bfloat16" if device.bf16 else "float32"


def mixed_precision(device: Device, dtype: str) -> Dict[str, bool]:
    """`bf16`/`fp16` trainer flags matching the device and the weights' dtype."""
    if not device.is_gpu:
        return {"bf16": False, "fp16": False}
    if dtype == "float16":
        raise UserError("model.dtype=float16 cannot be trained with fp16 mixed precision (the gradient scaler "
                        "refuses fp16 weights): use bfloat16, float32 or auto")
    if device.bf16:
        return {"bf16": True, "fp16": False}
    return {"bf16": False, "fp16": True}


def activation_checkpointing(setting: Optional[bool], device: Device) -> bool:
    return device.is_gpu if setting is None else bool(setting)


def trainer_defaults(model_cfg: Any, device: Device, deepspeed: bool = False) -> Dict[str, Any]:
    """The device-dependent trainer arguments (lowest precedence: every config layer overrides them)."""
    dtype = weights_dtype(str(model_cfg.dtype), device)
    out: Dict[str, Any] = dict(mixed_precision(device, dtype))
    out["activation_checkpointing"] = activation_checkpointing(model_cfg.gradient_checkpointing, device)
    if not device.is_gpu and not deepspeed:
        # Lets a user's explicit bf16=True run as CPU autocast instead of failing. Not with DeepSpeed: use_cpu
        # would bypass it (DeepSpeed on CPU runs through DS_ACCELERATOR=cpu instead).
        out["use_cpu"] = True
    return out
