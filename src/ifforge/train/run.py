"""One training run inside a train artifact directory:

    <artifact>/checkpoints/checkpoint-N/   Trainer checkpoints; a rerun resumes from the last one
    <artifact>/model/                       the final model + tokenizer + chat template (save_pretrained), and
                                            its model card README.md and loss_curve.png (what an upload carries)
    <artifact>/adapter/                     the LoRA adapter, when model.peft is lora/qlora (model/ is merged)
Every rank calls `train`; only rank 0 writes files other than the Trainer's own (DeepSpeed shards its checkpoint
across ranks itself).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from ifforge.train import batch, chat_templates, data, distributed, loading, precision, report, settings
from ifforge.train.callbacks import NoCheckpointAtTheEnd

log = logging.getLogger("ifforge")
CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"
ADAPTER_DIR = "adapter"


def extra_callbacks() -> List[Any]:
    """More callbacks for every run: none in production; tests patch this to interrupt a run."""
    return []


class Plan:
    """Everything decided from the config before any weights are loaded (also what preflight checks)."""

    def __init__(self, cfg: DictConfig):
        self.objective = settings.check_objective(cfg)
        self.device = precision.detect()
        self.deepspeed = distributed.deepspeed_config(deepspeed_setting(cfg))
        defaults = precision.trainer_defaults(cfg.model, self.device, deepspeed=self.deepspeed is not None)
        self.layers = settings.trainer_layers(cfg, defaults, self.deepspeed)
        self.trainer_args = settings.merged_trainer_args(self.layers)
        settings.check_trainer_keys(self.trainer_args, self.objective.kind)
        # The paper's global batch on this launch's world size (None: no recipe GPU count, or turned off).
        self.global_batch = batch.keep(cfg, self.trainer_args, distributed.world_size())
        # The user's own settings (layers 3-5) for the model card: the device/ifforge defaults are in the manifest.
        self.chosen_args = settings.merged_trainer_args(self.layers[2:])
        if self.global_batch is not None:
            self.chosen_args["gradient_accumulation_steps"] = self.global_batch.accumulation

    @property
    def needs_markers(self) -> bool:
        return self.objective.kind == "sft" and bool(self.trainer_args.get("assistant_only_loss"))


def deepspeed_setting(cfg: DictConfig) -> Optional[str]:
    """`objective.deepspeed`, else the model recipe's (Conifer trains with ZeRO-2)."""
    return cfg.objective.deepspeed or cfg.model.get("deepspeed")


def check(cfg: DictConfig) -> None:
    """Preflight: config, trainer keys, DeepSpeed, PEFT, model source, chat template, without loading weights."""
    plan = Plan(cfg)
    distributed.check_deepspeed(deepspeed_setting(cfg))
    loading.check(cfg.model, plan.device)
    chat_templates.check_setting(cfg.model.chat_template, plan.needs_markers)


def train(cfg: DictConfig, out: Path, build_dir: Path, build_fingerprint: str) -> Dict[str, Any]:
    plan = Plan(cfg)
    objective = plan.objective
    if plan.global_batch is not None:
        (log.info if plan.global_batch.exact else log.warning)("[train] %s", plan.global_batch.describe())
    if plan.deepspeed is not None:
        distributed.export_single_process_env()
    dataset = data.load_split(build_dir, str(cfg.objective.split), objective)
    tokenizer, model_path = loading.load_tokenizer(cfg.model)
    template, template_source = chat_templates.choose(tokenizer, cfg.model.chat_template, plan.needs_markers)
    if template is not None:
        tokenizer.chat_template = template

    # The trainer arguments exist before the model is loaded: under ZeRO-3 that makes from_pretrained partition
    # the weights across ranks as it loads them.
    args = settings.config_class(objective.kind)(output_dir=str(out / CHECKPOINTS), **plan.trainer_args)
    model = loading.load_model(cfg.model, plan.device, model_path)
    callbacks = extra_callbacks()
    if not cfg.objective.keep_checkpoints:
        callbacks.append(NoCheckpointAtTheEnd())
    if objective.kind == "sft":
        from ifforge.train import sft

        trainer = sft.make_trainer(model, tokenizer, args, dataset, bool(cfg.objective.group_batches), callbacks)
    else:
        from ifforge.train import dpo

        trainer = dpo.make_trainer(model, tokenizer, args, dataset, callbacks)

    resume = last_checkpoint(out / CHECKPOINTS)
    if resume is not None:
        log.info("[train] resuming from %s", resume)
    _reset_peak_memory()
    started, cpu_started = time.time(), time.process_time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    seconds, cpu_seconds = time.time() - started, time.process_time() - cpu_started

    model_dir = _save_final(trainer, tokenizer, cfg, out, model_path)
    stats = _stats(cfg, plan, trainer, result, seconds, dataset, resume, model_dir, model_path,
                   template_source, build_fingerprint)
    stats["train_cpu_seconds"] = round(cpu_seconds, 3)  # this process, all threads: the cost on a shared CPU
    trainer.accelerator.wait_for_everyone()
    if distributed.is_main():
        report.write(model_dir, stats, plan.chosen_args)
        if not cfg.objective.keep_checkpoints:  # the final model is the artifact; checkpoints only serve resumes
            shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    return stats


