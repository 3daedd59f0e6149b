"""Run the real `ifforge` entrypoint in a subprocess, the way a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from tests.helpers.data import REPO


def run_cli(args: List[str], tmp_path: Path, env: Optional[Dict[str, str]] = None, timeout: float = 600,
            check: bool = False) -> subprocess.CompletedProcess:
    """`python -m ifforge ARGS` with artifacts and the Hydra run dir under tmp_path (unless ARGS set them)."""
    full = list(args)
    if not any(a.startswith("paths.artifacts=") for a in full):
        full.append(f"paths.artifacts={tmp_path / 'artifacts'}")
    if not any(a.startswith("hydra.run.dir=") for a in full) and "-m" not in full and "--multirun" not in full:
        full.append(f"hydra.run.dir={tmp_path / 'run'}")
    e = dict(os.environ)
    e.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"})
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "ifforge", *full], cwd=REPO, env=e, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ifforge failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def outputs(tmp_path: Path) -> Dict[str, str]:
    return json.loads((tmp_path / "run" / "outputs.json").read_text())


def openai_args(url: str, model: str = "test-model", role: str = "generator") -> List[str]:
    return [f"{role}=openai", f"{role}.base_url={url}", f"{role}.model={model}", f"{role}.max_retries=2",
            f"{role}.timeout=10"]


def candidate_args(url: str, model: str = "cand") -> List[str]:
    """The model under test on an OpenAI-compatible endpoint (`candidate` is a node, not a group)."""
    return ["candidate.name=openai", f"candidate.base_url={url}", f"candidate.model={model}",
            "candidate.max_retries=2", "candidate.timeout=10"]
