"""Sweep summaries laid out like the papers' tables (pivot, sections, labels, derived means, cost; failed jobs
included), W&B offline runs, `ifforge-summary`."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ifforge.errors import UserError
from ifforge.sweep.summary import parse_spec, write_summary
from tests.helpers.cli import openai_args, run_cli


def fake_job(sweep, num, overrides, config, metrics=None, status=None, choices=None, costs=None):
    """A job directory as Hydra and the entrypoint leave it; `costs`: {stage: (artifact name, {role: USD})}, the
    stage manifests outputs.json points at (an artifact name used twice is one artifact, shared)."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if choices is not None:
        (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    outputs = {}
    for stage, (name, roles) in (costs or {}).items():
        art = sweep / "artifacts" / name
        art.mkdir(parents=True, exist_ok=True)
        stats = {role: {"model": "m", "backend": "openai", "calls": 3, "cost_usd": usd} for role, usd in roles.items()}
        (art / "manifest.json").write_text(json.dumps({"stage": stage, "stats": {"seeds": 4, **stats}}))
        outputs[stage] = str(art)
    if metrics is not None:
        ev = Path(outputs.setdefault("eval", str(sweep / f"eval{num}")))
        ev.mkdir(exist_ok=True)
        (ev / "metrics.json").write_text(json.dumps(metrics))
    if outputs:
        (job / "outputs.json").write_text(json.dumps(outputs))
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
    assert rows[0] == ["model.name", "objective.name", "IFEval", "FB HSR", "cost_usd", "dir", "error", "status"]
    assert rows[1] == ["tiny", "sft", "12.5", "40.0", "0.0", "0", "", "ok"]
    assert rows[2] == ["tiny", "dpo", "", "", "", "1", "RuntimeError: CUDA out of memory", "failed"]
    assert rows[3][-1] == "running or killed"  # no status: never silently missing
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# Table 3") and "| tiny | sft | 12.50 | 40.00 |" in md
    assert "| tiny | dpo | failed | failed |" in md and "| tiny | dpo_sft | running | running |" in md
    assert "- job 1 (tiny / dpo): failed: RuntimeError: CUDA out of memory" in md
    assert "- job 2 (tiny / dpo_sft): running or killed" in md
    assert "Cost" not in md  # nothing cost anything
    assert (tmp_path / "summary.png").stat().st_size > 1000


def test_default_columns_are_the_suites_headline_metrics(tmp_path):
    """Without `summary.columns`: each suite's own summary columns, in the papers' order, for the suites that ran."""
    fake_job(tmp_path, 0, ["eval=all"], {"model": {"name": "tiny"}},
             {"mt_bench": {"score": 6.5}, "ifeval": {"prompt_level_strict_acc": 30.0, "prompt_level_loose_acc": 35.0},
              "followbench": {"hsr_avg": 40.0, "ssr_avg": 50.0}}, {"status": "ok"})
    write_summary(tmp_path)
    rows = list(csv.reader(open(tmp_path / "summary.csv")))
    assert rows[0] == ["job", "IFEval (prompt strict)", "IFEval (prompt loose)", "FollowBench HSR",
                       "FollowBench SSR", "MT-Bench", "cost_usd", "dir", "error", "status"]
    assert rows[1][1:6] == ["30.0", "35.0", "40.0", "50.0", "6.5"] and rows[1][-1] == "ok"


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
    assert rows[2][-1] == "failed" and rows[2][-2].startswith("seeds file not found")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))  # the finished build stage of job 0

    (sweep / "summary.md").unlink()
    out = subprocess.run([sys.executable, "-c", "from ifforge.sweep.summary import main; main()", str(sweep)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and (sweep / "summary.md").is_file()
    bad = subprocess.run([sys.executable, "-c", "from ifforge.sweep.summary import main; main()", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


T3_LABELS = {"choices.variant": {"demorecon/sft_aug": "SFT Aug.", "demorecon/dpo_sft_aug": "DPO+SFT Aug."},
             "augmentation.train_seeds": {"null": "all"}, "choices.model": {"llama2-7b-chat": "LLaMA-2-7B-Chat"}}


def test_pivot_labels_and_cost_in_a_table_of_its_own(tmp_path):
    """DeMoRecon Table 3's layout: methods as rows, the training seeds as columns, labelled; a failed job and a
    combination that never ran still show; costs get their own table so the paper's header stays as it is."""
    spec = {"title": "Table 3 ({choices.model})", "rows": [{"Method": "choices.variant"}],
            "pivot": "augmentation.train_seeds", "columns": [{"DeMoRecon-Eval": "demorecon_eval.accuracy"}],
            "labels": T3_LABELS}
    grid = [(250, "sft_aug", 55.29), (250, "dpo_sft_aug", 53.53), (None, "sft_aug", 59.12),
            (None, "dpo_sft_aug", None), (250, "dpo_aug", 52.79)]
    for num, (seeds, variant, acc) in enumerate(grid):
        config = {"summary": spec, "augmentation": {"train_seeds": seeds}}
        shared = "build-250" if seeds else "build-all"  # the variants of one seed count share a build
        fake_job(tmp_path, num, [f"augmentation.train_seeds={seeds}", f"variant=demorecon/{variant}"], config,
                 None if acc is None else {"demorecon_eval": {"accuracy": acc}},
                 {"status": "ok"} if acc is not None else {"status": "failed", "error": "StageFailed: judge down"},
                 choices={"model": "llama2-7b-chat", "variant": f"demorecon/{variant}"},
                 costs={"build": (shared, {"generator": 1.5}), "train": (f"train{num}", {})})
    write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    table, costs = md.split("Cost (USD), per job:")
    assert table.splitlines()[:8] == [
        "# Table 3 (LLaMA-2-7B-Chat)", "",
        "| Method | 250 | all |", "|---|---|---|",
        "| SFT Aug. | 55.29 | 59.12 |",
        "| DPO+SFT Aug. | 53.53 | failed |",
        "| demorecon/dpo_aug | 52.79 |  |",  # no label given: the value itself; not run at "all": blank
        ""]
    assert "| Method | 250 | all |\n|---|---|---|\n| SFT Aug. | 1.5000 | 1.5000 |" in costs
    # two builds of $1.5 each, shared by the jobs: the sweep paid $3, not 5 x $1.5
    assert "Sweep cost: $3.0000" in costs
    assert "- job 3 (DPO+SFT Aug. / all): failed: StageFailed: judge down" in md
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert list(rows[0]) == ["Method", "augmentation.train_seeds", "DeMoRecon-Eval", "cost_usd", "dir", "error",
                             "status"]
    assert [(r["Method"], r["augmentation.train_seeds"], r["DeMoRecon-Eval"], r["cost_usd"]) for r in rows[:3]] == [
        ("SFT Aug.", "250", "55.29", "1.5"), ("DPO+SFT Aug.", "250", "53.53", "1.5"), ("SFT Aug.", "all", "59.12", "1.5")]
    assert rows[3]["status"] == "failed" and rows[3]["DeMoRecon-Eval"] == ""


def test_a_section_per_metric_and_cost_as_a_section(tmp_path):
    """DeMoRecon Table 2's layout: a section per benchmark, models as rows, methods as columns."""
    spec = {"title": "DeMoRecon Table 2", "rows": [{"Model": "choices.model"}], "pivot": "choices.variant",
            "groups": "metrics",
            "columns": {"DeMoRecon-Eval": "demorecon_eval.accuracy", "IFEval (loose prompt)": "ifeval.loose"},
            "labels": {"choices.model": {"llama2-7b-chat": "Llama2-7B-Chat"},
                       "choices.variant": {"demorecon/original": "Ori.", "demorecon/sft_aug": "SFT Aug."}}}
    num = 0
    for model in ("llama2-7b-chat", "qwen1.5-7b-chat"):
        for variant in ("original", "sft_aug"):
            fake_job(tmp_path, num, [f"model={model}", f"variant=demorecon/{variant}"], {"summary": spec},
                     {"demorecon_eval": {"accuracy": 50.0 + num}, "ifeval": {"loose": 40.0 + num}}, {"status": "ok"},
                     choices={"model": model, "variant": f"demorecon/{variant}"},
                     costs={"eval": (f"eval-art{num}", {"candidate": 0.0, "judge": 0.25})})
            num += 1
    write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text().splitlines()
    assert md[2:14] == [
        "| Model | Ori. | SFT Aug. |", "|---|---|---|",
        "| **DeMoRecon-Eval** |  |  |",
        "| Llama2-7B-Chat | 50.00 | 51.00 |",
        "| qwen1.5-7b-chat | 52.00 | 53.00 |",
        "| **IFEval (loose prompt)** |  |  |",
        "| Llama2-7B-Chat | 40.00 | 41.00 |",
        "| qwen1.5-7b-chat | 42.00 | 43.00 |",
        "| **Cost (USD)** |  |  |",
        "| Llama2-7B-Chat | 0.2500 | 0.2500 |",
        "| qwen1.5-7b-chat | 0.2500 | 0.2500 |",
        ""]
    assert md[14].startswith("Sweep cost: $1.0000")
    assert (tmp_path / "summary.png").stat().st_size > 1000


def test_row_sections_derived_means_and_dropped_columns(tmp_path):
    """Conifer Table 4's derived columns: a mean is shown only when every input is there; `null` drops a column
    an inherited experiment declared; `groups: <key>` gives a section per value."""
    per_level = {str(lvl): {"hsr": 10.0 * lvl} for lvl in range(1, 6)}
    spec = {"rows": ["choices.variant"], "groups": "choices.model",
            "columns": {"IFEval": "ifeval.loose", "InFoBench": None,
                        "L1-L3": {"mean": [f"followbench.per_level.{n}.hsr" for n in (1, 2, 3)]},
                        "L4-L5": {"mean": ["followbench.per_level.4.hsr", "followbench.per_level.5.hsr"]},
                        "Both": {"mean": ["L1-L3", "L4-L5"]}}}
    jobs = [("mistral-7b", "conifer/conifer", per_level),
            ("mistral-7b", "conifer/sharegpt", {k: v for k, v in per_level.items() if k != "5"}),
            ("llama2-13b", "conifer/conifer", per_level)]
    for num, (model, variant, levels) in enumerate(jobs):
        fake_job(tmp_path, num, [f"model={model}", f"variant={variant}"], {"summary": spec, "experiment": "c/t4"},
                 {"ifeval": {"loose": 48.0}, "followbench": {"per_level": levels}}, {"status": "ok"},
                 choices={"model": model, "variant": variant})
    write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text().splitlines()
    assert md[0] == "# c/t4"  # no title: the experiment's name
    assert md[2:9] == [
        "| choices.variant | IFEval | L1-L3 | L4-L5 | Both |", "|---|---|---|---|---|",
        "| **mistral-7b** |  |  |  |  |",
        "| conifer/conifer | 48.00 | 20.00 | 45.00 | 32.50 |",
        "| conifer/sharegpt | 48.00 | 20.00 | - | - |",  # level 5 missing: no mean of part of it
        "| **llama2-13b** |  |  |  |  |",
        "| conifer/conifer | 48.00 | 20.00 | 45.00 | 32.50 |"]
    header = next(csv.reader(open(tmp_path / "summary.csv")))
    assert header[:6] == ["choices.variant", "choices.model", "IFEval", "L1-L3", "L4-L5", "Both"]


def test_pivot_without_rows_labels_by_the_other_overrides_and_notes_unknown_keys(tmp_path):
    spec = {"pivot": "choices.variant", "title": "{choices.model} / {model.size}",
            "columns": {"IFEval": "ifeval.loose"}}
    for num, (lr, variant) in enumerate([("1e-5", "a"), ("1e-5", "b"), ("1e-4", "a")]):
        fake_job(tmp_path, num, ["model=tiny", f"variant={variant}", f"objective.lr={lr}"], {"summary": spec},
                 {"ifeval": {"loose": float(num)}}, {"status": "ok"}, choices={"model": "tiny", "variant": variant})
    write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# tiny / ?\n")
    assert "| job | a | b |\n|---|---|---|\n| objective.lr=1e-5 | 0.00 | 1.00 |\n| objective.lr=1e-4 | 2.00 |  |" in md
    assert "Note: no job's config has `model.size`" in md


@pytest.mark.parametrize("spec, message", [
    ({"columns": {"X": {"median": ["a.b"]}}}, "summary.columns.X must be a metric path"),
    ({"columns": [{"X": "a.b", "Y": "c.d"}]}, "summary.columns: each entry must be one `label: value` mapping"),
    ({"rows": [{"Model": ""}]}, "summary.rows.Model must be a config key"),
    ({"labels": {"choices.model": "Llama"}}, "summary.labels must map config keys"),
    ({"pivot": ["a", "b"]}, "summary.pivot must be a string"),
])
def test_a_malformed_spec_is_one_line(spec, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse_spec(spec)


def test_a_malformed_spec_stops_the_sweep_before_any_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "stages=[build]", "seeds.limit=1,2", "summary.columns={X: {median: [a.b]}}",
                    f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 2
    assert "ifforge: error: summary.columns.X must be a metric path" in proc.stderr
    assert not list(sweep.glob("*/.hydra"))
