"""benchmarks/train_recipe_gpu.py runs only on a GPU; its arithmetic and its configuration are checked here."""

import importlib.util

import pytest

from tests.helpers.data import REPO
from tests.train.conftest import compose

spec = importlib.util.spec_from_file_location("train_recipe_gpu", REPO / "benchmarks" / "train_recipe_gpu.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_mfu_arithmetic():
    n = 7_000_000_000
    assert bench.flops_per_token(n, "sft") == 42e9 and bench.flops_per_token(n, "dpo_sft") == 56e9
    # 3,000 tokens/s on a 7B model is 126 TFLOP/s: 12.7% of a 989 TFLOP/s GPU
    assert bench.mfu(3000, n, "sft") == pytest.approx(126e12 / 989e12)
    assert bench.mfu(3000, n, "dpo", peak_tflops=100) == pytest.approx(3000 * 56e9 / 100e12)


def test_synthetic_rows_have_the_train_columns():
    rows = bench.synthetic_rows(3, 10)
    assert [m["role"] for m in rows["sft"][0]["messages"]] == ["user", "assistant"]
    assert {"prompt", "chosen", "rejected"} <= set(rows["dpo"][0]) and len(rows["sft"]) == 3


@pytest.mark.parametrize("objective", ["sft", "dpo_sft"])
def test_the_benchmark_config_composes_into_the_recipe(tmp_path, objective, monkeypatch):
    from ifforge.train.run import Plan

    monkeypatch.setenv("WORLD_SIZE", "1")
    cfg = compose(tmp_path, bench.overrides(objective, tmp_path / "model", tmp_path, 3, 4))
    plan = Plan(cfg)
    args = plan.trainer_args
    assert (args["max_steps"], args["per_device_train_batch_size"], args["gradient_accumulation_steps"]) == (3, 4, 1)
    assert args["activation_checkpointing"] is True and plan.deepspeed.endswith("zero2.json")
