"""Config -> trainer arguments: the papers' rows per model and objective, precedence, validation, fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifforge.errors import UserError
from ifforge.train import precision, settings
from tests.helpers.cli import run_cli
from tests.train.conftest import compose

CONF = Path(__file__).resolve().parents[2] / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
OBJECTIVES = settings.OBJECTIVES.names()
CPU = precision.Device("cpu")


def args_for(cfg, device=CPU):
    defaults = precision.trainer_defaults(cfg.model, device)
    return settings.merged_trainer_args(settings.trainer_layers(cfg, defaults, None))


def test_every_paper_model_is_there():
    assert set(MODELS) >= {"llama2-7b-chat", "llama2-13b-chat", "qwen1.5-7b-chat", "qwen1.5-14b-chat",
                           "mistral-7b-instruct", "orion-14b-chat", "mistral-7b", "llama2-13b",
                           "smollm2-135m-instruct", "tiny"}


@pytest.mark.parametrize("model", MODELS)
def test_model_files_compose_into_valid_trainer_configs(tmp_path, model):
    """Every model x objective gives arguments TRL accepts on this CPU (no bf16 error, no unknown key)."""
    for objective in OBJECTIVES:
        cfg = compose(tmp_path, [f"model={model}", f"objective={objective}"])
        args = args_for(cfg)
        kind = settings.check_objective(cfg).kind
        settings.check_trainer_keys(args, kind)
        built = settings.config_class(kind)(output_dir=str(tmp_path / "out"), **args)
        # off on a CPU unless the recipe states it (Conifer B.1 applies gradient checkpointing)
        assert built.bf16 is False and built.activation_checkpointing is bool(cfg.model.gradient_checkpointing)
        if kind == "sft":
            assert built.assistant_only_loss is True


def test_paper_rows_reach_the_trainer(tmp_path):
    # DeMoRecon Table 4, DPO/DPO+SFT, Qwen1.5-7B-Chat: 2 epochs, accumulation 1, lr 5e-6
    args = args_for(compose(tmp_path, ["objective=dpo", "model=qwen1.5-7b-chat"]))
    assert (args["num_train_epochs"], args["gradient_accumulation_steps"], args["learning_rate"]) == (2, 1, 5e-6)
    assert args["loss_type"] == ["sigmoid"] and "loss_weights" not in args
    # ... SFT, Orion-14B-Chat: 4 epochs, accumulation 8, lr 2e-5
    args = args_for(compose(tmp_path, ["objective=sft", "model=orion-14b-chat"]))
    assert (args["num_train_epochs"], args["gradient_accumulation_steps"], args["learning_rate"]) == (4, 8, 2e-5)
    # Conifer B.1, Mistral-7B DPO: beta 0.01, lr 5e-7; dpo_sft reuses the DPO row and adds the SFT term
    args = args_for(compose(tmp_path, ["objective=dpo_sft", "model=mistral-7b", "objective.sft_weight=0.5"]))
    assert (args["beta"], args["learning_rate"], args["lr_scheduler_type"]) == (0.01, 5e-7, "cosine")
    assert args["loss_type"] == ["sigmoid", "sft"] and args["loss_weights"] == [1.0, 0.5]


def test_precedence_user_trainer_node_wins(tmp_path):
    cfg = compose(tmp_path, ["objective=dpo", "model=mistral-7b", "objective.beta=0.3",
                             "+objective.trainer.learning_rate=1e-6", "+objective.trainer.bf16=true",
                             "+objective.trainer.gradient_checkpointing=true", "model.max_length=512"])
    args = args_for(cfg)
    assert args["beta"] == 0.3  # objective.beta over the model's paper value
    assert args["learning_rate"] == 1e-6  # objective.trainer over the paper row
    assert args["bf16"] is True  # ... and over the device default
    # the transformers-4 name is renamed, so it is not silently beaten by the device default's new name
    assert args["activation_checkpointing"] is True and "gradient_checkpointing" not in args
    assert args["max_length"] == 512


def test_gpu_defaults():
    cfg_model = type("M", (), {"dtype": "auto", "gradient_checkpointing": None})()
    gpu = precision.Device("cuda", bf16=True)
    assert precision.trainer_defaults(cfg_model, gpu) == {"bf16": True, "fp16": False,
                                                          "activation_checkpointing": True}
    old = precision.Device("cuda", bf16=False)
    assert precision.trainer_defaults(cfg_model, old)["fp16"] is True
    assert precision.weights_dtype("auto", old) == "float32"
    assert precision.trainer_defaults(cfg_model, CPU, deepspeed=True) == {
        "bf16": False, "fp16": False, "activation_checkpointing": False}  # no use_cpu: it would bypass DeepSpeed


def test_mistakes_fail_with_a_clear_message(tmp_path):
    cfg = compose(tmp_path, ["objective=sft", "model=tiny", "+objective.trainer.learning_rat=1e-5"])
    with pytest.raises(UserError, match="did you mean learning_rate"):
        settings.check_trainer_keys(args_for(cfg), "sft")
    cfg = compose(tmp_path, ["objective=sft", "model=tiny", "+objective.trainer.output_dir=/x"])
    with pytest.raises(UserError, match="managed by ifforge"):
        settings.check_trainer_keys(args_for(cfg), "sft")
    with pytest.raises(UserError, match="objective.beta applies to DPO"):
        settings.check_objective(compose(tmp_path, ["objective=sft", "objective.beta=0.1"]))
    with pytest.raises(UserError, match="group_batches applies to SFT"):
        settings.check_objective(compose(tmp_path, ["objective=dpo", "objective.group_batches=true"]))
    with pytest.raises(UserError, match="unknown objective"):
        settings.check_objective(compose(tmp_path, ["objective.name=ppo"]))
    with pytest.raises(UserError, match="rows for unknown objectives"):
        settings.check_objective(compose(tmp_path, ["model=tiny", "+model.hparams.sfft={learning_rate: 1.0}"]))


def test_any_trainer_field_is_set_without_plus_and_unknown_ones_still_fail(tmp_path):
    """`objective.trainer` is an open node: a TRL field is set like any other key; the train stage's preflight
    still refuses a name TRL does not know, in one line that lists the fields when none is close."""
    proc = run_cli(["--cfg", "job", "model=tiny", "objective=dpo", "objective.trainer.max_steps=10",
                    "objective.trainer.beta=0.2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = proc.stdout.split("# trainer arguments", 1)[1]
    assert "#   max_steps: 10\n" in shown and "#   beta: 0.2\n" in shown  # objective.trainer wins over the row
    proc = run_cli(["stages=[train]", "model=tiny", "objective.trainer.zzqqxx=1"], tmp_path)
    assert proc.returncode == 2
    error = [line for line in proc.stderr.splitlines() if "zzqqxx" in line]
    assert len(error) == 1 and "is not a SFTConfig field" in error[0]
    assert "valid fields: " in error[0] and "max_steps" in error[0] and "learning_rate" in error[0]


def test_preflight_catches_model_and_deepspeed_problems(tmp_path):
    from ifforge.train.run import check

    with pytest.raises(UserError, match="qlora"):
        check(compose(tmp_path, ["model=tiny", "model.peft=qlora"]))
    with pytest.raises(UserError, match="LoraConfig does not know"):
        check(compose(tmp_path, ["model=tiny", "model.peft=lora", "+model.lora.rank=8"]))
    with pytest.raises(UserError, match="objective.deepspeed"):
        check(compose(tmp_path, ["model=tiny", "objective.deepspeed=zero7"]))
    with pytest.raises(UserError, match="model.chat_template"):
        check(compose(tmp_path, ["model=tiny", "model.chat_template=nonexistent"]))


def test_fingerprint_ignores_eval_logging_and_other_objectives_rows(tmp_path):
    from ifforge.pipeline import Runner

    def train_fp(*overrides):
        return Runner(compose(tmp_path, ["model=tiny", "objective=sft", *overrides])).artifact("train").fingerprint

    base = train_fp()
    assert train_fp("eval.ifeval.limit=3", "candidate.max_tokens=17") == base
    assert train_fp("+objective.trainer.logging_steps=5", "objective.keep_checkpoints=true") == base
    assert train_fp("model.hparams.dpo.learning_rate=0.5") == base  # another objective's row
    assert train_fp("model.lora.r=4") == base  # LoRA settings while model.peft=none
    assert train_fp("model.lora.r=4", "model.peft=lora") != train_fp("model.peft=lora")
    assert train_fp("model.hparams.sft.learning_rate=0.5") != base
    assert train_fp("objective.trainer.num_train_epochs=9") != base  # no `+`: the trainer node is open
    assert train_fp("seed=1") != base
    assert train_fp("objective.deepspeed=zero2") != base  # a DeepSpeed checkpoint cannot resume a plain one


def test_fingerprint_leaves_out_what_the_objective_does_not_use(tmp_path):
    from ifforge.pipeline import Runner

    def train_fp(objective, *overrides):
        cfg = compose(tmp_path, ["model=tiny", f"objective={objective}", *overrides])
        return Runner(cfg).artifact("train").fingerprint

    assert train_fp("sft", "objective.sft_weight=0.5") == train_fp("sft")  # SFT has no second loss term
    assert train_fp("dpo", "objective.sft_weight=0.5") == train_fp("dpo")
    assert train_fp("dpo_sft", "objective.sft_weight=0.5") != train_fp("dpo_sft")
    assert train_fp("dpo", "objective.beta=0.5") != train_fp("dpo")
