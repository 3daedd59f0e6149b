"""The `openai` backend against a real OpenAI-compatible server: `transformers serve` on the embedded SmolLM2."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ifforge.config import GeneratorConfig
from ifforge.llm import ChatRequest, make_generator
from tests.helpers.cli import openai_args, outputs, run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_smollm2(smollm2_dir, tmp_path_factory):
    port = _free_port()
    home = tmp_path_factory.mktemp("hf_home")
    (home / "hub").mkdir()  # `transformers serve` errors on /v1/models without a hub cache folder
    cli = Path(sys.executable).with_name("transformers")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(home))
    proc = subprocess.Popen([str(cli), "serve", smollm2_dir, "--device", "cpu", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("transformers serve did not become healthy in 120 s")
    yield url, smollm2_dir
    proc.terminate()
    proc.wait(30)


@pytest.mark.slow
def test_generator_over_a_real_server(served_smollm2, tmp_path, monkeypatch):
    url, model = served_smollm2
    monkeypatch.setenv("OPENAI_API_KEY", "unused-by-transformers-serve")
    cfg = OmegaConf.structured(GeneratorConfig(name="openai", model=model, base_url=url, max_tokens=12,
                                               max_concurrency=2, timeout=120, max_retries=1))
    gen = make_generator(cfg, cache_path=str(tmp_path / "cache.sqlite"))
    try:
        reqs = [ChatRequest([{"role": "user", "content": q}]) for q in ("Say hello.", "Name a colour.")]
        results = gen.generate(reqs)
        assert all(r.ok and r.text.strip() for r in results), [r.error for r in results]
        assert all(r.samples[0].completion_tokens > 0 and r.samples[0].prompt_tokens > 0 for r in results)
        assert gen.stats.calls == 2 and gen.stats.failures == 0
        again = gen.generate(reqs)
        assert [r.text for r in again] == [r.text for r in results] and gen.stats.cache_hits == 2
    finally:
        gen.close()


@pytest.mark.slow
def test_build_stage_over_a_real_server(served_smollm2, tmp_path):
    url, model = served_smollm2
    # 16 tokens keep the CPU server fast; the answers are cut short, so they are kept explicitly (rejected by default).
    run_cli(["stages=[build]", "seeds.limit=2", *openai_args(url, model=model), "generator.max_tokens=16",
             "generator.keep_cut_off=true"], tmp_path, env={"OPENAI_API_KEY": "unused"}, check=True)
    art = Path(outputs(tmp_path)["build"])
    stats = json.loads((art / "manifest.json").read_text())["stats"]
    assert stats["splits"] == {"sft": 2} and stats["generator"]["calls"] == 2
