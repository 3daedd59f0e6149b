"""The response cache under every backend: one SQLite file (WAL) shared by every run, stage and sweep job.

Keyed by a hash of (backend, model, messages, sampling params, sample index). Each completion is committed as soon
as it arrives, so a run killed half-way loses nothing it had already paid for.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

from ifforge.llm.types import Call, Completion


def cache_key(backend: str, model: str, call: Call) -> str:
    payload = {"backend": backend, "model": model, "messages": call.messages, "params": call.params,
               "sample_index": call.sample_index}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # timeout: concurrent sweep jobs write to the same file; WAL lets readers go on while one writes.
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> Optional[Completion]:
        with self._lock:
            row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data: Dict[str, Any] = json.loads(row[0])
        return Completion(**data, cached=True)

    def get_many(self, keys: list[str]) -> Dict[str, Completion]:
        found: Dict[str, Completion] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                q = f"SELECT key, value FROM completions WHERE key IN ({','.join('?' * len(chunk))})"
                for key, value in self._db.execute(q, chunk):
                    found[key] = Completion(**json.loads(value), cached=True)
        return found

    def put(self, key: str, completion: Completion) -> None:
        if not completion.ok:  # failures are retried next time, never cached
            return
        data = asdict(completion)
        data.pop("cached")
        data.pop("retries")
        if data["logprobs"] is None:  # rows without log-probabilities stay as they were before the field existed
            data.pop("logprobs")
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)", (key, json.dumps(data)))

    def close(self) -> None:
        with self._lock:
            self._db.close()
