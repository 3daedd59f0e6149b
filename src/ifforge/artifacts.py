"""Stage artifacts: `<root>/<stage>/<fingerprint>/`, reused when done, built once under a file lock.

The fingerprint hashes exactly the config slice a stage depends on plus its inputs' fingerprints, so changing an
eval setting never rebuilds data or retrains. Only a directory whose `manifest.json` exists counts as done; the
manifest is written last, atomically, so a crash never leaves a half-built artifact that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

from filelock import FileLock

MANIFEST = "manifest.json"
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|token)$", re.IGNORECASE)


def redact(obj: Any) -> Any:
    """Replace values of secret-looking keys. `api_key_env` (a variable *name*) is kept: it is not a secret."""
    if isinstance(obj, Mapping):
        return {k: ("***" if _SECRET_KEY.search(str(k)) and v is not None else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def fingerprint(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Artifact:
    stage: str
    fingerprint: str
    path: Path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def done(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> Dict[str, Any]:
        return json.loads(self.manifest_path.read_text())


def artifact_for(root: str | Path, stage: str, config: Any, inputs: Optional[Mapping[str, Artifact]] = None) -> Artifact:
    inputs = dict(inputs or {})
    fp = fingerprint({"stage": stage, "config": config, "inputs": {k: a.fingerprint for k, a in sorted(inputs.items())}})
    return Artifact(stage=stage, fingerprint=fp, path=Path(root).resolve() / stage / fp)


def ensure(
    artifact: Artifact,
    config: Any,
    build: Callable[[Path], Dict[str, Any]],
    inputs: Optional[Mapping[str, Artifact]] = None,
    log: Callable[[str], None] = print,
) -> Artifact:
    """Reuse `artifact` if done; otherwise build it exactly once across processes.

    `build(dir)` writes the stage's files into `dir` and returns the manifest's `stats`. A second process that
    wants the same artifact blocks on the lock and then reuses what the first one wrote. The directory is not
    wiped before building: stages may keep resumable state there (training checkpoints).
    """
    if artifact.done:
        log(f"[{artifact.stage}] reusing {artifact.path}")
        return artifact
    artifact.path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(artifact.path) + ".lock")
    with lock:
        if artifact.done:  # someone built it while we waited
            log(f"[{artifact.stage}] reusing {artifact.path} (built by another job)")
            return artifact
        artifact.path.mkdir(parents=True, exist_ok=True)
        started = time.time()
        stats = build(artifact.path)
        write_json_atomic(
            artifact.manifest_path,
            {
                "stage": artifact.stage,
                "fingerprint": artifact.fingerprint,
                "config": redact(config),
                "inputs": {k: {"fingerprint": a.fingerprint, "path": str(a.path)} for k, a in (inputs or {}).items()},
                "timings": {"started": started, "finished": time.time(), "seconds": round(time.time() - started, 3)},
                "stats": stats,
            },
        )
    return artifact
