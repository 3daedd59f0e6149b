"""Prices: genai-prices for hosted models, config prices win, local models and unknown endpoints are 'unknown'
(never a $0 price); the library is imported only when a cost is computed."""

import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from ifforge.llm.base import Backend, Generator
from ifforge.llm.prices import Price, lookup, price_for
from ifforge.llm.types import ChatRequest, Completion
from tests.helpers.data import REPO


def node(**kw):
    base = {"name": "openai", "model": "gpt-4-0613", "base_url": None, "price_prompt_per_mtok": None,
            "price_completion_per_mtok": None, "cache": False, "max_tokens": 64, "temperature": 0.0, "top_p": 1.0,
            "seed": None, "stop": None, "max_failed_fraction": 0.0}
    return OmegaConf.create({**base, **kw})


@pytest.mark.parametrize("model, prompt, completion, matched", [
    ("gpt-4-0613", 30, 60, "openai/gpt-4"),             # DeMoRecon's generator
    ("gpt-4-0125-preview", 10, 30, "openai/gpt-4-turbo"),  # a dated preview name maps to its family
    ("gpt-4o-mini", 0.15, 0.6, "openai/gpt-4o-mini"),
])
def test_hosted_openai_models_are_priced(model, prompt, completion, matched):
    price = price_for(node(model=model))
    assert price.known and (price.prompt, price.completion) == pytest.approx((prompt, completion))
    assert matched in price.source and "genai-prices" in price.source
    assert price.cost(1_000_000, 500_000) == pytest.approx(prompt + completion / 2)


def test_a_known_providers_url_is_priced_and_a_private_endpoint_is_unknown():
    assert price_for(node(base_url="https://api.openai.com/v1")).prompt == pytest.approx(30)
    private = price_for(node(base_url="http://user:pw@10.0.0.5:8000/v1"))
    assert not private.known and private.prompt is None and private.cost(1000, 1000) == 0.0
    assert "no price for 'gpt-4-0613' at http://***@10.0.0.5:8000/v1" in private.source  # never the credential
    assert private.show(0.0) == "price unknown" and private.describe().startswith("price unknown (")


def test_config_prices_win_side_by_side():
    both = price_for(node(price_prompt_per_mtok=1.5, price_completion_per_mtok=0))
    assert (both.prompt, both.completion, both.source) == (1.5, 0.0, "config") and both.known
    assert both.show(0.0) == "$0.0000"  # a price of 0 set on purpose is a price
    half = price_for(node(price_prompt_per_mtok=2.0))  # completion looked up
    assert (half.prompt, half.completion) == pytest.approx((2.0, 60)) and half.source.startswith("config; genai")
    local = price_for(node(name="hf_local", model="/models/x", price_completion_per_mtok=1.0))
    assert local.prompt is None and local.completion == 1.0 and "part of the price unknown" in local.show(0.1)


def test_local_backends_are_unknown_without_the_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # any import of it would fail
    for backend in ("hf_local", "vllm"):
        p = lookup(backend, "gpt-4o", None)
        assert not p.known and "runs the model locally" in p.source


class Canned(Backend):
    name = "openai"

    def run(self, calls, on_done):
        for i, _ in enumerate(calls):
            on_done(i, Completion(text="ok", prompt_tokens=1000, completion_tokens=500))


def test_generator_costs_per_step_and_reports_the_price(tmp_path):
    from ifforge.llm.cache import ResponseCache

    gen = Generator(Canned(node()), node(cache=True), cache=ResponseCache(tmp_path / "c.sqlite"))
    gen.generate([ChatRequest([{"role": "user", "content": f"q{i}"}]) for i in range(3)], desc="decompose")
    gen.generate([ChatRequest([{"role": "user", "content": "q0"}])], desc="respond")  # another step, same prompt
    gen.generate([ChatRequest([{"role": "user", "content": "a"}])], desc="respond")
    report = gen.report()
    per_request = (1000 * 30 + 500 * 60) / 1e6
    assert report["cost_usd"] == pytest.approx(4 * per_request) and report["calls"] == 4
    assert report["steps"]["decompose"]["cost_usd"] == pytest.approx(3 * per_request)
    assert report["steps"]["respond"] == {**report["steps"]["respond"], "calls": 1, "cache_hits": 1}
    assert report["price"]["known"] and "openai/gpt-4" in report["price"]["source"]
    assert Price.from_report(report["price"]).prompt == 30

    cached = Generator(Canned(node()), node(cache=True), cache=ResponseCache(tmp_path / "c.sqlite"))
    cached.generate([ChatRequest([{"role": "user", "content": "q1"}])], desc="decompose")
    assert cached.report()["price"] == {"known": None, "source": "not looked up: no request was sent"}


def test_genai_prices_is_imported_only_when_a_cost_is_computed(tmp_path):
    code = f"""
import json, sys
import ifforge.__main__, ifforge.llm, ifforge.stages.build, ifforge.stages.eval
from omegaconf import OmegaConf
from ifforge.llm.base import Generator
from ifforge.llm.cache import ResponseCache
from ifforge.llm.types import ChatRequest
from tests.llm.test_prices import Canned, node
seen = ["genai_prices" in sys.modules]
cache = ResponseCache({str(tmp_path / 'c.sqlite')!r})
Generator(Canned(node()), node(cache=True), cache=cache).generate([ChatRequest([{{"role": "user", "content": "x"}}])])
seen.append("genai_prices" in sys.modules)
sys.modules.pop("genai_prices")  # as in a fresh process whose answers are all cached:
g = Generator(Canned(node()), node(cache=True), cache=cache)
g.generate([ChatRequest([{{"role": "user", "content": "x"}}])]); g.report()
seen.append("genai_prices" in sys.modules)
print(json.dumps(seen))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, True, False]
