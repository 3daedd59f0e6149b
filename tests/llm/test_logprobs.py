"""Token log-probabilities (Completion.logprobs, OpenAI's `choices[0].logprobs.content` shape) from the openai
backend over the local server (and through the response cache), from hf_local's raw logits on the tiny model, and
from vLLM's per-position Logprob dicts (a pure conversion: vLLM does not install here)."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest
from omegaconf import OmegaConf

from ifforge.config import GeneratorConfig
from ifforge.errors import StageFailed
from ifforge.llm import ChatRequest, make_generator
from ifforge.llm.backends.openai_api import _parse
from ifforge.llm.backends.vllm import VLLMBackend, sample_logprobs
from ifforge.llm.cache import ResponseCache
from ifforge.llm.types import Completion
from tests.helpers.openai_server import Fault, Scored

JUDGE = {"logprobs": True, "top_logprobs": 5, "max_tokens": 1}


def req(text: str, **params) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], params=params)


# -- openai ---------------------------------------------------------------------------------------------------------

def openai_generator(url, cache_path):
    cfg = OmegaConf.structured(GeneratorConfig(name="openai", model="judge", base_url=url, max_retries=0))
    return make_generator(cfg, cache_path=str(cache_path))


def test_openai_returns_the_scripted_logprobs_and_the_cache_keeps_them(openai_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    openai_server.on("Which", Scored("M", {"m": -1.61, "M": -0.22, "x": -3.0}))
    openai_server.on("Say", "two words")
    asks = [req("Which is better?", **JUDGE), req("Say hi", logprobs=True), req("Say hi")]
    gen = openai_generator(openai_server.url, tmp_path / "c.sqlite")
    first = [r.samples[0] for r in gen.generate(asks)]
    gen.close()
    assert first[0].logprobs == [{"token": "M", "logprob": -0.22, "top_logprobs": [
        {"token": "M", "logprob": -0.22}, {"token": "m", "logprob": -1.61}, {"token": "x", "logprob": -3.0}]}]
    # no top_logprobs asked: every token, no alternatives; words after the first carry their leading space
    assert first[1].logprobs == [{"token": "two", "logprob": 0.0, "top_logprobs": []},
                                 {"token": " words", "logprob": 0.0, "top_logprobs": []}]
    assert first[2].ok and first[2].logprobs is None
    sent = sorted(str((b.get("logprobs"), b.get("top_logprobs"))) for b in openai_server.requests)  # any order
    assert sent == ["(None, None)", "(True, 5)", "(True, None)"]

    again = openai_generator(openai_server.url, tmp_path / "c.sqlite")
    cached = [r.samples[0] for r in again.generate(asks)]
    again.close()
    assert len(openai_server.requests) == 3  # nothing new was sent
    assert all(c.cached for c in cached)
    assert [c.logprobs for c in cached] == [c.logprobs for c in first]


def test_scored_reply_is_plain_text_when_logprobs_are_not_asked(openai_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    openai_server.on(None, lambda body: Scored("m", {"m": -0.1}))
    gen = openai_generator(openai_server.url, tmp_path / "c.sqlite")
    [res] = gen.generate([req("anything", max_tokens=1)])
    gen.close()
    assert res.text == "m" and res.samples[0].logprobs is None


def body(logprobs):
    return json.dumps({"choices": [{"message": {"content": "M"}, "finish_reason": "stop", "logprobs": logprobs}]})


@pytest.mark.parametrize("malformed", [
    None, [], "x", {"content": None}, {"content": "M"}, {"content": [1]}, {"content": [{"token": "M"}]},
    {"content": [{"token": "M", "logprob": "-1"}]}, {"content": [{"token": 3, "logprob": -1}]},
    {"content": [{"token": "M", "logprob": True}]},
    {"content": [{"token": "M", "logprob": -1, "top_logprobs": [{"token": "m"}]}]},
    {"content": [{"token": "M", "logprob": -1, "top_logprobs": "Mm"}]},
])
def test_a_malformed_logprobs_value_parses_as_none(malformed):
    completion, reason = _parse(body(malformed).encode(), logprobs=True)
    assert completion is not None and completion.text == "M" and reason == ""
    assert completion.logprobs is None


def test_a_reply_without_the_asked_logprobs_is_a_failed_call_sent_once_and_not_cached(openai_server, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    openai_server.on("Which", "M", fault=Fault.no_logprobs())
    cfg = OmegaConf.structured(GeneratorConfig(name="openai", model="judge", base_url=openai_server.url,
                                               max_retries=3))
    for _ in range(2):  # a second run asks again: nothing was cached
        gen = make_generator(cfg, cache_path=str(tmp_path / "c.sqlite"))
        with pytest.raises(StageFailed, match="no token log-probabilities, which the call asked for"):
            gen.generate([req("Which is better?", **JUDGE)])
        assert gen.stats.failures == 1 and gen.stats.completion_tokens == 1  # paid for: counted in the cost
        gen.close()
    assert len(openai_server.requests) == 2  # not retried: each retry would be paid for and answered the same


def test_logprobs_are_read_only_when_asked_and_bytes_are_dropped():
    content = [{"token": "M", "logprob": -0.5, "bytes": [77], "top_logprobs": [
        {"token": "M", "logprob": -0.5, "bytes": [77]}, {"token": "m", "logprob": -1, "bytes": [109]}]}]
    asked, _ = _parse(body({"content": content}).encode(), logprobs=True)
    assert asked.logprobs == [{"token": "M", "logprob": -0.5, "top_logprobs": [
        {"token": "M", "logprob": -0.5}, {"token": "m", "logprob": -1.0}]}]
    unasked, _ = _parse(body({"content": content}).encode())
    assert unasked.logprobs is None


def test_cache_rows_without_logprobs_are_unchanged_and_old_rows_load(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("plain", Completion(text="a"))
    entries = [{"token": "b", "logprob": -0.1, "top_logprobs": [{"token": "b", "logprob": -0.1}]}]
    cache.put("scored", Completion(text="b", logprobs=entries))
    # a row written before the field existed
    old = {"text": "c", "finish_reason": "stop", "prompt_tokens": 1, "completion_tokens": 1, "latency": 0.1,
           "error": None, "raw": None}
    cache._db.execute("INSERT INTO completions (key, value) VALUES (?, ?)", ("old", json.dumps(old)))
    stored = dict(cache._db.execute("SELECT key, value FROM completions").fetchall())
    assert "logprobs" not in json.loads(stored["plain"])
    got = cache.get_many(["plain", "scored", "old"])
    assert got["plain"].logprobs is None and got["old"].logprobs is None and got["old"].text == "c"
    assert got["scored"].logprobs == entries
    cache.close()


# -- hf_local -------------------------------------------------------------------------------------------------------

def hf_generator(model_dir, **fields):
    base = dict(name="hf_local", model=str(model_dir), max_tokens=6, batch_size=4)
    base.update(fields)
    return make_generator(OmegaConf.structured(GeneratorConfig(**base)))


def test_hf_local_logprobs_are_the_models_own_per_generated_token(tiny_model_dir):
    import torch

    k = 4
    gen = hf_generator(tiny_model_dir, max_failed_fraction=1.0)  # the bad call below is looked at, not fatal
    asks = [req("What is 2+2?", logprobs=True, top_logprobs=k),  # greedy
            req("Tell me a joke.", logprobs=True, top_logprobs=k, temperature=1.0, seed=3),  # sampled
            req("What is 2+2?"),  # same batch, did not ask
            req("Hi", logprobs=True, top_logprobs=-1)]  # a bad value fails its own call
    greedy, sampled, plain, bad = [r.samples[0] for r in gen.generate(asks)]
    assert plain.ok and plain.logprobs is None
    assert greedy.text == plain.text  # asking for log-probabilities changes nothing else
    assert not bad.ok and "top_logprobs" in bad.error
    for c in (greedy, sampled):
        assert c.ok and c.finish_reason == "length" and len(c.logprobs) == c.completion_tokens == 6
        for entry in c.logprobs:
            values = [t["logprob"] for t in entry["top_logprobs"]]
            assert len(values) == k and values == sorted(values, reverse=True)
            # the model's distribution, not the sampler's forced one (all mass on the drawn token)
            assert all(math.isfinite(v) and v < 0 for v in values + [entry["logprob"]])
            assert sum(math.exp(v) for v in values) <= 1.0 + 1e-6
    for entry in greedy.logprobs:  # greedy: the generated token is the likeliest
        assert entry["top_logprobs"][0] == {"token": entry["token"], "logprob": entry["logprob"]}
    assert "".join(e["token"] for e in greedy.logprobs) == greedy.text

    # The first step checked against a forward pass of the model on the prompt.
    backend = gen.backend
    ids = backend._encode(asks[0].messages)
    with torch.inference_mode():
        logits = backend._model(torch.tensor([ids])).logits[0, -1].float()
    top = torch.log_softmax(logits, dim=-1).topk(k)
    first = greedy.logprobs[0]["top_logprobs"]
    assert [t["token"] for t in first] == [backend._tokenizer.decode([i]) for i in top.indices.tolist()]
    assert [t["logprob"] for t in first] == pytest.approx(top.values.tolist(), abs=1e-4)
    gen.close()


def test_hf_local_logprobs_stop_where_a_stop_string_cuts_the_text(tiny_model_dir):
    gen = hf_generator(tiny_model_dir, max_tokens=8)
    full = gen.generate([req("Hi", logprobs=True)])[0].samples[0]
    tokens = [e["token"] for e in full.logprobs]
    stop = tokens[4]  # a token from the middle: the text is cut before it, and so are the log-probabilities
    [res] = gen.generate([req("Hi", logprobs=True, stop=[stop])])
    cut = res.samples[0]
    gen.close()
    assert cut.text == full.text[:full.text.index(stop)] and cut.finish_reason == "stop"
    assert [e["token"] for e in cut.logprobs] == tokens[:len(cut.logprobs)]
    # exactly the tokens the text needs: the last one is the one that reaches its end
    assert "".join(e["token"] for e in cut.logprobs).startswith(cut.text)
    assert len("".join(e["token"] for e in cut.logprobs[:-1])) < len(cut.text)
    assert len(cut.logprobs) < len(tokens)


# -- vllm -----------------------------------------------------------------------------------------------------------

def lp(logprob, rank, token):
    """The attributes of vLLM's Logprob."""
    return types.SimpleNamespace(logprob=logprob, rank=rank, decoded_token=token)


