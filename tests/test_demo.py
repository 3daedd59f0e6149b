"""`make demo`'s experiment end to end on a very small slice: SmolLM2 builds, trains and evaluates on a CPU."""

import json
from pathlib import Path

import pytest

from tests.helpers.cli import outputs, run_cli
from tests.helpers.data import SHARED_DATA, needs_shared_data


@pytest.mark.slow
@needs_shared_data
def test_demo_experiment_runs_end_to_end(tmp_path):
    proc = run_cli([
        "experiment=demo", "seeds.limit=2", "generator.max_tokens=24", "objective.trainer.max_steps=1",
        "candidate.max_tokens=16", "eval.ifeval.limit=1",
    ], tmp_path, env={"IFFORGE_SHARED_DATA": str(SHARED_DATA)}, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = outputs(tmp_path)
    assert set(out) == {"build", "train", "eval"}
    for stage, path in out.items():
        assert f"{stage}: {path}" in proc.stdout
        assert (Path(path) / "manifest.json").is_file()
    metrics = json.loads((Path(out["eval"]) / "metrics.json").read_text())
    assert set(metrics) == {"ifeval"}
    assert "prompt_level_strict_acc" in metrics["ifeval"]
    assert (Path(out["train"]) / "model" / "config.json").is_file() or list(Path(out["train"]).rglob("config.json"))
