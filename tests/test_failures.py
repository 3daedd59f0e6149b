"""Done means done: a failed request fails the stage (exit 1, no manifest, one line that says how to resume), and
the rerun against a healthy endpoint sends exactly what is missing. All through the real CLI and the real openai
client over HTTP against the local test server."""

import json
import random
import socket
import sqlite3
import threading
import time

import pytest

from tests.helpers.cli import candidate_args, openai_args, outputs, run_cli
from tests.helpers.openai_server import Fault, OpenAIServer, spawn_server

ENV = {"OPENAI_API_KEY": "test-key"}


def seeds_file(tmp_path, n, ids=None):
    p = tmp_path / "seeds.jsonl"
    ids = ids or [f"s{i}" for i in range(n)]
    p.write_text("".join(json.dumps({"id": ids[i], "instruction": f"Write a sentence about topic {i}."}) + "\n"
                         for i in range(n)))
    return p


def build(url, seeds, *extra):
    return ["stages=[build]", "seeds=jsonl", f"seeds.path={seeds}", "seeds.id_field=id", *openai_args(url), *extra]


def healthy(srv):
    srv.reset()
    srv.on("topic", lambda body: "A sentence. " + body["messages"][-1]["content"])


def manifests(tmp_path, stage="build"):
    return list((tmp_path / "artifacts").glob(f"{stage}/*/manifest.json"))


def assert_failed(proc, tmp_path, *needles, code=1):
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ifforge: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not manifests(tmp_path)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] in ("failed", "interrupted")
    return lines[0]


def cached(tmp_path):
    return sqlite3.connect(tmp_path / "artifacts" / "llm_cache.sqlite").execute(
        "SELECT COUNT(*) FROM completions").fetchone()[0]


def rerun_healthy(srv, tmp_path, seeds, n, *extra):
    """The rerun after the fix: exactly the requests that were not answered before, and every row."""
    have = cached(tmp_path)
    healthy(srv)
    run_cli(build(srv.url, seeds, *extra), tmp_path, env=ENV, check=True)
    assert srv.count() == n - have
    m = json.loads((tmp_path / "artifacts" / "build" / outputs(tmp_path)["build"].split("/")[-1] /
                    "manifest.json").read_text())
    assert m["stats"]["splits"] == {"sft": n} and m["stats"]["generator"]["cache_hits"] == have


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_refused_connection_fails_then_resumes(tmp_path, openai_server):
    seeds = seeds_file(tmp_path, 4)
    proc = run_cli(build(f"http://127.0.0.1:{closed_port()}/v1", seeds), tmp_path, env=ENV)
    line = assert_failed(proc, tmp_path, "build: 4 of 4 requests", "connection error", "rerun")
    assert "failures.jsonl" in line
    failures = next((tmp_path / "artifacts" / "build").glob("*/failures.jsonl"))
    assert len(failures.read_text().splitlines()) == 4
    rerun_healthy(openai_server, tmp_path, seeds, 4)


@pytest.mark.parametrize("fault,needle,extra", [
    (Fault.http_error(401, message="bad key"), "HTTP 401", []),
    (Fault.http_error(404, message="no such model"), "HTTP 404", []),
    (Fault.not_json(), "body is not JSON", []),
    (Fault.empty_choices(), "no choices", []),
    (Fault.rate_limit(retry_after=600), "HTTP 429", ["generator.max_retries=1"]),  # a huge Retry-After is capped
    (Fault.hang(seconds=20), "timed out after 1 s", ["generator.timeout=1", "generator.max_retries=0"]),
], ids=["401", "404", "invalid-json", "empty-choices", "429-huge-retry-after", "hang"])
def test_each_fault_fails_the_stage_and_the_rerun_sends_only_what_is_missing(tmp_path, openai_server, fault,
                                                                           needle, extra):
    srv = openai_server
    srv.on("topic 1.", fault=fault)
    srv.on("topic", lambda body: "A sentence. " + body["messages"][-1]["content"])
    seeds = seeds_file(tmp_path, 3)
    proc = run_cli(build(srv.url, seeds, *extra), tmp_path, env=ENV)
    assert_failed(proc, tmp_path, "1 of 3 requests", needle, "the 2 answers received are cached")
    rerun_healthy(srv, tmp_path, seeds, 3)


