"""W&B sample tables (offline): one table per split or suite file, a column per field of its rows."""

import json

from omegaconf import OmegaConf

from ifforge.artifacts import Artifact
from ifforge.config import TrackingConfig
from ifforge.track import WandbTracker


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_sample_tables_have_real_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    build = tmp_path / "build"
    build.mkdir()
    chat = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]
    write_jsonl(build / "sft.jsonl", [{"messages": chat, "seed_id": "s0"}, {"messages": chat[:1], "seed_id": "s1"}])
    write_jsonl(build / "rejects.jsonl", [{"step": "reframe", "reason": "no JSON"}])
    (build / "manifest.json").write_text(json.dumps({"stats": {"seeds": 2}}))
    suite = tmp_path / "ifeval"
    suite.mkdir()
    write_jsonl(suite / "results.jsonl", [
        {"id": "1", "prompt": "Write 3 words.", "response": "One two three.", "strict": True, "score": 1.0,
         "verdicts": [True, False]},
        {"id": "2", "prompt": "Answer in French.", "response": "Bonjour.", "strict": False, "score": None,
         "verdicts": [], "judge_raw": "no verdict"},  # a field only the second row has
    ])
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "suites.json").write_text(json.dumps({"ifeval": str(suite)}))
    (ev / "manifest.json").write_text(json.dumps({"stats": {}}))

    root = OmegaConf.create({"tracking": OmegaConf.structured(TrackingConfig(name="wandb", dir=str(tmp_path))),
                             "seed": 0})
    tracker = WandbTracker(root, "job", None)
    tracker.stage_done("build", Artifact("build", "fp-build", build))
    tracker.stage_done("eval", Artifact("eval", "fp-eval", ev))

    tables = {}  # media/table/samples/sft_<step>_<hash>.table.json -> samples/sft
    for f in (tmp_path / "wandb").glob("offline-run-*/files/media/table/**/*.table.json"):
        key = f.relative_to(next(p for p in f.parents if p.name == "table")).as_posix()
        tables[key.rsplit("_", 2)[0]] = json.loads(f.read_text())
    assert set(tables) == {"samples/sft", "samples/ifeval/results"}, sorted(tables)  # no rejects table
    sft = tables["samples/sft"]
    assert sft["columns"] == ["messages", "seed_id"]
    assert sft["data"][0] == ["[user] Say hi.\n\n[assistant] Hi!", "s0"]
    results = tables["samples/ifeval/results"]
    assert results["columns"] == ["id", "prompt", "response", "strict", "score", "verdicts", "judge_raw"]
    assert results["data"][0] == ["1", "Write 3 words.", "One two three.", True, 1.0, "[true, false]", None]
    assert results["data"][1][3:] == [False, None, "[]", "no verdict"]
