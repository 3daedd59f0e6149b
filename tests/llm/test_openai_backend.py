"""The `openai` backend over real HTTP against the scripted local server (tests/helpers/openai_server.py)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest
from omegaconf import OmegaConf

from ifforge.config import GeneratorConfig
from ifforge.errors import StageFailed, UserError
from ifforge.llm import ChatRequest, make_generator
from ifforge.llm.backends import openai_api
from tests.helpers.openai_server import Fault

KEY = "sk-test-not-a-real-key-123"


@pytest.fixture
def make(openai_server, tmp_path, monkeypatch):
    """make(**generator overrides) -> a Generator talking to the test server, with its own cache file."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    made = []

    def build(**overrides):
        overrides.setdefault("max_retries", 3)
        # These tests look at the failed completions a backend reports; the stage-level policy (a failure stops
        # the stage) is tested below and in tests/test_failures.py.
        overrides.setdefault("max_failed_fraction", 1.0)
        cfg = OmegaConf.structured(GeneratorConfig(name="openai", model="test-model", base_url=openai_server.url,
                                                   **overrides))
        gen = make_generator(cfg, cache_path=str(tmp_path / "c.sqlite"))
        made.append(gen)
        return gen

    yield build
    for gen in made:
        gen.close()


@pytest.fixture
def fast_backoff(monkeypatch):
    """Malformed-body retries wait 10 ms instead of 0.5 s (the SDK's own backoff is left alone)."""
    monkeypatch.setattr(openai_api, "_BACKOFF_BASE", 0.01)


def req(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kw)


def test_success_path(openai_server, make):
    openai_server.on("capital", "Paris is the capital of France.")
    gen = make(temperature=0.7, seed=11)
    [res] = gen.generate([req("What is the capital of France?")])
    c = res.samples[0]
    assert res.ok and c.text == "Paris is the capital of France."
    assert c.finish_reason == "stop" and c.prompt_tokens == 6 and c.completion_tokens == 6
    assert c.latency > 0 and c.retries == 0 and not c.cached
    [seen] = openai_server.received
    assert seen.body["model"] == "test-model" and seen.body["n"] == 1
    assert seen.body["temperature"] == 0.7 and seen.body["seed"] == 11 and seen.body["max_tokens"] == 512
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert gen.stats.calls == 1 and gen.stats.prompt_tokens == 6 and gen.stats.completion_tokens == 6


def test_default_echo_and_length_cut(openai_server, make):
    openai_server.on("long", "one two three four five")
    gen = make()
    echo, cut = gen.generate([req("hello there"), req("long answer please", params={"max_tokens": 2})])
    assert echo.text == "ECHO: hello there"
    assert cut.text == "one two" and cut.samples[0].finish_reason == "length"


def test_params_stop_and_extra_body(openai_server, make):
    gen = make(extra={"top_k": 5, "chat_template_kwargs": {"enable_thinking": False}})
    params = {"response_format": {"type": "json_object"}, "top_p": 0.5, "stop": ["END"]}
    [res] = gen.generate([req("x", params=params)])
    assert res.ok
    body = openai_server.requests[0]
    assert body["stop"] == ["END"] and body["top_p"] == 0.5
    assert body["top_k"] == 5 and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["response_format"] == {"type": "json_object"}


def test_n_fans_out_into_single_sample_requests(openai_server, make):
    gen = make(seed=7)
    [res] = gen.generate([req("sample me", n=3)])
    assert len(res.samples) == 3 and res.ok
    assert openai_server.count("sample me") == 3
    assert all(b["n"] == 1 for b in openai_server.requests)
    assert sorted(b["seed"] for b in openai_server.requests) == [7, 8, 9]  # distinct, reproducible samples


def test_429_with_retry_after_then_success(openai_server, make):
    openai_server.on("busy", "done", fault=Fault.rate_limit(retry_after=0.05, times=2))
    gen = make()
    start = time.monotonic()
    [res] = gen.generate([req("busy now")])
    elapsed = time.monotonic() - start
    assert res.text == "done" and res.samples[0].retries == 2 and gen.stats.retries == 2
    assert openai_server.count("busy") == 3
    # Retry-After (50 ms) was honoured instead of the default backoff (>= 0.375 s + 0.75 s).
    assert elapsed < 0.9
    assert [r.headers.get("x-stainless-retry-count") for r in openai_server.received] == ["0", "1", "2"]


