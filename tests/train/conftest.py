"""Shared pieces of the train tests: composed configs, hand-made build artifacts, running the train stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

# The model fixtures (tiny_model_dir, smollm2_dir) come from tests/conftest.py (tests.helpers.models).


def sft_rows(n_groups: int = 4, variants: int = 2) -> List[Dict[str, Any]]:
    """Multi-turn chats: each seed (group) has an original and `variants` modified instructions."""
    colours = ["red", "blue", "green", "yellow", "black", "white", "pink", "brown"]
    rows = []
    for g in range(n_groups):
        for v in range(variants + 1):
            colour = colours[(g + v) % len(colours)]
            rows.append({
                "messages": [
                    {"role": "user", "content": f"Name colour number {g}."},
                    {"role": "assistant", "content": f"The colour is {colour}."},
                    {"role": "user", "content": "Say it again in capitals."},
                    {"role": "assistant", "content": f"THE COLOUR IS {colour.upper()}."},
                ],
                "seed_id": f"s{g}", "group_id": f"s{g}", "is_original": v == 0,
            })
    return rows


def dpo_rows(n: int = 6) -> List[Dict[str, Any]]:
    return [{"prompt": [{"role": "user", "content": f"Write the number {i} in words."}],
             "chosen": [{"role": "assistant", "content": f"The number is {i}."}],
             "rejected": [{"role": "assistant", "content": "I will not."}],
             "seed_id": f"s{i}", "group_id": f"s{i}"} for i in range(n)]


def compose(tmp_path: Path, overrides: List[str]):
    from hydra import compose as hydra_compose, initialize_config_dir

    import ifforge.__main__ as entry  # registers the schemas and resolvers

    with initialize_config_dir(config_dir=entry.CONF_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=[f"paths.artifacts={tmp_path / 'artifacts'}", *overrides])


def write_build(cfg, splits: Dict[str, List[Dict[str, Any]]]) -> Path:
    """A hand-made, finished build artifact where the pipeline will look for this config's build."""
    from ifforge.build.save import save_splits
    from ifforge.pipeline import Runner

    art = Runner(cfg).artifact("build")
    art.path.mkdir(parents=True, exist_ok=True)
    save_splits(splits, art.path)
    from ifforge.artifacts import inventory

    art.manifest_path.write_text(json.dumps({"stage": "build", "fingerprint": art.fingerprint, "stats": {},
                                             "files": inventory(art.path)}))
    return art.path


def train_cfg(tmp_path: Path, model_dir: Optional[Path], objective: str = "sft", extra: Optional[List[str]] = None):
    """A train-only config on the tiny model, with a hand-made build holding `sft` and `dpo` splits."""
    overrides = ["stages=[train]", "model=tiny", f"objective={objective}", "seeds.limit=3"]
    if model_dir is not None:
        overrides.append(f"model.path={model_dir}")
    cfg = compose(tmp_path, overrides + list(extra or []))
    write_build(cfg, {"sft": sft_rows(), "dpo": dpo_rows()})
    return cfg


def run_train(cfg) -> Dict[str, Any]:
    """Run the stages of `cfg` in-process; the train artifact's manifest."""
    from ifforge.pipeline import Runner, run

    run(cfg)
    return Runner(cfg).artifact("train").manifest()


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
