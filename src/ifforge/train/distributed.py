"""Multi-process training: which launch this process belongs to, the ranks' process group, DeepSpeed configs.

Supported launches (every rank runs the whole `ifforge` command; see launchers/accelerate/README.md):
- `torchrun` / `accelerate launch`: they export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT;
- Slurm through Hydra's submitit launcher with `tasks_per_node` = GPUs: submitit starts one task per GPU and
  describes it in its own variables (SLURM_PROCID...); `export_launch_env` turns them into the torch ones;
- one process (a single GPU or the CPU): nothing to do, except that DeepSpeed wants the torch variables too.
"""

from __future__ import annotations

import atexit
import os
import socket
from pathlib import Path
from typing import Any, Optional

from ifforge.errors import UserError

DEEPSPEED_CONFIGS = ("zero2", "zero3")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def export_launch_env() -> None:
    """Under a submitit job of several tasks, export the torch.distributed variables (unless a launcher did)."""
    if "RANK" in os.environ or not os.environ.get("SUBMITIT_EXECUTOR"):
        return
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks <= 1:
        return
    # submitit derives the port from the job id, so every task agrees on it. Variables a user set (say MASTER_PORT
    # in the sbatch script) are kept. CUDA_VISIBLE_DEVICES is untouched: each task sees the node's GPUs and picks
    # its own by LOCAL_RANK, as under torchrun.
    env = TorchDistributedEnvironment()
    for key, value in {"MASTER_ADDR": env.master_addr, "MASTER_PORT": env.master_port, "RANK": env.rank,
                       "WORLD_SIZE": env.world_size, "LOCAL_RANK": env.local_rank,
                       "LOCAL_WORLD_SIZE": env.local_world_size}.items():
        os.environ.setdefault(key, str(value))


def export_single_process_env() -> None:
    """DeepSpeed initialises torch.distributed even for one process: give it a world of one."""
    if "RANK" in os.environ:
        return
    os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"})
    os.environ.setdefault("MASTER_PORT", str(_free_port()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TorchProcessGroup:
    """`ifforge.artifacts.ProcessGroup` over torch.distributed (initialised here if no one has yet)."""

    def __init__(self) -> None:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend=backend)
            # Torn down before the interpreter is: a group left to its destructor at exit can abort the process
            # ("terminate called without an active exception"), and the launcher then reports a failed rank.
            atexit.register(_destroy_process_group)
        self._dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        self._dist.barrier()


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def process_group() -> Optional[TorchProcessGroup]:
    """The group of ranks training together, or None for a single process."""
    export_launch_env()
    if world_size() <= 1:
        return None
    return TorchProcessGroup()


# ------------------------------------------------------------------------------------------------ DeepSpeed


def launchers_dir() -> Optional[Path]:
    """launchers/ at the repository top (editable installs), or beside the package (a wheel that ships it)."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "launchers", here.parents[1] / "launchers"):
        if candidate.is_dir():
            return candidate
    return None


def deepspeed_config(setting: Optional[str]) -> Optional[str]:
    """`objective.deepspeed`: zero2 | zero3 | a JSON path -> the JSON path TrainingArguments takes."""
    if setting is None:
        return None
    if setting in DEEPSPEED_CONFIGS:
        root = launchers_dir()
        path = root / "deepspeed" / f"{setting}.json" if root is not None else None
        if path is None or not path.is_file():
            raise UserError(f"objective.deepspeed={setting}: launchers/deepspeed/{setting}.json is not installed "
                            "with this copy of ifforge; give the path of a DeepSpeed JSON config instead")
        return str(path)
    path = Path(setting).expanduser()
    if not path.is_file():
        raise UserError(f"objective.deepspeed={setting!r}: choose {' or '.join(DEEPSPEED_CONFIGS)}, "
                        "or give the path of a DeepSpeed JSON config")
    return str(path.resolve())


def check_deepspeed(setting: Optional[str]) -> None:
    if setting is None:
        return
    deepspeed_config(setting)
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise UserError("objective.deepspeed needs DeepSpeed: DS_BUILD_OPS=0 pip install --no-deps "
                        "--no-build-isolation deepspeed==0.19.8 (after einops hjson msgpack ninja py-cpuinfo)")
