"""DeepSpeed ZeRO-2 on the CPU, single process, through the real entrypoint (DeepSpeed initialises
torch.distributed, which stays out of the pytest process this way). The first run ever JIT-compiles a small
op (~1 min, cached under TORCH_EXTENSIONS_DIR)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_cli
from tests.train.conftest import dpo_rows, sft_rows, compose, write_build

pytest.importorskip("deepspeed")


@pytest.mark.slow
def test_zero2_single_process_on_cpu(tmp_path, tiny_model_dir):
    overrides = ["stages=[train]", "model=tiny", f"model.path={tiny_model_dir}", "objective=sft",
                 "objective.deepspeed=zero2", "+objective.trainer.max_steps=2"]
    write_build(compose(tmp_path, overrides), {"sft": sft_rows(), "dpo": dpo_rows()})
    proc = run_cli(overrides, tmp_path, env={"DS_ACCELERATOR": "cpu", "TQDM_DISABLE": "1"}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    manifest = json.loads(next((tmp_path / "artifacts" / "train").glob("*/manifest.json")).read_text())
    stats = manifest["stats"]
    assert stats["deepspeed"].endswith("launchers/deepspeed/zero2.json")
    assert stats["steps"] == 2 and stats["world_size"] == 1
    assert len(stats["loss_curve"]["loss"]) == 2
    assert (tmp_path / "artifacts" / "train" / manifest["fingerprint"] / "model" / "model.safetensors").is_file()
