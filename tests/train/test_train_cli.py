"""`ifforge stages=[build,train] objective=sft model=tiny` end to end through the real entrypoint and the local
OpenAI-compatible server; rerunning with only an eval change retrains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import openai_args, outputs, run_cli

ENV = {"OPENAI_API_KEY": "test-key", "TQDM_DISABLE": "1"}


@pytest.mark.slow
def test_build_then_train_then_eval_only_change_reuses_both(tmp_path, openai_server, tiny_model_dir):
    srv = openai_server
    srv.on("topic", lambda body: "Here is a sentence about " + body["messages"][-1]["content"][-9:])
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Write a sentence about topic {i}."}) + "\n"
                             for i in range(4)))
    args = ["stages=[build,train]", "seeds=jsonl", f"seeds.path={seeds}", "seeds.id_field=id",
            *openai_args(srv.url), "objective=sft", "model=tiny", f"model.path={tiny_model_dir}",
            "+objective.trainer.max_steps=3"]
    proc = run_cli(args, tmp_path, env=ENV, check=True)
    out = outputs(tmp_path)
    train_dir = Path(out["train"])
    assert f"train: {train_dir}" in proc.stdout
    manifest = json.loads((train_dir / "manifest.json").read_text())
    assert manifest["inputs"]["build"]["path"] == out["build"]
    assert manifest["stats"]["rows"] == 4 and manifest["stats"]["steps"] == 3
    assert (train_dir / "model" / "model.safetensors").is_file()
    stamp = (train_dir / "manifest.json").stat().st_mtime_ns
    sent = srv.count()

    proc = run_cli(args + ["eval.ifeval.limit=5", "candidate.max_tokens=64"], tmp_path, env=ENV, check=True)
    assert outputs(tmp_path) == out
    assert f"[train] reusing {train_dir}" in proc.stderr + proc.stdout
    assert (train_dir / "manifest.json").stat().st_mtime_ns == stamp
    assert srv.count() == sent
