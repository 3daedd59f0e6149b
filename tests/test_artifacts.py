import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from ifforge.artifacts import artifact_for, ensure, fingerprint, redact


def test_fingerprint_depends_on_config_and_inputs(tmp_path):
    a = artifact_for(tmp_path, "build", {"x": 1})
    assert artifact_for(tmp_path, "build", {"x": 1}).fingerprint == a.fingerprint
    assert artifact_for(tmp_path, "build", {"x": 2}).fingerprint != a.fingerprint
    t1 = artifact_for(tmp_path, "train", {"m": 1}, {"build": a})
    t2 = artifact_for(tmp_path, "train", {"m": 1}, {"build": artifact_for(tmp_path, "build", {"x": 2})})
    assert t1.fingerprint != t2.fingerprint
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})


def test_manifest_written_last_and_reused(tmp_path):
    art = artifact_for(tmp_path, "build", {"x": 1})
    calls = []

    def build(out: Path):
        calls.append(1)
        assert not art.done  # no manifest while the stage is still writing
        (out / "data.txt").write_text("ok")
        return {"rows": 1}

    ensure(art, {"x": 1, "api_key": "sk-secret"}, build)
    ensure(art, {"x": 1}, build)
    assert calls == [1]
    m = art.manifest()
    assert m["stats"] == {"rows": 1} and m["stage"] == "build" and m["fingerprint"] == art.fingerprint
    assert "sk-secret" not in art.manifest_path.read_text()


def test_failed_build_is_not_marked_done(tmp_path):
    art = artifact_for(tmp_path, "build", {"x": 1})

    def build(out: Path):
        (out / "half.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        ensure(art, {}, build)
    assert not art.done
    ensure(art, {}, lambda out: {"rows": 2})  # a rerun finishes it
    assert art.manifest()["stats"] == {"rows": 2}


def _slow_build(root, counter):
    art = artifact_for(root, "build", {"x": 1})

    def build(out):
        with open(counter, "a") as f:
            f.write("built\n")
        time.sleep(1.0)
        return {}

    ensure(art, {}, build, log=lambda m: None)


def test_two_processes_build_once(tmp_path):
    counter = tmp_path / "count.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_slow_build, args=(str(tmp_path / "a"), str(counter))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert counter.read_text().count("built") == 1


def test_redact_keeps_env_names():
    r = redact({"api_key_env": "OPENAI_API_KEY", "api_key": "sk-1", "nested": [{"token": "t"}]})
    assert r == {"api_key_env": "OPENAI_API_KEY", "api_key": "***", "nested": [{"token": "***"}]}
    assert json.dumps(r).count("sk-1") == 0