def last_checkpoint(folder: Path) -> Optional[Path]:
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(folder))
    return Path(found) if found else None


def _reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _save_final(trainer, tokenizer, cfg: DictConfig, out: Path, base_path: str) -> Path:
    model_dir = out / MODEL_DIR
    if str(cfg.model.peft) == "none":
        trainer.save_model(str(model_dir))  # gathers ZeRO-3 shards; writes on rank 0 only
        if distributed.is_main():
            tokenizer.save_pretrained(str(model_dir))
        return model_dir
    adapter_dir = out / ADAPTER_DIR
    trainer.save_model(str(adapter_dir))
    trainer.accelerator.wait_for_everyone()
    if distributed.is_main():
        loading.save_merged(cfg.model, base_path, adapter_dir, model_dir)
        tokenizer.save_pretrained(str(model_dir))
    return model_dir


def _stats(cfg, plan: Plan, trainer, result, seconds: float, dataset, resume: Optional[Path], model_dir: Path,
           model_path: str, template_source: str, build_fingerprint: str) -> Dict[str, Any]:
    state = trainer.state
    curves = report.loss_curve(state.log_history)
    args = trainer.args
    resumed_step = int(resume.name.split("-")[-1]) if resume is not None else None
    tokens = int(state.num_input_tokens_seen or 0)
    session_tokens = tokens - int(getattr(trainer, "_initial_num_input_tokens_seen", 0) or 0)
    stats: Dict[str, Any] = {
        "objective": plan.objective.name,
        "trainer": plan.objective.kind,
        "base_model": str(cfg.model.name),
        "base_model_path": model_path,
        "model_dir": str(model_dir),
        "split": str(cfg.objective.split),
        "rows": len(dataset),
        "build_fingerprint": build_fingerprint,
        "group_batches": bool(cfg.objective.group_batches),
        "steps": int(state.global_step),
        "epochs": float(state.epoch or 0.0),
        "resumed_from_step": resumed_step,
        "final_loss": curves["loss"][-1][1] if curves.get("loss") else None,
        "train_loss": float(result.training_loss),
        "loss_curve": curves,
        "tokens": tokens,
        "tokens_per_second": round(session_tokens / seconds, 2) if seconds > 0 else None,
        "train_seconds": round(seconds, 3),
        "peak_memory": report.peak_memory(),
        "world_size": int(args.world_size),
        "device": plan.device.kind,
        "precision": {"dtype": precision.weights_dtype(str(cfg.model.dtype), plan.device), "bf16": bool(args.bf16),
                      "fp16": bool(args.fp16), "activation_checkpointing": bool(args.activation_checkpointing)},
        "deepspeed": plan.deepspeed,
        "peft": str(cfg.model.peft),
        "chat_template": str(cfg.model.chat_template or template_source),
        "trainer_args": {k: v for k, v in plan.trainer_args.items()},
    }
    if plan.global_batch is not None:
        stats["global_batch"] = {**plan.global_batch.as_dict(), "text": plan.global_batch.describe()}
    if plan.objective.kind == "dpo":
        stats["beta"] = float(args.beta)
        stats["loss_weights"] = dict(zip(args.loss_type, args.loss_weights or [1.0] * len(args.loss_type)))
    return stats
