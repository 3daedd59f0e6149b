"""`ensure` with a process group: every rank builds together, rank 0 alone locks and writes the manifest.

Ranks are threads here, joined by a small in-memory group; the file lock is real (flock), so "another job holds
the lock" is a second FileLock on the same path.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Dict, List

from filelock import FileLock

from ifforge.artifacts import artifact_for, ensure


class ThreadGroup:
    """The ProcessGroup protocol for `world_size` threads."""

    def __init__(self, world_size: int):
        self.world_size = world_size
        self._barrier = threading.Barrier(world_size, timeout=30)
        self._value: Any = None

    def member(self, rank: int) -> "Member":
        return Member(self, rank)


class Member:
    def __init__(self, shared: ThreadGroup, rank: int):
        self.shared, self.rank, self.world_size = shared, rank, shared.world_size

    def broadcast(self, obj: Any) -> Any:
        if self.rank == 0:
            self.shared._value = obj
        self.shared._barrier.wait()
        value = self.shared._value
        self.shared._barrier.wait()  # nobody overwrites the value before everyone has read it
        return value

    def barrier(self) -> None:
        self.shared._barrier.wait()


def run_ranks(tmp_path: Path, world_size: int = 3, before=None) -> Dict[str, Any]:
    art = artifact_for(tmp_path, "train", {"x": 1})
    calls: List[int] = []
    returned: List[int] = []
    errors: List[BaseException] = []
    group = ThreadGroup(world_size)

    def build(out: Path) -> Dict[str, Any]:
        calls.append(rank_of[threading.get_ident()])
        time.sleep(0.05)
        return {"steps": 3}

    rank_of: Dict[int, int] = {}

    def rank_main(rank: int) -> None:
        rank_of[threading.get_ident()] = rank
        try:
            ensure(art, {"x": 1}, build, group=group.member(rank), log=lambda m: None)
            assert art.done  # no rank returns before the manifest exists
            returned.append(rank)
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    if before is not None:
        before(art)
    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return {"artifact": art, "calls": sorted(calls), "returned": sorted(returned)}


def test_every_rank_builds_and_one_manifest(tmp_path):
    out = run_ranks(tmp_path)
    assert out["calls"] == [0, 1, 2]  # all ranks joined the build
    assert out["returned"] == [0, 1, 2]
    assert out["artifact"].manifest()["stats"] == {"steps": 3}


def test_done_artifact_is_reused_by_all_ranks(tmp_path):
    run_ranks(tmp_path)
    again = run_ranks(tmp_path)
    assert again["calls"] == []


def test_another_job_holding_the_lock_finishes_first(tmp_path):
    """The deadlock case: another job builds the same artifact; rank 0 waits for its lock, then every rank reuses
    (no rank may start training while rank 0 skips)."""

    def other_job(art):
        lock = FileLock(str(art.path) + ".lock")
        lock.acquire()

        def finish():
            time.sleep(0.3)
            ensure_done = art.path
            ensure_done.mkdir(parents=True, exist_ok=True)
            (ensure_done / "manifest.json").write_text('{"stats": {"by": "other job"}, "files": {}}')
            lock.release()

        threading.Thread(target=finish).start()

    out = run_ranks(tmp_path, before=other_job)
    assert out["calls"] == []
    assert out["artifact"].manifest()["stats"] == {"by": "other job"}


def test_single_rank_group_is_the_plain_path(tmp_path):
    out = run_ranks(tmp_path, world_size=1)
    assert out["calls"] == [0]
