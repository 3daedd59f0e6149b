"""The model under test: which one, and what of it enters the eval fingerprints.

`candidate` (config.py) has the generator schema. Its `model: null` means "the model this run is about": the train
stage's checkpoint when "train" is in `stages`, else `model.path` (or `model.name`), so `model=<name>` evaluates
that model unchanged (the papers' "Ori." rows). Any other backend or endpoint is set on `candidate` directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from ifforge.config import BUILD_ONLY_FIELDS, GENERATOR_RUNTIME_FIELDS
from ifforge.errors import UserError

TRAIN_MODEL = "<train checkpoint>"  # stands in the fingerprint for the checkpoint; the train fingerprint follows


def uses_train(cfg: DictConfig) -> bool:
    return cfg.candidate.model is None and "train" in [str(s) for s in cfg.stages]


def checkpoint_dir(train_dir: Path) -> Path:
    """The `save_pretrained` directory inside a train artifact: the manifest's `stats.model_dir` (train/run.py
    writes it), else `<artifact>/model`."""
    manifest = train_dir / "manifest.json"
    if manifest.is_file():
        value = (json.loads(manifest.read_text()).get("stats") or {}).get("model_dir")
        if isinstance(value, str) and (Path(value) / "config.json").is_file():
            return Path(value)
    return train_dir / "model"


def model_name(cfg: DictConfig, train_dir: Optional[Path] = None) -> str:
    if cfg.candidate.model is not None:
        return str(cfg.candidate.model)
    if uses_train(cfg):
        if train_dir is None:
            raise UserError("the model under test is the train stage's checkpoint, but no train artifact is wired in")
        return str(checkpoint_dir(train_dir))
    name = cfg.model.get("path") or cfg.model.get("name")
    if not name:
        raise UserError("no model under test: set model=<name>, or candidate.model=<hub name, path or API model>")
    return str(name)


def candidate_node(cfg: DictConfig, train_dir: Optional[Path] = None) -> DictConfig:
    """`cfg.candidate` with its model filled in, ready for `make_generator`."""
    node = OmegaConf.to_container(cfg.candidate, resolve=True)
    node["model"] = model_name(cfg, train_dir)
    return OmegaConf.create(node)


def identity(cfg: DictConfig) -> Dict[str, Any]:
    """What of the candidate changes answers (runtime knobs such as batch size stay out)."""
    node: Dict[str, Any] = OmegaConf.to_container(cfg.candidate, resolve=True)  # type: ignore[assignment]
    node = {k: v for k, v in node.items() if k not in GENERATOR_RUNTIME_FIELDS | BUILD_ONLY_FIELDS}
    node["model"] = TRAIN_MODEL if uses_train(cfg) else model_name(cfg)
    return node


def label(cfg: DictConfig) -> str:
    """The model column of the tables."""
    if uses_train(cfg):
        return f"{cfg.model.get('name') or 'model'} (trained: {cfg.objective.get('name', '?')})"
    return model_name(cfg)
