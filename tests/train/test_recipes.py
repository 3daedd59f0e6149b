"""The papers' training recipes: every listed setting reaches the trainer, and the global batch holds on any GPU
count (gradient accumulation derived from the world size at launch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifforge.train import batch
from ifforge.train.run import Plan
from tests.helpers.cli import run_cli
from tests.train.conftest import compose, run_train, train_cfg

# (model, objective) -> the paper's row: epochs, learning rate, per-device batch, accumulation, GPUs, and the other
# settings the paper lists. DeMoRecon: appendix A, Table 4 (batch size 1 seed / pair per GPU). Conifer: appendix
# B.1 (Mistral-7B on 8 GPUs; LLaMA-2-13B SFT on 16 GPUs; DPO: beta 0.01, 1 epoch, lr 5e-7, 4 x 4; cosine schedule,
# gradient checkpointing, max length 2048, ZeRO-2).
CONIFER = {"lr_scheduler_type": "cosine", "activation_checkpointing": True, "max_length": 2048}
PAPER = {
    ("llama2-7b-chat", "sft"): (4, 1e-6, 1, 1, 4, {}),
    ("qwen1.5-7b-chat", "sft"): (4, 1e-6, 1, 1, 4, {}),
    ("mistral-7b-instruct", "sft"): (2, 1e-6, 1, 1, 4, {}),
    ("llama2-13b-chat", "sft"): (4, 1e-6, 1, 2, 8, {}),
    ("qwen1.5-14b-chat", "sft"): (4, 2e-5, 1, 8, 8, {}),
    ("orion-14b-chat", "sft"): (4, 2e-5, 1, 8, 8, {}),
    ("llama2-7b-chat", "dpo"): (2, 5e-6, 1, 8, 8, {}),
    ("qwen1.5-7b-chat", "dpo"): (2, 5e-6, 1, 1, 8, {}),
    ("mistral-7b-instruct", "dpo"): (4, 5e-6, 1, 8, 8, {}),
    ("llama2-13b-chat", "dpo"): (4, 5e-6, 1, 8, 8, {}),
    ("qwen1.5-14b-chat", "dpo"): (4, 5e-6, 1, 8, 8, {}),
    ("orion-14b-chat", "dpo"): (3, 5e-6, 1, 8, 8, {}),
    ("mistral-7b", "sft"): (4, 2e-5, 16, 4, 8, {**CONIFER, "warmup_steps": 0.1}),
    ("mistral-7b", "dpo"): (1, 5e-7, 4, 4, 8, {**CONIFER, "beta": 0.01}),
    ("llama2-13b", "sft"): (3, 2e-5, 2, 4, 16, {**CONIFER, "warmup_steps": 0.03}),
}


def plan_for(tmp_path, monkeypatch, model, objective, world_size, *extra):
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    return Plan(compose(tmp_path, [f"model={model}", f"objective={objective}", *extra]))


@pytest.mark.parametrize("model,objective", sorted(PAPER))
def test_each_recipe_resolves_to_the_papers_row(tmp_path, monkeypatch, model, objective):
    epochs, lr, per_device, accumulation, gpus, extra = PAPER[(model, objective)]
    for obj in [objective] + (["dpo_sft"] if objective == "dpo" else []):  # DPO+SFT trains with the DPO row
        plan = plan_for(tmp_path, monkeypatch, model, obj, gpus)
        args = plan.trainer_args
        assert (args["num_train_epochs"], args["learning_rate"], args["per_device_train_batch_size"],
                args["gradient_accumulation_steps"]) == (epochs, lr, per_device, accumulation)
        assert plan.global_batch.target == per_device * accumulation * gpus and plan.global_batch.exact
        for key, value in extra.items():
            assert args[key] == value, key
        if extra:  # Conifer's recipes run on DeepSpeed ZeRO-2
            assert plan.deepspeed and plan.deepspeed.endswith("zero2.json")


@pytest.mark.parametrize("world_size", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("model,objective", sorted(PAPER))
def test_the_global_batch_holds_on_any_gpu_count(tmp_path, monkeypatch, model, objective, world_size):
    _, _, per_device, accumulation, gpus, _ = PAPER[(model, objective)]
    target = per_device * accumulation * gpus
    plan = plan_for(tmp_path, monkeypatch, model, objective, world_size)
    found = plan.global_batch
    assert plan.trainer_args["gradient_accumulation_steps"] == found.accumulation
    if target % (per_device * world_size) == 0:
        assert found.exact and found.actual == target
    else:  # e.g. a 4-GPU recipe of batch 1 on 8 GPUs: the nearest accumulation (at least 1), said so
        assert not found.exact and "nearest" in found.describe()
        assert found.accumulation == max(1, round(target / (per_device * world_size)))


def test_the_numbers_as_said(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, "mistral-7b", "sft", 8)
    assert plan.global_batch.describe() == "global batch 512 = 16 per device x 8 GPUs x 4 accumulation"
    plan = plan_for(tmp_path, monkeypatch, "mistral-7b", "sft", 2)
    assert plan.global_batch.describe() == "global batch 512 = 16 per device x 2 GPUs x 16 accumulation"
    # Memory forces a smaller per-device batch: the accumulation grows to keep 512.
    plan = plan_for(tmp_path, monkeypatch, "mistral-7b", "sft", 8, "+objective.trainer.per_device_train_batch_size=8")
    assert plan.global_batch.describe() == "global batch 512 = 8 per device x 8 GPUs x 8 accumulation"
    # 512 on 3 GPUs of 16: 10.67 steps -> 11, and the warning says so.
    plan = plan_for(tmp_path, monkeypatch, "mistral-7b", "sft", 3)
    assert plan.global_batch.describe().startswith("global batch 528 = 16 per device x 3 GPUs x 11 accumulation; "
                                                   "the paper's 512 is not a multiple of 16 x 3")


def test_the_derivation_can_be_turned_off(tmp_path, monkeypatch):
    off = plan_for(tmp_path, monkeypatch, "mistral-7b", "sft", 2, "objective.keep_global_batch=false")
    assert off.global_batch is None and off.trainer_args["gradient_accumulation_steps"] == 4
    own = plan_for(tmp_path, monkeypatch, "mistral-7b", "sft", 2, "+objective.trainer.gradient_accumulation_steps=3")
    assert own.global_batch is None and own.trainer_args["gradient_accumulation_steps"] == 3
    assert plan_for(tmp_path, monkeypatch, "tiny", "sft", 2).global_batch is None  # no paper GPU count


def test_derive_arithmetic():
    assert batch.derive(512, 16, 8).accumulation == 4
    assert batch.derive(8, 1, 16).accumulation == 1 and not batch.derive(8, 1, 16).exact  # 16 > 8: one step
    assert batch.derive(128, 4, 1).accumulation == 32


@pytest.mark.slow
def test_a_run_reports_its_global_batch(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    cfg = train_cfg(tmp_path, tiny_model_dir, extra=["+model.gpus.sft=2", "+model.hparams.sft.gradient_accumulation_steps=2",
                                                     "model.hparams.sft.per_device_train_batch_size=1",
                                                     "+objective.trainer.max_steps=1"])
    stats = run_train(cfg)["stats"]
    assert stats["global_batch"]["actual"] == 4 and stats["global_batch"]["accumulation"] == 4
    assert stats["trainer_args"]["gradient_accumulation_steps"] == 4
    card = (Path(stats["model_dir"]) / "README.md").read_text()
    assert "global batch 4 = 1 per device x 1 GPU x 4 accumulation" in card


def test_cfg_job_shows_the_resolved_trainer_arguments(tmp_path):
    proc = run_cli(["--cfg", "job", "model=mistral-7b", "objective=dpo_sft"], tmp_path, env={"WORLD_SIZE": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = proc.stdout.split("# trainer arguments", 1)[1]
    for line in ("gradient_accumulation_steps: 16", "beta: 0.01", "learning_rate: 5e-07", "lr_scheduler_type: cosine",
                 "loss_type: ['sigmoid', 'sft']", "(global batch 128 = 4 per device x 2 GPUs x 16 accumulation)"):
        assert line in shown, line
