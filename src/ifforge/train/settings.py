"""From the `model` and `objective` config nodes to TRL's trainer arguments, in documented layers.

Trainer arguments are merged from five layers, each overriding the ones before it:
1. device defaults (precision.py): bf16/fp16 and activation checkpointing that work on the machine at hand;
2. ifforge defaults: assistant-only loss for SFT, `max_length` from `model.max_length`, the seed, one kept
   checkpoint, token counting, no reporting;
3. `model.hparams.<objective name>`: the paper's row for this model and objective;
4. what the objective is: DPO's `loss_type`/`loss_weights` and `objective.beta`;
5. `objective.trainer`: any SFTConfig/DPOConfig field, the user's last word.
So `objective=dpo model=qwen1.5-7b-chat` trains with DeMoRecon's DPO row for Qwen1.5-7B-Chat, and
`objective.trainer.learning_rate=1e-6` still wins over it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple

from omegaconf import DictConfig

from ifforge.config import ObjectiveConfig
from ifforge.errors import UserError
from ifforge.pipeline import plain
from ifforge.registry import Registry

# Trainer fields that change how a run is logged, saved or fed, not the model it produces: kept out of the
# fingerprint so that logging more often never retrains.
TRAINER_RUNTIME_FIELDS = frozenset({
    "logging_steps", "logging_first_step", "logging_strategy", "logging_dir", "logging_nan_inf_filter",
    "save_steps", "save_strategy", "save_total_limit", "save_only_model", "report_to", "run_name", "disable_tqdm",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "log_level", "log_level_replica", "log_on_each_node", "include_num_input_tokens_seen",
})
OBJECTIVE_RUNTIME_FIELDS = frozenset({"keep_checkpoints"})
# Set by the stage itself: where checkpoints go is the artifact's business.
MANAGED_FIELDS = frozenset({"output_dir", "resume_from_checkpoint"})
# transformers 5 renamed gradient checkpointing; the old names still work but the new ones win when both are set,
# so every layer is normalised to the new names before merging.
_RENAMED = {"gradient_checkpointing": "activation_checkpointing",
            "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs"}


@dataclass(frozen=True)
class Objective:
    name: str
    kind: str  # which TRL trainer: sft | dpo
    columns: Tuple[str, ...]  # what the training split must have
    losses: Tuple[str, ...] = ()  # DPO loss_type terms

    @property
    def unused_fields(self) -> frozenset:
        """`objective.*` fields this objective never reads: they do not change its fingerprint."""
        unused = set()
        if self.kind != "dpo":
            unused.add("beta")
        if self.kind != "sft":
            unused.add("group_batches")
        if len(self.losses) < 2:
            unused.add("sft_weight")  # the weight of a second loss term
        return frozenset(unused)

    def loss_args(self, obj_cfg: Any) -> Dict[str, Any]:
        if self.kind != "dpo":
            return {}
        out: Dict[str, Any] = {"loss_type": list(self.losses)}
        if len(self.losses) > 1:
            out["loss_weights"] = [1.0, float(obj_cfg.sft_weight)]
        if obj_cfg.beta is not None:
            out["beta"] = float(obj_cfg.beta)
        return out


OBJECTIVES = Registry("objective")
OBJECTIVES.register("sft")(Objective("sft", "sft", ("messages",)))
OBJECTIVES.register("dpo")(Objective("dpo", "dpo", ("prompt", "chosen", "rejected"), ("sigmoid",)))
# DPO plus the NLL of the chosen reply, as both papers train (DeMoRecon section 4, Conifer's DPO stage).
OBJECTIVES.register("dpo_sft")(Objective("dpo_sft", "dpo", ("prompt", "chosen", "rejected"), ("sigmoid", "sft")))


def objective_of(cfg: DictConfig) -> Objective:
    return OBJECTIVES.get(str(cfg.objective.name))


def config_class(kind: str) -> type:
    if kind == "sft":
        from trl import SFTConfig

        return SFTConfig
    from trl import DPOConfig

    return DPOConfig


def _normalised(layer: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    return {_RENAMED.get(str(k), str(k)): v for k, v in dict(plain(layer) or {}).items()}


def model_hparams(cfg: DictConfig) -> Dict[str, Any]:
    """`model.hparams.<objective name>`: the paper's row, {} when the model file has none."""
    hparams = plain(cfg.model.get("hparams")) or {}
    return dict(hparams.get(str(cfg.objective.name)) or {})


