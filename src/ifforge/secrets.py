"""Secrets never land on disk: credential-looking config keys are refused, credentials in URLs are redacted.

Keys are read from the environment by name (`api_key_env`), so a config never needs to hold one. A key that looks
like a credential (api_key, token, secret, password, ...) is refused when the config is composed, before Hydra
writes `.hydra/*.yaml`; `user:password@` in a URL (and secret-looking query parameters) is replaced by `***` in
every file ifforge writes, in the Hydra run directory and in what W&B is given.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Iterable, List, Mapping

from hydra.experimental.callback import Callback

_CREDENTIAL = r"(?:api[_-]?key|apikey|secret(?:[_-]key)?|password|passwd|token|credentials?|access[_-]key|private[_-]key)"
# A whole key name (or its last dotted part) that holds a credential: `api_key`, `hub_token`, `password`, but not
# `api_key_env` (a variable name), `max_tokens`, or a tokenizer's special-token names.
CREDENTIAL_KEY = re.compile(rf"(?:^|[_.-]){_CREDENTIAL}$", re.IGNORECASE)
_TOKENIZER_KEYS = {"pad_token", "eos_token", "bos_token", "unk_token", "sep_token", "cls_token", "mask_token"}
# `\\:` too: Hydra escapes colons in sweep overrides and override_dirname (`http\\://user\\:pw@host`)
_URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*\\?://)[^/\s@'\"]+@")
_URL_QUERY = re.compile(r"([?&](?:api[_-]?key|key|token|access[_-]token|secret|password|sig)=)[^&\s'\"]+",
                        re.IGNORECASE)
_YAML_LINE = re.compile(rf"^(\s*(?:-\s+)?[\w.-]*?{_CREDENTIAL}\s*:\s*)(\S.*)$", re.IGNORECASE | re.MULTILINE)
_OVERRIDE = re.compile(rf"((?:^|[\s'\"\[,])[+~]*[\w.-]*?{_CREDENTIAL}=)([^\s'\",\]]+)", re.IGNORECASE)
HINT = ("keys are read from the environment: export the key and name the variable with "
        "generator.api_key_env / judge.api_key_env / candidate.api_key_env")


def is_credential_key(key: Any) -> bool:
    name = str(key)
    return name.lower() not in _TOKENIZER_KEYS and bool(CREDENTIAL_KEY.search(name))


def redact_url(text: str) -> str:
    """`http://user:pass@host/v1?api_key=k` -> `http://***@host/v1?api_key=***`."""
    return _URL_QUERY.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", text))


def scrub_text(text: str) -> str:
    """Credentials out of free text: URLs, YAML `api_key: value` lines and `x.api_key=value` overrides."""
    text = redact_url(text)
    text = _YAML_LINE.sub(lambda m: m.group(1) + ("null" if m.group(2).strip() == "null" else "'***'"), text)
    return _OVERRIDE.sub(r"\1***", text)


def redact(obj: Any) -> Any:
    """A copy of `obj` with credential-looking keys' values and URL credentials replaced by `***`.
    `api_key_env` (a variable *name*) is kept: it is not a secret."""
    if isinstance(obj, Mapping):
        return {k: ("***" if is_credential_key(k) and v is not None and not isinstance(v, bool) else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_url(obj)
    return obj


def credential_keys(obj: Any, prefix: str = "") -> List[str]:
    """Dotted paths of the keys in `obj` that hold a credential (any value but null/true/false)."""
    found: List[str] = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            path = f"{prefix}{k}"
            if is_credential_key(k) and v is not None and not isinstance(v, bool) and v != "":
                found.append(path)
            else:
                found += credential_keys(v, path + ".")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found += credential_keys(v, f"{prefix}{i}.")
    return found


def refusal(paths: Iterable[str]) -> str:
    return f"{', '.join(paths)}: a credential in the config is refused (it would be written to disk); {HINT}"


def argv_credentials(argv: Iterable[str]) -> List[str]:
    """Override keys on a command line that would put a credential into the config (`+generator.api_key=...`)."""
    found = []
    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        if is_credential_key(key.rsplit(".", 1)[-1]) and arg.split("=", 1)[1] not in ("", "null"):
            found.append(key)
    return found


def _config_credentials(config: Any) -> List[str]:
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(config, resolve=False)
    node.pop("hydra", None)  # type: ignore[union-attr]
    return credential_keys(node)


def _stop(message: str) -> None:
    print(f"ifforge: error: {message}", file=sys.stderr)
    sys.exit(2)


class SecretGuard(Callback):
    """Refuses a credential in the composed config before any file is written; scrubs the Hydra run directory's
    copies of the config (`.hydra/*.yaml`) of URL credentials."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        found = _config_credentials(config)
        if found:
            _stop(refusal(found))

    on_multirun_start = on_run_start

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        # Hydra saved the job's config just before this hook (and a sweep's multirun.yaml before its first job):
        # scrub them; a sweep value could still carry a credential.
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        files = []
        if config.hydra.output_subdir:
            hydra_dir = Path(str(config.hydra.runtime.output_dir)) / str(config.hydra.output_subdir)
            files += sorted(hydra_dir.glob("*.yaml"))
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            files.append(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")
        for f in files:
            if not f.is_file():
                continue
            text = f.read_text(encoding="utf-8")
            clean = scrub_text(text)
            if clean != text:
                f.write_text(clean, encoding="utf-8")
        found = _config_credentials(config)
        if found:
            _stop(refusal(found))
