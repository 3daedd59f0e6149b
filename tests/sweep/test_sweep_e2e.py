"""A 4-job sweep on the tiny model with submitit_local: shared builds, a summary row per job, W&B runs per job."""

import csv
import json

import pytest

from tests.helpers.cli import openai_args, run_cli
from tests.helpers.data import SHARED_DATA, needs_shared_data


@pytest.mark.slow
@needs_shared_data
def test_four_job_sweep_shares_builds(tmp_path, openai_server):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Write one line about topic {i}."}) + "\n"
                             for i in range(4)))
    sweep = tmp_path / "sweep"
    proc = run_cli([
        "-m", "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}", "hydra.launcher.timeout_min=20",
        "stages=[build,train,eval]", "seeds=jsonl", f"seeds.path={seeds}", "seeds.id_field=id",
        *openai_args(openai_server.url), "model=tiny", "objective=sft", "eval=[ifeval]",
        f"eval.ifeval.path={SHARED_DATA / 'ifeval/input_data.jsonl'}", "eval.ifeval.limit=2",
        "candidate.max_tokens=8", "tracking=wandb", f"tracking.dir={tmp_path}",
        # 2 datasets x 2 learning rates = 4 jobs, 2 distinct build artifacts
        "seeds.limit=3,4", "+objective.trainer.learning_rate=1e-3,1e-4",
    ], tmp_path, env={"OPENAI_API_KEY": "k"}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    builds = list((tmp_path / "artifacts" / "build").glob("*/manifest.json"))
    trains = list((tmp_path / "artifacts" / "train").glob("*/manifest.json"))
    assert len(builds) == 2 and len(trains) == 4
    # Each dataset was built by exactly one job; the other job that needed it reused it.
    logs = "".join(p.read_text() for p in sweep.glob("*/*.log"))
    assert logs.count("[build] seeds_as_instructions") == 2, logs[-2000:]
    assert logs.count("[build] reusing") == 2
    # The server saw each distinct prompt at most twice (two builds may race on the shared first 3 seeds).
    assert openai_server.count() <= 7

    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert all(r["IFEval (prompt strict)"] != "" for r in rows)
    assert (sweep / "summary.md").is_file() and (sweep / "summary.png").is_file()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 12  # 4 jobs x 3 stages
