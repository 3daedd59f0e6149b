"""The collective path with real processes: two ranks joined by torch.distributed (gloo) build one artifact
together through TorchProcessGroup; with another job holding the artifact's lock, both wait and reuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from ifforge.artifacts import artifact_for
from ifforge.train.distributed import _free_port
from tests.helpers.data import REPO

RANK_SCRIPT = """
import json, sys
from pathlib import Path
from ifforge.artifacts import artifact_for, ensure
from ifforge.train.distributed import process_group

root = Path(sys.argv[1])
group = process_group()
art = artifact_for(root, "train", {"x": 1})

def build(out):
    (out / f"built-by-{group.rank}").write_text("")  # stands for every rank's share of the training
    return {"world_size": group.world_size}

ensure(art, {"x": 1}, build, group=group, log=lambda m: print(m, flush=True))
print(json.dumps({"rank": group.rank, "done": art.done}), flush=True)
"""


def launch(root: Path, world_size: int = 2):
    port = str(_free_port())
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        env.pop("SUBMITIT_EXECUTOR", None)
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(root)], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def results(procs):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_two_ranks_build_together_then_reuse(tmp_path):
    art = artifact_for(tmp_path, "train", {"x": 1})
    assert [r["done"] for r in results(launch(tmp_path))] == [True, True]
    assert sorted(p.name for p in art.path.glob("built-by-*")) == ["built-by-0", "built-by-1"]
    assert art.manifest()["stats"] == {"world_size": 2}
    stamp = art.manifest_path.stat().st_mtime_ns
    assert [r["done"] for r in results(launch(tmp_path))] == [True, True]  # second launch: nothing rebuilt
    assert art.manifest_path.stat().st_mtime_ns == stamp


def test_lock_held_by_another_job_makes_both_ranks_wait_and_reuse(tmp_path):
    art = artifact_for(tmp_path, "train", {"x": 1})
    art.path.mkdir(parents=True)
    lock = FileLock(str(art.path) + ".lock")
    lock.acquire()
    procs = launch(tmp_path)
    time.sleep(3)  # the ranks are up and waiting: rank 0 on the lock, rank 1 on rank 0's decision
    assert all(p.poll() is None for p in procs)
    art.manifest_path.write_text(json.dumps({"stats": {"by": "other job"}, "files": {}}))
    lock.release()
    assert [r["done"] for r in results(procs)] == [True, True]
    assert not list(art.path.glob("built-by-*"))  # neither rank trained
