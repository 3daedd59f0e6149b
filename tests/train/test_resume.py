"""An interrupted train stage resumes from the last checkpoint in its artifact, at the same step and data position:
the result equals an uninterrupted run's."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import TrainerCallback

from ifforge.train import run as train_run
from tests.train.conftest import run_train, train_cfg

# 12 rows in 4 groups of 3: 4 grouped batches or 6 batches of 2 rows per epoch, so 7 steps cross an epoch boundary
# and the crash at step 4 lands inside the first epoch (the resumed run must skip exactly the trained batches).
SETTINGS = ["+objective.trainer.max_steps=7", "+objective.trainer.save_steps=3",
            "+objective.trainer.learning_rate=5e-3"]
GROUPED = ["objective.group_batches=true", "+objective.trainer.per_device_train_batch_size=1"]
PLAIN = ["+objective.trainer.per_device_train_batch_size=2"]


class Crash(RuntimeError):
    pass


class CrashAtStep(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"simulated crash after step {self.step}")


def weights(model_dir: Path):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("batching", [GROUPED, PLAIN], ids=["grouped", "shuffled_rows"])
def test_resume_continues_from_the_saved_step_with_the_same_data_order(tmp_path, tiny_model_dir, monkeypatch,
                                                                       batching):
    cfg = train_cfg(tmp_path / "a", tiny_model_dir, "sft", SETTINGS + batching)
    monkeypatch.setattr(train_run, "extra_callbacks", lambda: [CrashAtStep(4)])
    with pytest.raises(Crash):
        run_train(cfg)
    from ifforge.pipeline import Runner

    art = Runner(cfg).artifact("train")
    assert not art.done  # no manifest: the artifact is unfinished
    assert sorted(p.name for p in (art.path / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3"]

    monkeypatch.setattr(train_run, "extra_callbacks", lambda: [])
    resumed = run_train(cfg)["stats"]
    assert resumed["resumed_from_step"] == 3 and resumed["steps"] == 7
    assert [s for s, _ in resumed["loss_curve"]["loss"]] == list(range(1, 8))  # the history survives the crash

    straight = run_train(train_cfg(tmp_path / "b", tiny_model_dir, "sft", SETTINGS + batching))["stats"]
    assert straight["resumed_from_step"] is None
    # Same steps on the same batches in the same order: the same losses and the same weights.
    losses = [[v for _, v in run["loss_curve"]["loss"]] for run in (resumed, straight)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    a, b = weights(Path(resumed["model_dir"])), weights(Path(straight["model_dir"]))
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max().item() < 1e-5, name