def trainer_layers(cfg: DictConfig, device_defaults: Dict[str, Any], deepspeed_path: Optional[str]) -> List[Dict]:
    """The five layers of the module doc, lowest precedence first."""
    objective = objective_of(cfg)
    ifforge: Dict[str, Any] = {"seed": int(cfg.seed), "report_to": "none", "save_total_limit": 1,
                               "include_num_input_tokens_seen": "non_padding"}
    if cfg.model.max_length is not None:
        ifforge["max_length"] = int(cfg.model.max_length)
    if objective.kind == "sft":
        ifforge["assistant_only_loss"] = True
    if deepspeed_path is not None:
        ifforge["deepspeed"] = deepspeed_path
    return [_normalised(device_defaults), ifforge, _normalised(model_hparams(cfg)),
            objective.loss_args(cfg.objective), _normalised(cfg.objective.trainer)]


def merged_trainer_args(layers: List[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for layer in layers:
        out.update(layer)
    return out


def check_trainer_keys(args: Mapping[str, Any], kind: str) -> None:
    """Unknown or stage-managed keys fail at preflight, with the nearest real field names (all of them when none
    is near). `objective.trainer` is an open node, so this is where its typos are caught."""
    known = {f.name for f in fields(config_class(kind))}
    for key in args:
        if key in MANAGED_FIELDS:
            raise UserError(f"objective.trainer.{key} is managed by ifforge (checkpoints live in the artifact)")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            cls = config_class(kind).__name__
            hint = f"did you mean {', '.join(close)}?" if close else f"valid fields: {', '.join(sorted(known))}"
            raise UserError(f"{key!r} is not a {cls} field (objective={kind} trainer argument); {hint}")


def check_objective(cfg: DictConfig) -> Objective:
    objective = objective_of(cfg)
    rows = sorted((set(plain(cfg.model.get("hparams")) or {}) | set(plain(cfg.model.get("gpus")) or {}))
                  - set(OBJECTIVES.names()))
    if rows:
        raise UserError(f"model.hparams has rows for unknown objectives {rows}; rows are named after objectives: "
                        f"{', '.join(OBJECTIVES.names())}")
    if objective.kind != "dpo" and cfg.objective.beta is not None:
        raise UserError(f"objective.beta applies to DPO objectives, not {objective.name!r}")
    if objective.kind != "sft" and cfg.objective.group_batches:
        raise UserError("objective.group_batches applies to SFT (DeMoRecon's grouped SFT batches)")
    if cfg.objective.group_batches and (plain(cfg.objective.trainer) or {}).get("packing"):
        raise UserError("objective.group_batches cannot be combined with packing (packing mixes rows across groups)")
    return objective


def fingerprint_slice(cfg: DictConfig) -> Dict[str, Any]:
    """What the trained model depends on: the model (with only this objective's hparams row), the objective
    minus runtime-only knobs (the fields it does not use at their defaults), and the seed. The build's fingerprint comes in through the stage inputs."""
    model = {k: v for k, v in plain(cfg.model).items() if k not in ("hparams", "gpus")}
    model["hparams"] = model_hparams(cfg)
    gpus = (plain(cfg.model.get("gpus")) or {}).get(str(cfg.objective.name))
    if gpus:  # only this objective's count, and only where a recipe states one
        model["gpus"] = gpus
    if model.get("peft") == "none":
        model.pop("lora", None)  # LoRA settings without LoRA change nothing
    objective = {k: v for k, v in plain(cfg.objective).items() if k not in OBJECTIVE_RUNTIME_FIELDS}
    # Fields the objective never reads are pinned to their defaults rather than dropped, so that the artifacts
    # trained before this rule keep their fingerprints.
    defaults = {f.name: f.default for f in fields(ObjectiveConfig)}
    objective.update({k: defaults[k] for k in objective_of(cfg).unused_fields if k in objective})
    objective["trainer"] = {k: v for k, v in _normalised(cfg.objective.trainer).items()
                            if k not in TRAINER_RUNTIME_FIELDS}
    return {"model": model, "objective": objective, "seed": int(cfg.seed)}
