"""The real embedded default, SmolLM2-135M-Instruct, trains for two SFT steps through the train stage."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.train.conftest import compose, dpo_rows, run_train, sft_rows, write_build


@pytest.mark.slow
def test_smollm2_two_sft_steps(tmp_path, smollm2_dir):
    cfg = compose(tmp_path, ["stages=[train]", "model=smollm2-135m-instruct", f"model.path={smollm2_dir}",
                             "objective=sft", "model.max_length=96", "+objective.trainer.max_steps=2",
                             "+objective.trainer.per_device_train_batch_size=2", "+objective.trainer.logging_steps=1"])
    write_build(cfg, {"sft": sft_rows(n_groups=2), "dpo": dpo_rows()})
    stats = run_train(cfg)["stats"]
    losses = [v for _, v in stats["loss_curve"]["loss"]]
    assert len(losses) == 2 and all(math.isfinite(v) and 0 < v < 10 for v in losses)  # a trained LM: low loss
    assert stats["chat_template"] == "tokenizer"  # SmolLM2's ChatML template already has generation markers
    assert (Path(stats["model_dir"]) / "model.safetensors").stat().st_size > 100e6