def test_500_then_success(openai_server, make):
    openai_server.on("flaky", "recovered", fault=Fault.http_error(500, times=1))
    gen = make()
    [res] = gen.generate([req("flaky endpoint")])
    assert res.text == "recovered" and res.samples[0].retries == 1 and gen.stats.retries == 1
    assert openai_server.count("flaky") == 2


def test_hang_past_timeout_then_success(openai_server, make):
    openai_server.on("slow", "finally", fault=Fault.hang(seconds=5, times=1))
    gen = make(timeout=0.5)
    start = time.monotonic()
    [res] = gen.generate([req("slow one")])
    assert res.text == "finally" and res.samples[0].retries == 1
    assert 0.5 <= time.monotonic() - start < 3


@pytest.mark.parametrize("fault", [Fault.not_json(times=2), Fault.empty_choices(times=2),
                                   Fault.missing_content(times=2), Fault.null_content(times=2)],
                         ids=["not_json", "empty_choices", "missing_content", "null_content"])
def test_malformed_body_is_retried(openai_server, make, fast_backoff, fault):
    openai_server.on("odd", "good answer", fault=fault)
    gen = make()
    [res] = gen.generate([req("odd body")])
    assert res.text == "good answer" and res.samples[0].retries == 2 and gen.stats.retries == 2
    assert openai_server.count("odd") == 3


def test_always_malformed_fails_alone(openai_server, make, fast_backoff):
    openai_server.on("broken", fault=Fault.not_json())
    gen = make(max_retries=2)
    results = gen.generate([req("fine 1"), req("broken one"), req("fine 2")])
    assert [r.ok for r in results] == [True, False, True]
    bad = results[1].samples[0]
    assert bad.text is None and "malformed" in bad.error and "not JSON" in bad.error
    assert bad.raw is not None and "502 Bad Gateway" in bad.raw
    assert bad.retries == 2 and openai_server.count("broken") == 3  # max_retries + 1 requests, never more
    assert gen.stats.failures == 1 and gen.stats.calls == 3


def test_non_retryable_error_and_key_never_in_messages(openai_server, make):
    # An endpoint that echoes the key it was sent: the key must not reach Completion.error or raw.
    openai_server.on("auth", fault=Fault.http_error(401, message=f"Incorrect API key provided: {KEY}"))
    gen = make()
    [res] = gen.generate([req("auth please")])
    c = res.samples[0]
    assert not res.ok and c.error.startswith("HTTP 401")
    assert KEY not in c.error and KEY not in (c.raw or "")
    assert openai_server.count("auth") == 1  # 4xx other than 408/409/429 is not retried


