"""`hydra/launcher=slurm`: a sweep goes through the real submitit Slurm path (sbatch, srun inside the job, sacct
polling, result pickles) with the fake Slurm commands of tests/helpers/fake_slurm first on PATH, and the #SBATCH
lines ask for the resources of the job's heaviest stage."""

import os
import time
from pathlib import Path

import pytest
import yaml

from ifforge.config import SlurmConfig
from tests.helpers.cli import openai_args, run_cli

FAKE_SLURM = Path(__file__).resolve().parents[1] / "helpers" / "fake_slurm"
LAUNCHERS = Path(__file__).resolve().parents[2] / "launchers"
DEFAULTS = SlurmConfig().resources  # the per-stage resources of src/ifforge/config.py


def sbatch_options(script: str) -> dict:
    """`#SBATCH --key=value` lines -> {key: value} (True for a bare flag)."""
    opts = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, eq, value = line[len("#SBATCH --"):].partition("=")
            opts[key] = value if eq else True
    return opts


def final_state(state_file: Path, timeout: float = 10) -> str:
    """The fake scheduler records a task's end just after its process exits: wait that long at most."""
    deadline = time.monotonic() + timeout
    while state_file.read_text() in ("PENDING", "RUNNING") and time.monotonic() < deadline:
        time.sleep(0.1)
    return state_file.read_text()


def test_sweep_runs_through_submitit_slurm(tmp_path, openai_server):
    (tmp_path / "a.jsonl").write_text('{"instruction": "Say hello in French."}\n{"instruction": "Name a prime."}\n')
    (tmp_path / "b.jsonl").write_text('{"instruction": "Count to three."}\n')
    sweep, state = tmp_path / "sweep", tmp_path / "slurm"
    env = {"PATH": f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_DIR": str(state),
           "OPENAI_API_KEY": "k"}
    proc = run_cli(["-m", "hydra/launcher=slurm", "stages=[build]", "seeds=jsonl",
                    f"seeds.path={tmp_path / 'a.jsonl'},{tmp_path / 'b.jsonl'}", *openai_args(openai_server.url),
                    "slurm.partition=gpu", "slurm.account=acct", "slurm.resources.build.timeout_min=30",
                    f"hydra.sweep.dir={sweep}"], tmp_path, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # One sbatch call: an array of the 2 jobs.
    jobs = sorted((state / "jobs").iterdir())
    assert len(jobs) == 1
    job_id = jobs[0].name
    opts = sbatch_options((jobs[0] / "script.sh").read_text())
    build = DEFAULTS["build"]
    assert opts["partition"] == "gpu" and opts["account"] == "acct" and "qos" not in opts
    assert opts.get("gpus-per-node", "0") == "0" and "gres" not in opts and "gpus" not in opts  # CPUs only
    assert opts["cpus-per-task"] == str(build.cpus_per_task)
    assert opts["mem"] == f"{build.mem_gb}GB"
    assert opts["time"] == "30"  # minutes, from slurm.resources.build.timeout_min
    assert opts["nodes"] == "1" and opts["ntasks-per-node"] == "1"
    assert opts["array"] == "0-1%2"
    assert opts["job-name"] == "ifforge-build"
    assert "srun" in (jobs[0] / "script.sh").read_text()  # submitit starts its tasks through srun

    # Each array task ran submitit's job runner under Slurm's environment and reported COMPLETED.
    for i in range(2):
        assert final_state(jobs[0] / f"{i}.state") == "COMPLETED"
        task_dir = sweep / ".submitit" / f"{job_id}_{i}"
        assert f"job_id={job_id}_{i}," in (task_dir / f"{job_id}_{i}_0_log.out").read_text()
        assert (task_dir / f"{job_id}_{i}_0_result.pkl").is_file()
        assert (sweep / str(i) / "outputs.json").is_file()
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert len(summary) == 3 and all(row.endswith(",ok") for row in summary[1:])


@pytest.mark.parametrize("stages, heaviest", [("[build,train]", "train"), ("[build,eval]", "eval")])
def test_launcher_resources_follow_the_heaviest_stage(tmp_path, stages, heaviest):
    # The example conf/local/default.yaml, selected from a search path so the repo's conf/local stays untouched.
    (tmp_path / "conf" / "local").mkdir(parents=True)
    (tmp_path / "conf" / "local" / "example.yaml").write_text((LAUNCHERS / "local.example.yaml").read_text())
    proc = run_cli(["--cfg", "all", "--resolve", "hydra/launcher=slurm", f"stages={stages}", "local=example",
                    f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "slurm.qos=high"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    launcher = yaml.safe_load(proc.stdout)["hydra"]["launcher"]
    want = DEFAULTS[heaviest]
    for key in ("nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "mem_gb", "timeout_min"):
        assert launcher[key] == getattr(want, key), key
    if heaviest == "train":
        assert launcher["gpus_per_node"] == 8 and launcher["tasks_per_node"] == 8  # one task per GPU
    else:
        assert launcher["gpus_per_node"] == 1 and launcher["tasks_per_node"] == 1
    assert (launcher["partition"], launcher["account"], launcher["qos"]) == ("gpu", "my-account", "high")
    assert launcher["name"] == f"ifforge-{heaviest}"