def test_vllm_conversion():
    positions = [
        {7: lp(-0.1, 1, "M"), 8: lp(-2.5, 2, "m"), 9: lp(-3.0, 3, "x")},  # sampled token is the likeliest
        {5: lp(-4.0, 9, " b"), 1: lp(-0.3, 1, " a"), 2: lp(-1.5, 2, " c")},  # sampled outside the top 2
        {0: lp(-0.01, 1, "")},  # end of sequence, past the text
    ]
    got = sample_logprobs([7, 5, 0], positions, 2, "M b")
    assert got == [
        {"token": "M", "logprob": -0.1, "top_logprobs": [{"token": "M", "logprob": -0.1},
                                                          {"token": "m", "logprob": -2.5}]},
        {"token": " b", "logprob": -4.0, "top_logprobs": [{"token": " a", "logprob": -0.3},
                                                           {"token": " c", "logprob": -1.5}]},
    ]
    assert [e["top_logprobs"] for e in sample_logprobs([7, 5, 0], positions, 0, "M b")] == [[], []]
    assert sample_logprobs([7], positions[:1], 2, "") == []


def test_vllm_sampling_params_ask_for_logprobs_only_when_the_call_does(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    backend = VLLMBackend(OmegaConf.structured(GeneratorConfig(name="vllm", model="m")))
    assert backend._sampling_kwargs(JUDGE)["logprobs"] == 5
    assert backend._sampling_kwargs({"logprobs": True})["logprobs"] == 0
    assert "logprobs" not in backend._sampling_kwargs({"top_logprobs": 5})
    with pytest.raises(ValueError, match="top_logprobs"):
        backend._sampling_kwargs({"logprobs": True, "top_logprobs": "five"})
