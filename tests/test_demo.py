"""`make demo` (`ifforge -m experiment=demo`): both papers' rows, build -> train -> eval -> summary.

The demo's own model is the embedded SmolLM2 (its structured decoding is tested in tests/build/test_structured.py
and its timing is in benchmarks/README.md). Here the same experiment runs with its LLM calls sent over real HTTP to
the local test server, answering under the demo's structured outputs, and the tiny model trained: the wiring, the
skipped benchmarks and the printed report, in about a minute.
"""

import json
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir

from ifforge import __main__ as entry
from tests.helpers.cli import openai_args, outputs, run_cli
from tests.helpers.data import SHARED_DATA, needs_shared_data
from tests.helpers.schema_reply import SchemaModel

ENV = {"OPENAI_API_KEY": "test-key"}


def demo_config(*overrides):
    with initialize_config_dir(entry.CONF_DIR, version_base="1.3"):
        return compose("config", overrides=["experiment=demo", *overrides], return_hydra_config=True)


def test_demo_sweeps_one_row_per_paper_with_structured_outputs():
    cfg = demo_config()
    assert cfg.hydra.sweeper.params.variant == "demo/demorecon,demo/conifer"
    rows = {v: demo_config(f"variant={v}") for v in ("demo/demorecon", "demo/conifer")}
    assert rows["demo/demorecon"].augmentation.name == "decompose_modify_reconstruct"
    assert rows["demo/conifer"].augmentation.name == "reframe_constrain_recombine"
    assert rows["demo/conifer"].response.name == "process_feedback"
    for row in rows.values():
        assert row.generator.structured == "json" and row.judge.structured == "json"
        assert row.generator.name == "hf_local" and row.model.name == "smollm2-135m-instruct"
        assert list(row.stages) == ["build", "train", "eval"]
        assert all(row.eval[s].if_missing == "skip" for s in row.eval)
        assert row.eval.followbench.protocol == "ifforge"  # the official judge prompt is free text
    assert set(rows["demo/demorecon"].eval) == {"ifeval", "followbench", "demorecon_eval"}


def run_demo(tmp_path, srv, shared):
    srv.on(None, SchemaModel())
    sweep = tmp_path / "sweep"
    return sweep, run_cli([
        "-m", "experiment=demo", f"hydra.sweep.dir={sweep}", "model=tiny",
        *openai_args(srv.url), *openai_args(srv.url, role="judge"),
    ], tmp_path, env={**ENV, "IFFORGE_SHARED_DATA": str(shared)}, timeout=900)


def test_demo_without_shared_data_skips_what_it_cannot_get(tmp_path, openai_server):
    sweep, proc = run_demo(tmp_path, openai_server, tmp_path / "no-shared-data")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # Each benchmark found nowhere is one line, in each job; never a failure.
    for suite, where in (("ifeval", "ifeval/input_data.jsonl"), ("followbench", "followbench")):
        lines = [ln for ln in out.splitlines() if f"eval.{suite} skipped:" in ln]
        assert len(lines) == 2, out[-4000:]
        assert where in lines[0] and "cannot be reached" in lines[0] and f"eval.{suite}.path" in lines[0]
    assert "[eval] skipped: every benchmark was skipped" in out  # the Conifer row: nothing left to score
    # Every structured step asked for its schema.
    asked = {(b.get("response_format") or {}).get("json_schema", {}).get("name") for b in openai_server.requests}
    assert {"decompose", "modify_reconstruct", "reframe", "recombine", "filter_conflicts", "verdict"} <= asked
    # The report: each stage's rows per step, the loss, the score.
    assert "steps: decompose 8->8, modify_reconstruct 8->" in out and "steps: reframe 2->2, filter_context" in out
    assert out.count("train  sft 4 steps on") == 2 and "loss" in out
    assert "eval   DeMoRecon-Eval 100.0" in out  # the scripted judge says Yes to everything
    assert "requests (0 from the cache), price unknown" in out  # a local endpoint: no price is made up
    summary = (sweep / "summary.md").read_text()
    assert summary.startswith("# ifforge demo (tiny, a few SFT steps)")
    assert "| Method | IFEval (prompt strict) | FollowBench HSR | DeMoRecon-Eval |" in summary
    assert "| DeMoRecon (Aug., SFT) | - | - | 100.00 |" in summary and "| Conifer (SFT) | - | - | - |" in summary
    jobs = sorted(p.parent for p in sweep.glob("*/status.json"))
    assert [json.loads((j / "status.json").read_text())["status"] for j in jobs] == ["ok", "ok"]
    assert yaml.safe_load((jobs[0] / ".hydra" / "overrides.yaml").read_text())


@needs_shared_data
def test_demo_with_shared_data_scores_ifeval_and_followbench(tmp_path, openai_server):
    """One row (no sweep): the local copies are found, nothing is skipped."""
    openai_server.on(None, SchemaModel())
    proc = run_cli(["experiment=demo", "variant=demo/demorecon", "model=tiny", *openai_args(openai_server.url),
                    *openai_args(openai_server.url, role="judge")], tmp_path,
                   env={**ENV, "IFFORGE_SHARED_DATA": str(SHARED_DATA)}, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "skipped" not in out
    metrics = json.loads((Path(outputs(tmp_path)["eval"]) / "metrics.json").read_text())
    assert set(metrics) == {"ifeval", "followbench", "demorecon_eval"}
    assert metrics["ifeval"]["n_prompts"] == 4
    assert metrics["followbench"]["n_scored"] == 5  # one example, five levels
    report = next(line for line in out.splitlines() if line.startswith("eval   "))
    assert "IFEval (prompt strict)" in report and "FollowBench HSR" in report and "DeMoRecon-Eval 100.0" in report


def test_if_missing_takes_fail_or_skip_only(tmp_path):
    proc = run_cli(["stages=[eval]", "eval=[ifeval]", "eval.ifeval.if_missing=maybe"], tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ifforge: error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "eval.ifeval.if_missing must be fail or skip (got 'maybe')" in lines[0]
