"""The build stage end to end through the real CLI and the local OpenAI-compatible test server."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import datasets

from tests.helpers.cli import openai_args, outputs, run_cli
from tests.helpers.data import REPO
from tests.helpers.openai_server import Fault

ENV = {"OPENAI_API_KEY": "test-key"}


def seeds_file(tmp_path, n):
    p = tmp_path / "seeds.jsonl"
    p.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Write a sentence about topic {i}."}) + "\n"
                         for i in range(n)))
    return p


def build_args(srv, seeds, *extra):
    return ["stages=[build]", "seeds=jsonl", f"seeds.path={seeds}", "seeds.id_field=id",
            *openai_args(srv.url), *extra]


def test_plain_build_then_rerun_sends_nothing(tmp_path, openai_server):
    srv = openai_server
    srv.on("topic 3", fault=Fault.not_json())  # never succeeds: a failure, which fails the stage by default
    srv.on("topic", lambda body: "A sentence. " + body["messages"][-1]["content"])
    seeds = seeds_file(tmp_path, 6)
    failed = run_cli(build_args(srv, seeds), tmp_path, env=ENV)
    assert failed.returncode == 1 and not list((tmp_path / "artifacts").glob("build/*/manifest.json"))
    assert "1 of 6 requests" in failed.stderr and "body is not JSON" in failed.stderr

    # Accepting some loss: the failed request is sent again (the 5 answers come from the cache), its row is
    # missing, and the manifest and the card say so.
    tolerant = "generator.max_failed_fraction=0.25"
    sent = srv.count()
    proc = run_cli(build_args(srv, seeds, tolerant), tmp_path, env=ENV, check=True)
    assert srv.count() - sent == 3  # s3 again: 1 + max_retries=2 attempts; nothing else
    out = outputs(tmp_path)
    art = out["build"]
    assert f"build: {art}" in proc.stdout
    dd = datasets.load_from_disk(os.path.join(art, "data"))
    assert dd["sft"].num_rows == 5
    row = dd["sft"][0]
    assert row["messages"][0] == {"role": "user", "content": "Write a sentence about topic 0."}
    assert row["messages"][1]["role"] == "assistant" and row["seed_id"] == "s0" and row["group_id"] == "s0"
    assert len((tmp_path / "run" / "outputs.json").read_text()) > 0
    jsonl = [json.loads(l) for l in open(os.path.join(art, "sft.jsonl"))]
    assert len(jsonl) == 5
    assert not open(os.path.join(art, "rejects.jsonl")).read()  # a failure is not a reject
    failures = [json.loads(l) for l in open(os.path.join(art, "failures.jsonl"))]
    assert len(failures) == 1 and "topic 3" in failures[0]["prompt"] and failures[0]["step"] == "respond_direct"
    assert "body is not JSON" in failures[0]["error"] and failures[0]["raw"]
    m = json.load(open(os.path.join(art, "manifest.json")))
    g = m["stats"]["generator"]
    assert g["calls"] == 1 and g["failures"] == 1 and g["retries"] == 2 and g["cache_hits"] == 5
    assert "cost_usd" in g
    assert m["stats"]["splits"] == {"sft": 5}
    assert m["stats"]["lost_to_failures"] == {"respond_direct": 1}
    assert m["stats"]["steps"]["respond_direct"] == {"in": 6, "out": 5, "rejected": 0, "failed": 1}
    assert "Incomplete" in open(os.path.join(art, "README.md")).read()
    assert m["config"]["generator"]["model"] == "test-model"
    sent = srv.count()

    run_cli(build_args(srv, seeds, tolerant), tmp_path, env=ENV, check=True)  # same config: artifact reused
    assert srv.count() == sent
    # Only a runtime knob changed: the same artifact, still nothing sent.
    run_cli(build_args(srv, seeds, tolerant, "generator.max_concurrency=3"), tmp_path, env=ENV, check=True)
    assert srv.count() == sent and outputs(tmp_path)["build"] == art
    # A new artifact (fewer seeds), but the cache is keyed on requests: s0-s2 come from it; s3 failed before, was
    # never cached, and is tried again (1 + max_retries=2 HTTP attempts).
    s3_before = srv.count("topic 3")
    run_cli(build_args(srv, seeds, tolerant, "seeds.limit=4"), tmp_path, env=ENV, check=True)
    assert outputs(tmp_path)["build"] != art
    assert srv.count() - sent == 3 == srv.count("topic 3") - s3_before


def test_seed_filter(tmp_path, openai_server):
    srv = openai_server
    srv.on(lambda b: "Judgement (Yes or No)" in b["messages"][-1]["content"] and "topic 1." in b["messages"][-1]["content"],
           "**Yes.** It refers to a passage that is not given.")
    srv.on(lambda b: "Judgement (Yes or No)" in b["messages"][-1]["content"] and "topic 2." in b["messages"][-1]["content"],
           "I cannot decide.")
    srv.on("Judgement (Yes or No)", "No")
    seeds = seeds_file(tmp_path, 4)
    run_cli(build_args(srv, seeds, "seeds.filter=true"), tmp_path, env=ENV, check=True)
    art = outputs(tmp_path)["build"]
    rejects = {r["seed_id"]: r for r in map(json.loads, open(os.path.join(art, "rejects.jsonl")))}
    assert set(rejects) == {"s1", "s2"}
    assert "E.1 answered Yes" in rejects["s1"]["reason"] and rejects["s1"]["raw"].startswith("**Yes.**")
    assert "unparseable" in rejects["s2"]["reason"]
    m = json.load(open(os.path.join(art, "manifest.json")))
    assert m["stats"]["splits"] == {"sft": 2}
    assert m["stats"]["steps"]["filter_seeds"] == {"in": 4, "out": 2, "rejected": 2}
    filter_prompt = next(b for b in srv.requests if "topic 0." in b["messages"][-1]["content"])["messages"][-1]["content"]
    assert filter_prompt.startswith("Please check if the prompt is missing important details")


def test_sigkill_mid_build_then_resume_from_cache(tmp_path, openai_server):
    srv = openai_server
    srv.latency = 0.25
    n = 16
    seeds = seeds_file(tmp_path, n)
    args = build_args(srv, seeds, "generator.max_concurrency=2", f"paths.artifacts={tmp_path / 'artifacts'}",
                      f"hydra.run.dir={tmp_path / 'run'}")
    env = dict(os.environ, **ENV, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "ifforge", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while srv.count() < 8 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cache = tmp_path / "artifacts" / "llm_cache.sqlite"
    cached = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    assert 0 < cached < n
    assert not list((tmp_path / "artifacts").glob("build/*/manifest.json"))  # nothing marked done

    before = srv.count()
    srv.latency = 0.0
    run_cli(args, tmp_path, env=ENV, check=True)
    resent = srv.count() - before
    assert resent == n - cached  # every completed request came from the cache
    m = json.load(open(os.path.join(outputs(tmp_path)["build"], "manifest.json")))
    assert m["stats"]["splits"] == {"sft": n}
    assert m["stats"]["generator"]["cache_hits"] == cached


def test_editing_the_seeds_file_in_place_rebuilds(tmp_path, openai_server):
    srv = openai_server
    seeds = seeds_file(tmp_path, 3)
    run_cli(build_args(srv, seeds), tmp_path, env=ENV, check=True)
    first, sent = outputs(tmp_path)["build"], srv.count()
    seeds.write_text(seeds.read_text().replace("topic 2.", "topic two, edited."))  # same path, new content
    run_cli(build_args(srv, seeds), tmp_path, env=ENV, check=True)
    second = outputs(tmp_path)["build"]
    assert second != first  # never a stale dataset reused
    assert srv.count() - sent == 1  # only the edited seed is asked for; the others come from the cache
    rows = [json.loads(l) for l in open(os.path.join(second, "sft.jsonl"))]
    assert any("topic two, edited." in r["messages"][0]["content"] for r in rows)
