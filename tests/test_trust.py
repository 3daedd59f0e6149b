"""What is reused is verified, secrets never land on disk, and what a user can get wrong is one line, not a
traceback. Through the real CLI (and the local OpenAI-compatible test server where requests are needed)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import openai_args, outputs, run_cli
from tests.helpers.data import REPO
from tests.test_failures import ENV, build, closed_port, healthy, seeds_file


def one_line_error(proc, code, *needles):
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ifforge: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def grep_tree(root: Path, needle: str):
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and needle.encode() in p.read_bytes():
            hits.append(p)
    return hits


# -- reuse verifies what it reuses ----------------------------------------------------------------------------


def test_damaged_artifact_is_rebuilt_from_the_cache(tmp_path, openai_server):
    healthy(openai_server)
    seeds = seeds_file(tmp_path, 3)
    run_cli(build(openai_server.url, seeds), tmp_path, env=ENV, check=True)
    art = Path(outputs(tmp_path)["build"])
    files = json.loads((art / "manifest.json").read_text())["files"]
    assert {"sft.jsonl", "rejects.jsonl", "README.md"} <= set(files)
    assert all(len(f["sha256"]) == 64 and f["size"] >= 0 for f in files.values())
    arrow = next((art / "data").rglob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:100])  # a half-written file
    sent = openai_server.count()
    proc = run_cli(build(openai_server.url, seeds), tmp_path, env=ENV, check=True)
    assert "damaged: rebuilding" in proc.stdout + proc.stderr and openai_server.count() == sent  # rebuilt for free
    assert (art / "manifest.json").is_file() and len(list(art.parent.glob(f"{art.name}.damaged-*"))) == 1
    assert subprocess.run([sys.executable, "-m", "ifforge.verify", str(art)], capture_output=True).returncode == 0


def test_swapped_file_is_caught_by_hash_and_an_input_is_checked_before_training(tmp_path, openai_server):
    healthy(openai_server)
    seeds = seeds_file(tmp_path, 3)
    run_cli(build(openai_server.url, seeds), tmp_path, env=ENV, check=True)
    art = Path(outputs(tmp_path)["build"])
    sft = art / "sft.jsonl"
    text = sft.read_text()
    sft.write_text(text.replace("topic 1", "topic 7"))  # same size, other content
    verify = subprocess.run([sys.executable, "-m", "ifforge.verify", str(tmp_path / "artifacts")],
                            capture_output=True, text=True)
    assert verify.returncode == 1 and "DAMAGED" in verify.stdout and "sft.jsonl changed" in verify.stdout
    # A size check passes it; the train stage's input check with verify=hash does not (nothing is loaded).
    proc = run_cli(build(openai_server.url, seeds, "stages=[train]", "model=tiny", "verify=hash"), tmp_path,
                   env=ENV)
    one_line_error(proc, 1, "train: the 'build' artifact", "is damaged", "sft.jsonl changed",
                   "add 'build' to stages")
    sft.write_text(text[: len(text) // 2])  # and a truncated one is caught by its size alone
    proc = run_cli(build(openai_server.url, seeds, "stages=[train]", "model=tiny"), tmp_path, env=ENV)
    one_line_error(proc, 1, "is damaged", "sft.jsonl is")


# -- secrets never land on disk -------------------------------------------------------------------------------


@pytest.mark.parametrize("override", ["+generator.api_key=sk-SECRET-123", "generator.extra.api_key=sk-SECRET-123",
                                      "+objective.trainer.hub_token=sk-SECRET-123"])
def test_a_key_in_the_config_is_refused_and_written_nowhere(tmp_path, override):
    proc = run_cli(["stages=[build]", override], tmp_path, env=ENV)
    one_line_error(proc, 2, "credential", "api_key_env")
    assert not grep_tree(tmp_path, "sk-SECRET-123")
    shown = run_cli(["--cfg", "job", override], tmp_path, env=ENV)
    assert shown.returncode == 2 and "sk-SECRET-123" not in shown.stdout + shown.stderr


def test_a_key_in_a_config_file_is_refused_before_hydra_writes_it(tmp_path):
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "leak.yaml").write_text("# @package _global_\ngenerator:\n  extra:\n    api_key: sk-SECRET-456\n")
    proc = run_cli(["--config-dir", str(tmp_path / "conf"), "experiment=leak", "stages=[build]"], tmp_path, env=ENV)
    one_line_error(proc, 2, "generator.extra.api_key", "credential")
    hits = grep_tree(tmp_path, "sk-SECRET-456")
    assert hits == [conf / "leak.yaml"]  # only the user's own file
    shown = run_cli(["--config-dir", str(tmp_path / "conf"), "experiment=leak", "--cfg", "job"], tmp_path, env=ENV)
    assert "sk-SECRET-456" not in shown.stdout


def test_url_credentials_are_redacted_everywhere(tmp_path, openai_server):
    healthy(openai_server)
    seeds = seeds_file(tmp_path, 2)
    url = openai_server.url.replace("http://", "http://alice:pw-SECRET-789@")
    wandb_dir = tmp_path / "wandb"
    wandb_dir.mkdir()
    run_cli(build(url, seeds, "tracking=wandb", f"tracking.dir={wandb_dir}", "judge=openai",
                  f"judge.base_url={url}", "judge.model=j"), tmp_path, env=ENV, check=True)
    assert list(wandb_dir.rglob("*.wandb"))
    dead = f"http://alice:pw-SECRET-789@127.0.0.1:{closed_port()}/v1"
    (tmp_path / "more").mkdir()
    more = seeds_file(tmp_path / "more", 3)  # topic 2 is not cached: a request must go to the dead endpoint
    failed = run_cli(build(dead, more, "hydra.run.dir=" + str(tmp_path / "run2")), tmp_path, env=ENV)
    assert failed.returncode == 1 and "alice:***" not in failed.stderr and "***@127.0.0.1" in failed.stderr
    shown = run_cli(["--cfg", "job", *build(url, seeds)], tmp_path, env=ENV)
    assert shown.returncode == 0 and "base_url" in shown.stdout
    for text in (failed.stdout, failed.stderr, shown.stdout):
        assert "pw-SECRET-789" not in text
    assert not grep_tree(tmp_path, "pw-SECRET-789")  # run dirs (.hydra, logs, status), artifacts, W&B


def test_url_credentials_are_redacted_in_a_sweep(tmp_path, openai_server):
    healthy(openai_server)
    seeds = seeds_file(tmp_path, 2)
    url = openai_server.url.replace("http://", "http://alice:pw-SECRET-790@")
    proc = run_cli(["-m", *build(url, seeds, "generator.temperature=0.0,0.5", f"hydra.sweep.dir={tmp_path / 'sweep'}")],
                   tmp_path, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "sweep" / "multirun.yaml").is_file() and (tmp_path / "sweep" / "summary.md").is_file()
    assert "pw-SECRET-790" not in proc.stdout + proc.stderr
    assert not grep_tree(tmp_path, "pw-SECRET-790")  # multirun.yaml, each job's .hydra, the summary, artifacts


# -- one line for what a user can get wrong -------------------------------------------------------------------


@pytest.mark.parametrize("extra,needles", [
    (["stages=[]"], ["stages must be a non-empty list"]),
    (["generator.max_concurrency=0"], ["generator.max_concurrency must be >= 1"]),
    (["generator.max_concurrency=-3"], ["generator.max_concurrency must be >= 1"]),
    (["generator.timeout=-1"], ["generator.timeout must be > 0"]),
    (["generator.max_retries=-1"], ["generator.max_retries must be >= 0"]),
    (["seeds.limit=-2"], ["seeds.limit must be >= 1"]),
    (["generator.model=''"], ["generator.model must be a non-empty model name"]),
    (["generator.max_failed_fraction=2"], ["generator.max_failed_fraction must be between 0 and 1"]),
    (["generator.cache=sometimes"], ["generator.cache must be true, false or refresh"]),
    (["judge.structured=yaml"], ["judge.structured must be off or json"]),
], ids=lambda v: v[0] if isinstance(v, list) and v and "=" in v[0] else None)
def test_meaningless_values_are_refused(tmp_path, extra, needles):
    seeds = seeds_file(tmp_path, 1)
    proc = run_cli(build(f"http://127.0.0.1:{closed_port()}/v1", seeds, *extra), tmp_path, env=ENV)
    one_line_error(proc, 2, *needles)


def test_bad_input_files_and_paths(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"instruction": "Caf\xe9 au lait"}\n')
    one_line_error(run_cli(build(url, latin, "seeds.id_field=null"), tmp_path, env=ENV), 2, "not UTF-8", ":1:")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    seeds = seeds_file(tmp_path, 1)
    one_line_error(run_cli(build(url, seeds, f"paths.artifacts={blocker / 'artifacts'}"), tmp_path, env=ENV), 2,
                   "is a file, not a directory")


def test_sharegpt_record_with_string_conversations_is_a_reject(tmp_path, openai_server):
    healthy(openai_server)
    p = tmp_path / "sg.jsonl"
    p.write_text(json.dumps({"id": "bad", "conversations": "Write about topic 1."}) + "\n"
                 + json.dumps({"id": "good", "conversations": [{"from": "human", "value": "Write about topic 2."}]})
                 + "\n")
    run_cli(["stages=[build]", "seeds=sharegpt", f"seeds.path={p}", *openai_args(openai_server.url)], tmp_path,
            env=ENV, check=True)
    art = outputs(tmp_path)["build"]
    rejects = [json.loads(line) for line in open(f"{art}/rejects.jsonl")]
    assert len(rejects) == 1 and "no human turn" in rejects[0]["reason"]


@pytest.mark.parametrize("sig,code,name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGUSR2, 140, "SIGUSR2"),
                                           (signal.SIGINT, 130, "Ctrl-C")])
def test_signals_end_the_run_cleanly(tmp_path, openai_server, sig, code, name):
    srv = openai_server
    srv.latency = 0.3
    healthy(srv)
    srv.latency = 0.3
    seeds = seeds_file(tmp_path, 20)
    args = build(srv.url, seeds, "generator.max_concurrency=1", f"paths.artifacts={tmp_path / 'artifacts'}",
                 f"hydra.run.dir={tmp_path / 'run'}")
    # SIGINT at its default in the child: a shell's background job (`make test &`) starts with it ignored, and
    # Python then keeps ignoring it, as a user's `nohup ifforge ... &` should
    proc = subprocess.Popen([sys.executable, "-m", "ifforge", *args], cwd=REPO, env=dict(os.environ, **ENV),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while srv.count() < 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("ifforge: error:")]
    assert len(errors) == 1 and f"interrupted by {name}" in errors[0] and "rerun" in errors[0]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "interrupted"
    srv.latency = 0.0
    started = time.time()
    run_cli(args, tmp_path, env=ENV, check=True, timeout=120)  # the lock was released: no wait, resumes
    assert time.time() - started < 60


def test_full_disk_is_one_line(tmp_path, openai_server):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        healthy(openai_server)
        seeds = seeds_file(tmp_path, 30)
        proc = run_cli(build(openai_server.url, seeds, f"paths.artifacts={mnt}"), tmp_path, env=ENV)  # cache too
        one_line_error(proc, 1, "no space left on the device", "rerun")
        assert not list(mnt.rglob("manifest.json"))
    finally:
        subprocess.run(["umount", str(mnt)])
        shutil.rmtree(mnt, ignore_errors=True)


def test_the_student_model_is_checked_like_every_generator(tmp_path):
    seeds = seeds_file(tmp_path, 1)
    proc = run_cli(build(f"http://127.0.0.1:{closed_port()}/v1", seeds, "augmentation=reframe_constrain_recombine",
                         "response=process_feedback", "response.feedback=external",
                         "+response.external.student={name: openai, model: s, max_concurrency: 0}"), tmp_path, env=ENV)
    one_line_error(proc, 2, "response.external.student.max_concurrency must be >= 1")
