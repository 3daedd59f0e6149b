"""`ifforge` / `python -m ifforge`: compose the Hydra config, then run the stages it asks for."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ifforge.config import register_configs
from ifforge.errors import UserError

# realpath: in the source tree src/ifforge/conf is a symlink to the top-level conf/; a wheel carries a copy.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")
log = logging.getLogger("ifforge")


def _resource(rel: str) -> str:
    return str(Path(__file__).resolve().parent / "resources" / rel)


def _heaviest_stage(stages: list) -> str:
    """The stage that sizes a Slurm job: train > eval > build."""
    return next((s for s in ("train", "eval", "build") if s in list(stages)), "build")


for _name, _fn in (("ifforge.resource", _resource), ("ifforge.heaviest_stage", _heaviest_stage)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
register_configs()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    from hydra.types import RunMode

    from ifforge.artifacts import write_json_atomic
    from ifforge.pipeline import run

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        outputs = run(cfg, run_dir=run_dir)
    except BaseException as e:
        # status.json lets a sweep summary show this job as failed, with its error, instead of missing.
        write_json_atomic(run_dir / "status.json", {"status": "failed", "error": f"{type(e).__name__}: {e}"[:2000]})
        if isinstance(e, UserError):
            print(f"ifforge: error: {e}", file=sys.stderr)  # one clear line instead of a traceback wall
            if hc.mode != RunMode.MULTIRUN:  # in a sweep, Hydra records the failure and the other jobs go on
                sys.exit(2)
        raise
    write_json_atomic(run_dir / "status.json", {"status": "ok"})
    tables = Path(outputs.get("eval", "")) / "tables.md"
    if "eval" in outputs and tables.is_file():  # the scores, laid out like the papers' tables
        print(tables.read_text(encoding="utf-8").strip() + "\n")
    for stage, path in outputs.items():
        print(f"{stage}: {path}")


def main() -> None:
    _app()


if __name__ == "__main__":
    main()