def test_server_killed_mid_build(tmp_path):
    n = 12
    seeds = seeds_file(tmp_path, n)
    with spawn_server(latency=0.2) as srv:  # its own process, so it can die for real

        def kill():
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if cached(tmp_path) >= 4:
                        break
                except sqlite3.Error:
                    pass
                time.sleep(0.02)
            srv.process.kill()

        threading.Thread(target=kill, daemon=True).start()
        proc = run_cli(build(srv.url, seeds, "generator.max_concurrency=2"), tmp_path, env=ENV)
    assert_failed(proc, tmp_path, f"of {n} requests", "rerun")
    assert 0 < cached(tmp_path) < n
    with OpenAIServer() as fresh:
        rerun_healthy(fresh, tmp_path, seeds, n)


def test_ninety_percent_faults(tmp_path, openai_server):
    srv = openai_server
    rng = random.Random(0)
    lock = threading.Lock()

    def flaky(body):
        with lock:
            fail = rng.random() < 0.9
        return Fault.http_error(500) if fail else "A sentence. " + body["messages"][-1]["content"]

    srv.on("topic", flaky)
    seeds = seeds_file(tmp_path, 40)
    proc = run_cli(build(srv.url, seeds), tmp_path, env=ENV)  # max_retries=2 (openai_args)
    line = assert_failed(proc, tmp_path, "of 40 requests", "HTTP 500")
    have = cached(tmp_path)
    assert 0 < have < 40 and f"the {have} answers received are cached" in line
    rerun_healthy(srv, tmp_path, seeds, 40)


def test_cut_off_replies_are_rejected_unless_kept(tmp_path, openai_server):
    srv = openai_server
    srv.on("topic 0.", "one two three four five six seven eight nine ten")  # cut to max_tokens=4 words
    srv.on("topic", "Short.")
    seeds = seeds_file(tmp_path, 2)
    run_cli(build(srv.url, seeds, "generator.max_tokens=4"), tmp_path, env=ENV, check=True)
    art = outputs(tmp_path)["build"]
    rejects = [json.loads(line) for line in open(f"{art}/rejects.jsonl")]
    assert [(r["seed_id"], r["reason"]) for r in rejects] == [("s0", "cut off at max_tokens (4)")]
    assert rejects[0]["raw"] == "one two three four"
    run_cli(build(srv.url, seeds, "generator.max_tokens=4", "generator.keep_cut_off=true"), tmp_path, env=ENV,
            check=True)
    kept = [json.loads(line) for line in open(f"{outputs(tmp_path)['build']}/sft.jsonl")]
    assert len(kept) == 2


def test_every_reply_unparseable_fails_with_the_top_reasons(tmp_path, openai_server):
    srv = openai_server
    srv.on(None, "I am not sure what you mean.")
    seeds = seeds_file(tmp_path, 3)
    proc = run_cli(build(srv.url, seeds, "augmentation=decompose_modify_reconstruct",
                         "augmentation.stats.enabled=false"), tmp_path, env=ENV)
    line = assert_failed(proc, tmp_path, "every split is empty", "decompose:", "x3", "rejects.jsonl",
                         "generator.cache=refresh")
    assert "3 seeds" in line


def test_cache_refresh_asks_again_and_overwrites(tmp_path, openai_server):
    srv = openai_server
    srv.on("topic", "Garbage.")
    seeds = seeds_file(tmp_path, 2)
    run_cli(build(srv.url, seeds), tmp_path, env=ENV, check=True)
    first = outputs(tmp_path)["build"]
    srv.reset()
    srv.on("topic", "Good answer.")
    proc = run_cli(build(srv.url, seeds, "generator.cache=refresh"), tmp_path, env=ENV, check=True)
    assert srv.count() == 2  # the same (done) artifact is built again, its requests asked again although cached
    assert outputs(tmp_path)["build"] == first and "replaced" in proc.stdout + proc.stderr
    rows = [json.loads(line) for line in open(f"{outputs(tmp_path)['build']}/sft.jsonl")]
    assert {r["messages"][1]["content"] for r in rows} == {"Good answer."}
    run_cli(build(srv.url, seeds, "seeds.limit=1"), tmp_path, env=ENV, check=True)
    assert srv.count() == 2  # the cache now holds the new answers


