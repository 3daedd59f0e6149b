"""The issue's "done means", end to end through the real entrypoint: a DeMoRecon build made against the local
OpenAI-compatible server (scripted as in the build tests), then `stages=[build,train] objective=dpo_sft
model=tiny`, then SFT with grouped batches on the same build; rerunning with only an eval change retrains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.build.test_demorecon_build import NO_STATS, build_args, script, seeds_file
from tests.helpers.cli import outputs, run_cli

ENV = {"OPENAI_API_KEY": "test-key", "TQDM_DISABLE": "1"}


def manifest(path: str):
    return json.loads((Path(path) / "manifest.json").read_text())


@pytest.mark.slow
def test_build_and_train_dpo_sft_then_sft_then_eval_only_change(tmp_path, openai_server, tiny_model_dir):
    srv = openai_server
    script(srv)
    build = [a for a in build_args(srv, seeds_file(tmp_path), NO_STATS) if not a.startswith("stages=")]
    common = ["stages=[build,train]", *build, "model=tiny", f"model.path={tiny_model_dir}",
              "+objective.trainer.max_steps=3"]

    proc = run_cli([*common, "objective=dpo_sft"], tmp_path, env=ENV, check=True)
    first = outputs(tmp_path)
    dpo = manifest(first["train"])
    assert f"train: {first['train']}" in proc.stdout
    assert dpo["inputs"]["build"]["path"] == first["build"]
    assert dpo["stats"]["split"] == "dpo" and dpo["stats"]["rows"] == manifest(first["build"])["stats"]["splits"]["dpo"]
    assert dpo["stats"]["loss_weights"] == {"sigmoid": 1.0, "sft": 1.0} and dpo["stats"]["steps"] == 3
    assert set(dpo["stats"]["loss_curve"]) == {"loss", "loss/sigmoid", "loss/sft"}
    sent = srv.count()

    sft_args = [*common, "objective=sft", "objective.group_batches=true"]
    run_cli(sft_args, tmp_path, env=ENV, check=True)
    second = outputs(tmp_path)
    assert second["build"] == first["build"] and second["train"] != first["train"]  # same data, new model
    sft = manifest(second["train"])
    assert sft["stats"]["group_batches"] is True and sft["stats"]["split"] == "sft"
    assert (Path(second["train"]) / "model" / "model.safetensors").is_file()
    stamp = (Path(second["train"]) / "manifest.json").stat().st_mtime_ns

    proc = run_cli([*sft_args, "eval.ifeval.limit=5", "candidate.max_tokens=64"], tmp_path, env=ENV, check=True)
    assert outputs(tmp_path) == second
    assert f"[train] reusing {second['train']}" in proc.stderr + proc.stdout
    assert (Path(second["train"]) / "manifest.json").stat().st_mtime_ns == stamp
    assert srv.count() == sent  # nothing was generated again either
