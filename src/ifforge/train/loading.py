"""Load the base model and tokenizer for training: dtype, attention, remote code, LoRA/QLoRA through PEFT."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from omegaconf import DictConfig

from ifforge.errors import UserError
from ifforge.pipeline import plain
from ifforge.train.precision import Device, activation_checkpointing, detect, weights_dtype

PEFT_MODES = ("none", "lora", "qlora")


def model_source(model_cfg: DictConfig) -> str:
    """What `resolve_model` gets: `model.path`, else `model.name`."""
    return str(model_cfg.path or model_cfg.name)


def check(model_cfg: DictConfig, device: Device) -> None:
    """Preflight: the model exists (or is a hub name), PEFT options make sense on this machine."""
    from ifforge.models import check_model

    check_model(model_source(model_cfg))
    weights_dtype(str(model_cfg.dtype), device)
    mode = str(model_cfg.peft)
    if mode not in PEFT_MODES:
        raise UserError(f"model.peft={mode!r}: choose one of {', '.join(PEFT_MODES)}")
    if mode != "none":
        lora_config(model_cfg)
    if mode == "qlora":
        import importlib.util

        if not device.is_gpu:
            raise UserError("model.peft=qlora quantizes the base model to 4 bits with bitsandbytes, which needs a "
                            "CUDA GPU; use model.peft=lora on this machine")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError("model.peft=qlora needs bitsandbytes: pip install bitsandbytes")


def lora_config(model_cfg: DictConfig):
    """`model.lora` as a peft.LoraConfig (any LoraConfig field passes through)."""
    from peft import LoraConfig

    settings: Dict[str, Any] = dict(plain(model_cfg.lora) or {})
    known = {f.name for f in fields(LoraConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"model.lora has keys peft.LoraConfig does not know: {unknown}")
    settings["task_type"] = "CAUSAL_LM"
    return LoraConfig(**settings)


def load_tokenizer(model_cfg: DictConfig) -> Tuple[Any, str]:
    """(tokenizer, the resolved model path); aliases such as `tiny` are built here on first use."""
    from transformers import AutoTokenizer

    from ifforge.models import resolve_model

    path = resolve_model(model_source(model_cfg))
    return AutoTokenizer.from_pretrained(path, trust_remote_code=bool(model_cfg.trust_remote_code)), path


def load_model(model_cfg: DictConfig, device: Device, path: str):
    """The model to train, wrapped by PEFT when `model.peft` asks for it."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = weights_dtype(str(model_cfg.dtype), device)
    kwargs: Dict[str, Any] = {"dtype": getattr(torch, dtype), "trust_remote_code": bool(model_cfg.trust_remote_code)}
    if model_cfg.attn_implementation:
        kwargs["attn_implementation"] = str(model_cfg.attn_implementation)
    quantization = _quantization(model_cfg, dtype)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    kwargs.update(plain(model_cfg.extra) or {})
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if str(model_cfg.peft) != "none":
        model = _with_adapter(model, model_cfg, device, quantized=quantization is not None)
    return model


def save_merged(model_cfg: DictConfig, base_path: str, adapter_dir: Path, model_dir: Path) -> None:
    """The base model with the adapter merged in, as a plain checkpoint that any loader serves.

    The base is reloaded unquantized (a 4-bit QLoRA base cannot take merged weights) rather than merged in place,
    which also works whatever DeepSpeed did to the training copy."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, weights_dtype(str(model_cfg.dtype), detect()))
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype,
                                                trust_remote_code=bool(model_cfg.trust_remote_code))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(model_dir))


def _quantization(model_cfg: DictConfig, dtype: str) -> Optional[Any]:
    if str(model_cfg.peft) != "qlora":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    # The QLoRA recipe: NF4 weights with double quantization, computing in the training dtype.
    compute = torch.bfloat16 if dtype == "bfloat16" else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def _with_adapter(model, model_cfg: DictConfig, device: Device, quantized: bool):
    from peft import get_peft_model, prepare_model_for_kbit_training

    if quantized:
        # Casts norms to float32 and enables input gradients, which 4-bit training needs.
        checkpointing = activation_checkpointing(model_cfg.gradient_checkpointing, device)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    return get_peft_model(model, lora_config(model_cfg))
