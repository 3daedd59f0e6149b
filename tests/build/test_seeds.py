import json

import pytest
from omegaconf import OmegaConf

from ifforge.build.seeds import load_seeds
from ifforge.config import SeedsConfig
from ifforge.errors import UserError
from tests.helpers.data import SHARED_DATA, needs_shared_data


def cfg(**kw):
    return OmegaConf.structured(SeedsConfig(**kw))


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def collect():
    rejected = []
    return rejected, lambda row, reason: rejected.append((row, reason))


def test_jsonl_dedupe_limit_sample(tmp_path):
    p = write(tmp_path / "s.jsonl", [{"q": f"Task number {i}"} for i in range(10)] + [{"q": "task  NUMBER 3"}])
    rejected, rej = collect()
    seeds = load_seeds(cfg(name="jsonl", path=p, field="q"), rej)
    assert len(seeds) == 10 and seeds[0] == {"seed_id": "0", "instruction": "Task number 0"}
    assert rejected[0][1] == "duplicate of seed 3"
    assert len(load_seeds(cfg(name="jsonl", path=p, field="q", limit=4), rej)) == 4
    s1 = load_seeds(cfg(name="jsonl", path=p, field="q", sample=5, seed=1), rej)
    s2 = load_seeds(cfg(name="jsonl", path=p, field="q", sample=5, seed=1), rej)
    s3 = load_seeds(cfg(name="jsonl", path=p, field="q", sample=5, seed=2), rej)
    assert s1 == s2 and len(s1) == 5 and s1 != s3


def test_selection_rules_reject_with_reasons(tmp_path):
    p = write(tmp_path / "s.jsonl", [
        {"instruction": "Write a poem about the sea and the sky."},
        {"instruction": "Too short"},
        {"instruction": "Écris un poème sur la mer et le ciel bleu, s'il te plaît mon ami."},
        {"instruction": "x" * 300},
        {"instruction": ""},
    ])
    rejected, rej = collect()
    seeds = load_seeds(cfg(name="jsonl", path=p, max_chars=200, min_words=5, english_only=True), rej)
    assert [s["instruction"] for s in seeds] == ["Write a poem about the sea and the sky."]
    reasons = sorted(r for _, r in rejected)
    assert len(reasons) == 4
    assert any("min_words" in r for r in reasons) and any("max_chars" in r for r in reasons)
    assert "not English (seeds.english_only)" in reasons and "empty instruction" in reasons


def test_sharegpt_first_human_turn(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps([
        {"id": "a", "conversations": [{"from": "human", "value": "Hi there, tell me a joke"}, {"from": "gpt", "value": "ok"}]},
        {"id": "b", "conversations": [{"from": "gpt", "value": "only a bot turn"}]},
        {"id": "c", "conversations": [{"role": "system", "content": "s"}, {"role": "user", "content": "Plan a trip"}]},
    ]))
    rejected, rej = collect()
    seeds = load_seeds(cfg(name="sharegpt", path=str(p), id_field="id"), rej)
    assert seeds == [{"seed_id": "a", "instruction": "Hi there, tell me a joke"},
                     {"seed_id": "c", "instruction": "Plan a trip"}]
    assert len(rejected) == 1


@needs_shared_data
def test_real_shared_seed_files():
    rejected, rej = collect()
    alpaca = load_seeds(cfg(name="jsonl", path=str(SHARED_DATA / "seeds/alpaca_seed_tasks.jsonl"), id_field="id"), rej)
    assert len(alpaca) == 175
    sharegpt = load_seeds(cfg(name="jsonl", path=str(SHARED_DATA / "seeds/sharegpt_first_turns.jsonl"), limit=50), rej)
    assert len(sharegpt) == 50


def test_bad_input_is_one_clear_error(tmp_path):
    _, rej = collect()
    with pytest.raises(UserError, match="seeds file not found"):
        load_seeds(cfg(name="jsonl", path=str(tmp_path / "missing.jsonl")), rej)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok one"}\n{not json}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: not valid JSON"):
        load_seeds(cfg(name="jsonl", path=str(bad)), rej)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="no usable seeds"):
        load_seeds(cfg(name="jsonl", path=str(empty)), rej)
    with pytest.raises(UserError, match="no field 'prompt'"):
        load_seeds(cfg(name="jsonl", path=str(bad), field="prompt"), rej)
