"""Launch environments: submitit's Slurm tasks become torch.distributed ranks; DeepSpeed configs resolve."""

from __future__ import annotations

import json
import os

import pytest

from ifforge.errors import UserError
from ifforge.train import distributed

TORCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch):
    for var in TORCH_VARS + ("SUBMITIT_EXECUTOR",):
        monkeypatch.setenv(var, "x")  # recorded, so whatever the code sets is undone after the test
        monkeypatch.delenv(var)
    return monkeypatch


def test_submitit_slurm_task_becomes_a_rank(clean_env):
    clean_env.setenv("SUBMITIT_EXECUTOR", "slurm")
    clean_env.setenv("SLURM_JOB_ID", "4242")
    clean_env.setenv("SLURM_NTASKS", "8")
    clean_env.setenv("SLURM_JOB_NUM_NODES", "2")
    clean_env.setenv("SLURM_NODEID", "1")
    clean_env.setenv("SLURM_PROCID", "5")
    clean_env.setenv("SLURM_LOCALID", "1")
    clean_env.setenv("SLURM_JOB_NODELIST", "gpu[07-08]")
    distributed.export_launch_env()
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("5", "8", "1")
    assert os.environ["MASTER_ADDR"] == "gpu07"  # every task agrees on the first host
    port = os.environ["MASTER_PORT"]
    clean_env.delenv("RANK")
    clean_env.delenv("MASTER_PORT")
    distributed.export_launch_env()
    assert os.environ["MASTER_PORT"] == port  # derived from the job id: the same on every task


def test_torchrun_variables_are_left_alone(clean_env):
    clean_env.setenv("SUBMITIT_EXECUTOR", "slurm")
    clean_env.setenv("RANK", "3")
    clean_env.setenv("SLURM_PROCID", "0")
    distributed.export_launch_env()
    assert os.environ["RANK"] == "3"


def test_single_process_has_no_group(clean_env):
    assert distributed.process_group() is None
    distributed.export_single_process_env()  # what DeepSpeed needs on one device
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["MASTER_ADDR"]) == ("0", "1", "127.0.0.1")
    assert int(os.environ["MASTER_PORT"]) > 0


@pytest.mark.parametrize("name,stage", [("zero2", 2), ("zero3", 3)])
def test_deepspeed_configs(name, stage, tmp_path):
    path = distributed.deepspeed_config(name)
    config = json.loads(open(path).read())
    assert config["zero_optimization"]["stage"] == stage
    assert config["train_micro_batch_size_per_gpu"] == "auto"  # filled from the trainer arguments
    own = tmp_path / "mine.json"
    own.write_text("{}")
    assert distributed.deepspeed_config(str(own)) == str(own)
    with pytest.raises(UserError, match="zero2 or zero3"):
        distributed.deepspeed_config(str(tmp_path / "missing.json"))
