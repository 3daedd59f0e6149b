"""hf_local on the tiny random model (fast, prompt-dependent output) and once on the real SmolLM2."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from ifforge.config import GeneratorConfig
from ifforge.errors import UserError
from ifforge.llm import ChatRequest, make_generator

# Different lengths, so that batches of 4 need left padding.
PROMPTS = [
    "Hi",
    "Write a long poem about the sea, the sky and everything in between, in the style of an old sailor.",
    "What is 2+2?",
    "Tell me a joke about cats.",
    "x",
    "Summarize: the quick brown fox jumps over the lazy dog.",
]


def make(model, cache_path=None, **fields):
    base = dict(name="hf_local", model=str(model), max_tokens=8, batch_size=4)
    base.update(fields)
    return make_generator(OmegaConf.structured(GeneratorConfig(**base)), cache_path=cache_path)


def requests(prompts=PROMPTS, **kw):
    return [ChatRequest(messages=[{"role": "user", "content": p}], **kw) for p in prompts]


def texts(results):
    return [r.texts for r in results]


def test_batched_greedy_equals_one_at_a_time(tiny_model_dir):
    batched = make(tiny_model_dir, batch_size=4).generate(requests())
    single = make(tiny_model_dir, batch_size=1).generate(requests())
    assert texts(batched) == texts(single)
    assert len({r.text for r in batched}) > 1  # prompt-dependent output, so the comparison means something
    for b, s in zip(batched, single):
        comp = b.samples[0]
        assert comp.ok and comp.finish_reason in ("length", "stop")
        assert comp.prompt_tokens == s.samples[0].prompt_tokens > 0
        assert 0 < comp.completion_tokens == s.samples[0].completion_tokens <= 8
    # Longer prompts cost more prompt tokens: counts are per call, not the padded batch width.
    assert batched[1].samples[0].prompt_tokens > batched[0].samples[0].prompt_tokens


def test_seeded_sampling_is_reproducible_and_batch_independent(tiny_model_dir):
    reqs = requests(PROMPTS[:3], params={"temperature": 1.0, "seed": 123}, n=2)
    first = make(tiny_model_dir, batch_size=4).generate(reqs)
    again = make(tiny_model_dir, batch_size=4).generate(reqs)
    alone = make(tiny_model_dir, batch_size=1).generate(reqs)
    assert texts(first) == texts(again) == texts(alone)
    for r in first:
        assert len(r.samples) == 2 and r.ok
        assert r.samples[0].text != r.samples[1].text  # sample 1 gets seed + 1
    greedy = make(tiny_model_dir).generate(requests(PROMPTS[:3]))
    assert texts(greedy) != texts(first)


def test_unseeded_sampling_differs_between_runs(tiny_model_dir):
    reqs = requests(PROMPTS[:2], params={"temperature": 1.0, "top_p": 0.9})
    assert texts(make(tiny_model_dir).generate(reqs)) != texts(make(tiny_model_dir).generate(reqs))


def test_stop_string_truncates_output(tiny_model_dir):
    full = make(tiny_model_dir).generate(requests(PROMPTS[:2]))[0].text
    stop = full.split()[2]  # a word from the middle of the greedy output
    cut = make(tiny_model_dir).generate(requests(PROMPTS[:2], params={"stop": [stop]}))
    comp = cut[0].samples[0]
    assert comp.text == full[:full.index(stop)]
    assert comp.finish_reason == "stop"
    assert comp.completion_tokens < 8
    assert cut[1].samples[0].ok  # the other row of the batch went on to its own end


def test_mixed_params_in_one_call_match_separate_calls(tiny_model_dir):
    variants = [
        {},
        {"max_tokens": 3},
        {"temperature": 0.8, "top_p": 0.95, "seed": 7},
        {"temperature": 1.0, "seed": 11, "max_tokens": 5},
        {"stop": ["e"]},
    ]
    mixed = [ChatRequest(messages=[{"role": "user", "content": PROMPTS[i]}], params=p)
             for i, p in enumerate(variants)]
    together = make(tiny_model_dir, batch_size=8).generate(mixed)
    separately = [make(tiny_model_dir).generate([req])[0] for req in mixed]
    assert texts(together) == texts(separately)
    assert together[1].samples[0].completion_tokens <= 3
    assert together[3].samples[0].completion_tokens <= 5
    assert "e" not in together[4].text


def test_second_call_is_served_from_cache(tiny_model_dir, tmp_path):
    cache = tmp_path / "c.sqlite"
    reqs = requests(PROMPTS[:3], params={"temperature": 1.0, "seed": 5}, n=2)
    first = make(tiny_model_dir, cache_path=str(cache))
    out1 = first.generate(reqs)
    assert first.stats.calls == 6 and first.stats.cache_hits == 0
    assert first.stats.completion_tokens > 0
    second = make(tiny_model_dir, cache_path=str(cache))
    out2 = second.generate(reqs)
    assert second.stats.calls == 0 and second.stats.cache_hits == 6
    assert texts(out2) == texts(out1)
    assert all(s.cached for r in out2 for s in r.samples)
    assert second.backend._model is None  # nothing to generate, so the model was never loaded


def test_a_failing_batch_fails_its_calls_not_the_run(tiny_model_dir, monkeypatch):
    gen = make(tiny_model_dir, batch_size=2, max_failed_fraction=1.0)  # see the failed calls, not the policy
    real = type(gen.backend)._generate
    seen = []

    def flaky(self, prompts, *args):
        seen.append(len(prompts))
        if len(seen) == 1:
            raise RuntimeError("CUDA out of memory (simulated)\nsecond line")
        return real(self, prompts, *args)

    monkeypatch.setattr(type(gen.backend), "_generate", flaky)
    results = gen.generate(requests(PROMPTS[:4]))
    failed = [r for r in results if not r.ok]
    assert len(failed) == 2 and gen.stats.failures == 2
    assert failed[0].error == "RuntimeError: CUDA out of memory (simulated)"
    assert sum(r.ok for r in results) == 2


def test_out_of_memory_retries_in_halves(tiny_model_dir, monkeypatch):
    import torch

    gen = make(tiny_model_dir, batch_size=4)
    real = type(gen.backend)._generate
    sizes = []

    def small_only(self, prompts, *args):
        sizes.append(len(prompts))
        if len(prompts) > 1:
            raise torch.OutOfMemoryError("simulated")
        return real(self, prompts, *args)

    monkeypatch.setattr(type(gen.backend), "_generate", small_only)
    results = gen.generate(requests(PROMPTS[:4]))
    assert all(r.ok for r in results)
    assert sizes == [4, 2, 1, 1, 2, 1, 1]
    assert texts(results) == texts(make(tiny_model_dir).generate(requests(PROMPTS[:4])))


def test_bad_device_is_a_user_error(tiny_model_dir):
    with pytest.raises(UserError, match="device"):
        make(tiny_model_dir, device="tpu")


def test_vllm_without_the_package_is_a_user_error():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:  # CUDA-only; only GPU machines have it
        pytest.skip("vllm is installed here")
    cfg = OmegaConf.structured(GeneratorConfig(name="vllm", model="smollm2-135m-instruct"))
    with pytest.raises(UserError, match="pip install vllm"):
        make_generator(cfg)


@pytest.mark.slow
def test_smollm2_generates_text(smollm2_dir):
    gen = make("smollm2-135m-instruct", max_tokens=8, batch_size=2)
    results = gen.generate(requests(["What is the capital of France?", "Say hello."]))
    assert all(r.ok and r.text.strip() for r in results)
    assert gen.stats.completion_tokens > 0
