"""Stage artifacts: `<root>/<stage>/<fingerprint>/`, reused when done, built once under a file lock.

The fingerprint hashes exactly the config slice a stage depends on plus its inputs' fingerprints, so changing an
eval setting never rebuilds data or retrains. Only a directory whose `manifest.json` exists counts as done; the
manifest is written last, atomically, so a crash never leaves a half-built artifact that looks finished. It lists
every file with its size and SHA-256: reuse checks the sizes every time (the hashes with `verify=hash` or
`ifforge-verify`), and a damaged artifact is never used: it is set aside and rebuilt, or, when it is an input the
run does not build, the stage stops and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Protocol

from filelock import FileLock

from ifforge.secrets import redact

MANIFEST = "manifest.json"
_log = logging.getLogger("ifforge")


def fingerprint(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def content_digest(path: Optional[str]) -> Optional[str]:
    """Content hash of a local file or directory: an edited data file must change the fingerprint."""
    if not path:
        return None
    p = Path(path).expanduser()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        if not f.is_file():
            from ifforge.errors import UserError

            raise UserError(f"file not found: {f}")
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def file_digests(config: Any) -> Dict[str, str]:
    """{path: content hash} for every string in `config` that names an existing local file (seed files, user
    templates, data files), so that editing one in place rebuilds instead of silently reusing stale output."""
    found: Dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)
        elif isinstance(node, str) and len(node) < 4096 and ("/" in node or "\\" in node):
            try:
                if Path(node).expanduser().is_file():
                    found[node] = content_digest(node)  # type: ignore[assignment]
            except OSError:
                pass

    walk(config)
    return found


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file), with credentials redacted (secrets.redact)."""
    data = redact(data)
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

    def problem(self, hashes: bool = False) -> Optional[str]:
        """Why this done artifact cannot be trusted (a file missing, resized or, with `hashes`, changed), or None."""
        try:
            files = self.manifest().get("files")
        except (OSError, ValueError):
            return "manifest.json cannot be read"
        if not isinstance(files, dict):
            return "its manifest lists no files (written by an older ifforge)"
        for rel, meta in files.items():
            p = self.path / rel
            if not p.is_file():
                return f"{rel} is missing"
            size = p.stat().st_size
            if size != meta.get("size"):
                return f"{rel} is {size} bytes, the manifest says {meta.get('size')}"
            if hashes and sha256_file(p) != meta.get("sha256"):
                return f"{rel} changed (its SHA-256 differs from the manifest's)"
        return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inventory(root: Path) -> Dict[str, Dict[str, Any]]:
    """{relative path: {size, sha256}} for every file of an artifact but its manifest and temporary files."""
    files: Dict[str, Dict[str, Any]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not (p.name.startswith(".") and p.name.endswith(".tmp")):
            files[p.relative_to(root).as_posix()] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return files


def _reusable(artifact: Artifact, hashes: bool, log: Callable[[str], None], rebuild: bool = False) -> bool:
    """Whether a done artifact can be reused. A damaged one, or any done one when `rebuild` (a generator asked
    with cache=refresh), is set aside (kept for inspection) with a warning, so that it is built again."""
    if not artifact.done:
        return False
    problem = "a generator it uses has cache=refresh" if rebuild else artifact.problem(hashes)
    if problem is None:
        return True
    kind = "replaced" if rebuild else "damaged"
    aside = artifact.path.with_name(f"{artifact.path.name}.{kind}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(artifact.path, aside)
    _log.warning("[%s] %s: rebuilding %s (%s); the old copy is kept at %s", artifact.stage, kind, artifact.path,
                 problem, aside)
    return False


class ProcessGroup(Protocol):
    """The ranks of one multi-process launch (torchrun, accelerate, Slurm tasks) that build an artifact together."""

    rank: int
    world_size: int

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""

    def barrier(self) -> None:
        """Return once every rank has called it."""


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
    group: Optional[ProcessGroup] = None,
    verify: str = "size",
    rebuild: bool = False,
) -> Artifact:
    """Reuse `artifact` if done; otherwise build it exactly once across processes.

    `build(dir)` writes the stage's files into `dir` and returns the manifest's `stats`. A second process that
    wants the same artifact blocks on the lock and then reuses what the first one wrote. The directory is not
    wiped before building: stages may keep resumable state there (training checkpoints).

    With a `group` of several ranks (a collective stage, e.g. multi-GPU training), every rank runs `build`
    together: see `_ensure_collective`. `verify`: `size` or `hash`, how a done artifact is checked before reuse;
    `rebuild`: build it again even when done (the old copy is set aside).
    """
    hashes = verify == "hash"
    if group is not None and group.world_size > 1:
        return _ensure_collective(artifact, config, build, inputs, log, group, hashes)
    if not rebuild and artifact.done and artifact.problem(hashes) is None:
        log(f"[{artifact.stage}] reusing {artifact.path}")
        return artifact
    artifact.path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(artifact.path) + ".lock")
    with lock:
        if _reusable(artifact, hashes, log, rebuild):  # someone built it while we waited
            log(f"[{artifact.stage}] reusing {artifact.path} (built by another job)")
            return artifact
        artifact.path.mkdir(parents=True, exist_ok=True)
        started = time.time()
        stats = build(artifact.path)
        _write_manifest(artifact, config, inputs, started, stats)
    return artifact


def _write_manifest(artifact: Artifact, config: Any, inputs: Optional[Mapping[str, Artifact]], started: float,
                    stats: Dict[str, Any]) -> None:
    write_json_atomic(
        artifact.manifest_path,
        {
            "stage": artifact.stage,
            "fingerprint": artifact.fingerprint,
            "config": config,  # redacted, like everything write_json_atomic writes
            "inputs": {k: {"fingerprint": a.fingerprint, "path": str(a.path)} for k, a in (inputs or {}).items()},
            "timings": {"started": started, "finished": time.time(), "seconds": round(time.time() - started, 3)},
            "stats": stats,
            "files": inventory(artifact.path),
        },
    )


def _ensure_collective(artifact: Artifact, config: Any, build: Callable[[Path], Dict[str, Any]],
                       inputs: Optional[Mapping[str, Artifact]], log: Callable[[str], None],
                       group: ProcessGroup, hashes: bool = False) -> Artifact:
    """Build with every rank of `group`; only rank 0 takes the lock and writes the manifest.

    Rank 0 alone decides whether to build (it may first wait for another job that holds the lock) and broadcasts
    the decision, so the ranks never disagree: were each rank to check `done` itself, a rank could skip while the
    others wait for it inside the training collectives. Other ranks return only after the manifest is written.
    """
    lock = FileLock(str(artifact.path) + ".lock")
    held = False
    if group.rank == 0 and not (artifact.done and artifact.problem(hashes) is None):
        artifact.path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        held = not _reusable(artifact, hashes, log)  # built by another job while we waited: reuse it
        if not held:
            lock.release()
    try:
        if not group.broadcast(held):
            log(f"[{artifact.stage}] reusing {artifact.path}")
            return artifact
        artifact.path.mkdir(parents=True, exist_ok=True)
        started = time.time()
        stats = build(artifact.path)
        if group.rank == 0:
            _write_manifest(artifact, config, inputs, started, stats)
    finally:
        if held:
            lock.release()
    group.barrier()
    return artifact
