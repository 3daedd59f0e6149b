"""State shared by the fake Slurm commands in this folder (sbatch, srun, sacct, scancel).

Put this folder first on PATH and set FAKE_SLURM_DIR to a scratch folder: `sbatch` records every submitted script
there and runs its tasks on this machine, one after the other, in a detached background process (sbatch itself
returns at once, as the real one does: submitit writes the array pickles only after sbatch has answered).

    $FAKE_SLURM_DIR/last_id                  the last job id handed out
    $FAKE_SLURM_DIR/jobs/<id>/script.sh      the submitted batch script, as sbatch read it
    $FAKE_SLURM_DIR/jobs/<id>/job.json       {"id", "options" (the #SBATCH lines + CLI options), "tasks", "cwd"}
    $FAKE_SLURM_DIR/jobs/<id>/<task>.state   PENDING, RUNNING, COMPLETED, FAILED or CANCELLED (task "-" if no array)
    $FAKE_SLURM_DIR/jobs/<id>/<task>.exit    the batch script's exit code, once it ended
    $FAKE_SLURM_DIR/jobs/<id>/<task>.pid     the process (group) running it, for scancel
Only the Python standard library is used: the fakes run under whatever `python3` is on PATH.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

NO_ARRAY = "-"  # the task name of a job that is not an array


def state_dir() -> Path:
    d = Path(os.environ.get("FAKE_SLURM_DIR") or Path(tempfile.gettempdir()) / "fake_slurm")
    (d / "jobs").mkdir(parents=True, exist_ok=True)
    return d


def job_dir(job_id: str) -> Path:
    return state_dir() / "jobs" / job_id


def new_job_id(count: int) -> int:
    """Hand out `count` consecutive ids (an array's tasks get ids of their own, as in Slurm); returns the first."""
    with open(state_dir() / "last_id", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # concurrent sbatch calls never share an id
        f.seek(0)
        last = int(f.read().strip() or 1000)
        f.seek(0)
        f.truncate()
        f.write(str(last + count))
        return last + 1


def read_job(job_id: str) -> Optional[dict]:
    path = job_dir(job_id) / "job.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write_file(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # readers (sacct) never see half a file


def get_state(job_id: str, task: str) -> str:
    path = job_dir(job_id) / f"{task}.state"
    return path.read_text().strip() if path.is_file() else "PENDING"


def set_state(job_id: str, task: str, state: str) -> None:
    write_file(job_dir(job_id) / f"{task}.state", state)


def parse_array(spec: str) -> List[str]:
    """'0-3%2' or '1,4-5' -> ['0', '1', '2', '3'] / ['1', '4', '5'] (the %N throttle is moot: tasks run in turn)."""
    tasks: List[str] = []
    for part in spec.split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        tasks += [str(i) for i in range(int(lo), int(hi or lo) + 1)]
    return tasks


def fill(pattern: str, env: Dict[str, str]) -> str:
    """Slurm's file name patterns: %A array job id, %a array index, %j job id, %t task rank, %N node, %% a '%'."""
    values = {"A": env.get("SLURM_ARRAY_JOB_ID", env.get("SLURM_JOB_ID", "")),
              "a": env.get("SLURM_ARRAY_TASK_ID", "4294967294"),  # what Slurm writes outside an array
              "j": env.get("SLURM_JOB_ID", ""), "t": env.get("SLURM_PROCID", "0"),
              "N": env.get("SLURMD_NODENAME", "localhost"), "x": env.get("SLURM_JOB_NAME", ""), "%": "%"}
    return re.sub(r"%([AajtNx%])", lambda m: values[m.group(1)], pattern)
