"""Sweep summaries (failed jobs included), W&B offline runs, `ifforge-summary`."""

import csv
import json
import subprocess
import sys

import yaml

from ifforge.sweep.summary import write_summary
from tests.helpers.cli import openai_args, run_cli


def fake_job(sweep, num, overrides, config, metrics=None, status=None):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if metrics is not None:
        ev = sweep / f"eval{num}"
        ev.mkdir()
        (ev / "metrics.json").write_text(json.dumps(metrics))
        (job / "outputs.json").write_text(json.dumps({"eval": str(ev)}))
    if status is not None:
        (job / "status.json").write_text(json.dumps(status))


def test_summary_layout_from_experiment_spec(tmp_path):
    spec = {"title": "Table 3", "rows": ["model.name", "objective.name"],
            "columns": {"IFEval": "ifeval.prompt_level_strict_acc", "FB HSR": "followbench.hsr_avg"}}
    base = {"summary": spec, "experiment": "demorecon/table3"}
    fake_job(tmp_path, 0, ["objective=sft"], {**base, "model": {"name": "tiny"}, "objective": {"name": "sft"}},
             {"ifeval": {"prompt_level_strict_acc": 12.5}, "followbench": {"hsr_avg": 40.0}}, {"status": "ok"})
    fake_job(tmp_path, 1, ["objective=dpo"], {**base, "model": {"name": "tiny"}, "objective": {"name": "dpo"}},
             None, {"status": "failed", "error": "RuntimeError: CUDA out of memory"})
    fake_job(tmp_path, 2, ["objective=dpo_sft"], {**base, "model": {"name": "tiny"}, "objective": {"name": "dpo_sft"}})
    write_summary(tmp_path)
    rows = list(csv.reader(open(tmp_path / "summary.csv")))
    assert rows[0] == ["model.name", "objective.name", "IFEval", "FB HSR", "status"]
    assert rows[1] == ["tiny", "sft", "12.5", "40.0", "ok"]
    assert rows[2] == ["tiny", "dpo", "", "", "failed: RuntimeError: CUDA out of memory"]
    assert rows[3][-1] == "running or killed"  # no status: never silently missing
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# Table 3") and "| tiny | sft | 12.50 | 40.00 | ok |" in md
    assert (tmp_path / "summary.png").stat().st_size > 1000


def test_default_columns_are_the_suites_headline_metrics(tmp_path):
    """Without `summary.columns`: each suite's own summary columns, in the papers' order, for the suites that ran."""
    fake_job(tmp_path, 0, ["eval=all"], {"model": {"name": "tiny"}},
             {"mt_bench": {"score": 6.5}, "ifeval": {"prompt_level_strict_acc": 30.0, "prompt_level_loose_acc": 35.0},
              "followbench": {"hsr_avg": 40.0, "ssr_avg": 50.0}}, {"status": "ok"})
    write_summary(tmp_path)
    rows = list(csv.reader(open(tmp_path / "summary.csv")))
    assert rows[0] == ["job", "IFEval (prompt strict)", "IFEval (prompt loose)", "FollowBench HSR",
                       "FollowBench SSR", "MT-Bench", "status"]
    assert rows[1][1:] == ["30.0", "35.0", "40.0", "50.0", "6.5", "ok"]


def test_multirun_with_a_failed_job_and_wandb_offline(tmp_path, openai_server):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "Say hello in French."}\n{"instruction": "Name a prime number."}\n')
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "stages=[build]", "seeds=jsonl", f"seeds.path={seeds},{tmp_path / 'missing.jsonl'}",
                    *openai_args(openai_server.url), "tracking=wandb", f"tracking.dir={tmp_path}",
                    f"hydra.sweep.dir={sweep}"], tmp_path, env={"OPENAI_API_KEY": "k"})
    assert proc.returncode != 0  # the sweep reports its failed job
    rows = list(csv.reader(open(sweep / "summary.csv")))
    assert len(rows) == 3
    assert rows[1][0] == f"seeds.path={seeds}" and rows[1][-1] == "ok"
    assert rows[2][-1].startswith("failed: seeds file not found")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))  # the finished build stage of job 0

    (sweep / "summary.md").unlink()
    out = subprocess.run([sys.executable, "-c", "from ifforge.sweep.summary import main; main()", str(sweep)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and (sweep / "summary.md").is_file()
    bad = subprocess.run([sys.executable, "-c", "from ifforge.sweep.summary import main; main()", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