def test_unreachable_endpoint_is_a_failed_completion(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = OmegaConf.structured(GeneratorConfig(name="openai", model="m", base_url="http://127.0.0.1:9/v1",
                                               max_retries=1, timeout=1.0, max_failed_fraction=1.0))
    gen = make_generator(cfg, cache_path=None)
    [res] = gen.generate([req("anyone?")])
    gen.close()
    assert not res.ok and "connection error" in res.error and res.samples[0].retries == 1


def test_failures_past_the_tolerance_stop_the_caller(openai_server, make, tmp_path):
    openai_server.on("broken", fault=Fault.http_error(400, message="bad request"))
    failures = tmp_path / "failures.jsonl"
    gen = make(max_failed_fraction=0.0)
    gen.failures_path = failures
    with pytest.raises(StageFailed) as info:
        gen.generate([req("fine 1"), req("broken one"), req("fine 2")], desc="step x")
    msg = str(info.value)
    assert "1 of 3 requests to the generator" in msg and "'step x'" in msg and "HTTP 400" in msg
    assert "the 2 answers received are cached" in msg and str(failures) in msg
    [logged] = [json.loads(line) for line in failures.read_text().splitlines()]
    assert logged["step"] == "step x" and logged["prompt"] == "broken one" and "HTTP 400" in logged["error"]
    # Within the tolerance the caller gets the failed result and decides (it never scores or trains on it).
    tolerant = make(max_failed_fraction=0.5)
    assert [r.ok for r in tolerant.generate([req("fine 1"), req("broken two")])] == [True, False]


def test_missing_api_key_is_a_user_error_before_any_request(openai_server, monkeypatch, tmp_path):
    monkeypatch.delenv("MY_PROVIDER_KEY", raising=False)
    cfg = OmegaConf.structured(GeneratorConfig(name="openai", model="test-model", base_url=openai_server.url,
                                               api_key_env="MY_PROVIDER_KEY"))
    with pytest.raises(UserError, match=r"MY_PROVIDER_KEY is not set.*generator\.api_key_env"):
        make_generator(cfg, cache_path=str(tmp_path / "c.sqlite"))
    assert openai_server.requests == []


def test_cache_answers_identical_requests_and_cache_false_sends_again(openai_server, make):
    requests = [req(f"question {i}") for i in range(5)] + [req("sampled", n=2)]
    gen = make()
    first = gen.generate(requests)
    assert len(openai_server.requests) == 7
    second = gen.generate(requests)
    assert len(openai_server.requests) == 7  # the server saw no second copy of anything
    assert gen.stats.cache_hits == 7 and gen.stats.calls == 7
    assert [r.texts for r in second] == [r.texts for r in first]
    assert all(s.cached for r in second for s in r.samples)

    uncached = make(cache=False)
    uncached.generate(requests)
    assert len(openai_server.requests) == 14 and uncached.stats.cache_hits == 0


def test_concurrency_bound(openai_server, make):
    openai_server.latency = 0.1
    gen = make(max_concurrency=4)
    start = time.monotonic()
    results = gen.generate([req(f"q{i}") for i in range(20)])
    assert all(r.ok for r in results)
    assert 2 <= openai_server.max_in_flight <= 4
    assert time.monotonic() - start >= 0.45  # 20 requests / 4 at a time * 0.1 s


def test_concurrency_bound_is_shared_by_threads(openai_server, make):
    openai_server.latency = 0.1
    gen = make(max_concurrency=3, cache=False)
    out = []
    threads = [threading.Thread(target=lambda k=k: out.extend(gen.generate([req(f"t{k}-{i}") for i in range(6)])))
               for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 12 and all(r.ok for r in out)
    assert openai_server.max_in_flight <= 3


def test_close_stops_the_loop_thread(openai_server, make):
    def loop_threads():
        return sum(t.name == "ifforge-openai" for t in threading.enumerate())

    before = loop_threads()
    gen = make()
    assert gen.generate([req("x")])[0].ok
    assert loop_threads() == before + 1
    gen.close()
    assert loop_threads() == before


def test_rpm_limit_paces_requests(openai_server, make):
    gen = make(rpm=600, max_concurrency=8)  # one request per 0.1 s
    start = time.monotonic()
    assert all(r.ok for r in gen.generate([req(f"r{i}") for i in range(6)]))
    assert time.monotonic() - start >= 0.45  # unpaced, the 6 requests take a few ms
    arrivals = sorted(r.at for r in openai_server.received)
    assert arrivals[-1] - arrivals[0] >= 0.4  # spread out at the server too, not sent as one burst late


def test_tpm_limit_is_charged_the_token_estimate(openai_server, make, monkeypatch):
    charged = []
    acquire = openai_api.AsyncLimiter.acquire

    async def spy(self, amount=1):
        charged.append(amount)
        return await acquire(self, amount)

    monkeypatch.setattr(openai_api.AsyncLimiter, "acquire", spy)
    gen = make(tpm=1_000_000)
    results = gen.generate([req("x" * 39 + str(i), params={"max_tokens": 100}) for i in range(3)])
    assert all(r.ok for r in results)
    assert charged == [110, 110, 110]  # prompt chars / 4 + max_tokens, once per HTTP attempt


def test_sequential_runs_and_from_inside_an_event_loop(openai_server, make):
    gen = make(cache=False)
    assert gen.generate([req("a")])[0].ok
    assert gen.generate([req("b")])[0].ok  # a second asyncio loop in the same backend

    async def notebook_cell():
        return gen.generate([req("c")])

    assert asyncio.run(notebook_cell())[0].ok
    assert openai_server.count(re.compile(r"^[abc]$")) == 3