def test_duplicate_seed_ids_are_rejected_not_merged(tmp_path, openai_server):
    healthy(openai_server)
    seeds = seeds_file(tmp_path, 4, ids=["a", "b", "a", "c"])
    run_cli(build(openai_server.url, seeds), tmp_path, env=ENV, check=True)
    art = outputs(tmp_path)["build"]
    rejects = [json.loads(line) for line in open(f"{art}/rejects.jsonl")]
    assert len(rejects) == 1 and rejects[0]["step"] == "seeds" and "duplicate seed id 'a'" in rejects[0]["reason"]
    rows = [json.loads(line) for line in open(f"{art}/sft.jsonl")]
    assert [r["seed_id"] for r in rows] == ["a", "b", "c"]


def tiny_ifeval(tmp_path):
    p = tmp_path / "ifeval.jsonl"
    p.write_text("".join(json.dumps({"key": k, "prompt": f"Write about tea number {k} in lowercase.",
                                     "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]}) + "\n"
                         for k in range(3)))
    return p


def test_eval_never_scores_a_failed_generation(tmp_path, openai_server):
    data = tiny_ifeval(tmp_path)
    args = ["stages=[eval]", "eval=[ifeval]", f"eval.ifeval.path={data}", "candidate.name=openai",
            "candidate.model=cand", "candidate.max_retries=0"]
    proc = run_cli([*args, f"candidate.base_url=http://127.0.0.1:{closed_port()}/v1"], tmp_path, env=ENV)
    assert proc.returncode == 1 and "eval: 3 of 3 requests to the candidate" in proc.stderr
    assert "0.00" not in proc.stdout and not list((tmp_path / "artifacts").rglob("manifest.json"))
    openai_server.on("tea", "all lowercase here.")
    run_cli([*args, f"candidate.base_url={openai_server.url}"], tmp_path, env=ENV, check=True)
    metrics = json.loads((tmp_path / "artifacts" / "eval").glob("*/metrics.json").__next__().read_text())
    assert metrics["ifeval"]["prompt_level_strict_acc"] == 100.0 and openai_server.count() == 3


def demorecon_eval_file(tmp_path):
    p = tmp_path / "dm_eval.jsonl"
    p.write_text("".join(json.dumps({"id": f"e{i}", "instruction": f"Write {i + 2} words about tea."}) + "\n"
                         for i in range(3)))
    return p


def judged_eval(tmp_path, srv):
    return ["stages=[eval]", "eval=[demorecon_eval]", f"eval.demorecon_eval.path={demorecon_eval_file(tmp_path)}",
            *candidate_args(srv.url), *openai_args(srv.url, "judge-model", "judge")]


def test_a_failed_judge_call_fails_the_eval(tmp_path, openai_server):
    srv = openai_server
    srv.on(None, "Tea is nice.", model="cand")
    srv.on(None, fault=Fault.http_error(500), model="judge-model")
    proc = run_cli(judged_eval(tmp_path, srv), tmp_path, env=ENV)
    assert proc.returncode == 1 and "eval: 3 of 3 requests to the judge" in proc.stderr
    assert not list((tmp_path / "artifacts").rglob("manifest.json"))


def test_a_judge_that_scores_nothing_fails_the_eval(tmp_path, openai_server):
    srv = openai_server
    srv.on(None, "Tea is nice.", model="cand")
    srv.on(None, "Perhaps; hard to say.", model="judge-model")
    proc = run_cli(judged_eval(tmp_path, srv), tmp_path, env=ENV)
    assert proc.returncode == 1 and "eval.demorecon_eval: the judge scored nothing" in proc.stderr
    assert "results.jsonl" in proc.stderr and not list((tmp_path / "artifacts").rglob("manifest.json"))
    srv.reset()
    srv.on(None, "Tea is nice.", model="cand")
    srv.on(None, "Yes.", model="judge-model")
    assert "judge.cache=refresh" in proc.stderr  # the unreadable verdicts are cached: ask the judge again
    run_cli([*judged_eval(tmp_path, srv), "judge.cache=refresh"], tmp_path, env=ENV, check=True)
    assert srv.count() == 3  # the judge only: the answers were cached
