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


if not OmegaConf.has_resolver("ifforge.resource"):
    OmegaConf.register_new_resolver("ifforge.resource", _resource)
register_configs()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    from ifforge.pipeline import run

    try:
        outputs = run(cfg, run_dir=Path(HydraConfig.get().runtime.output_dir))
    except UserError as e:
        # One clear line instead of a traceback wall; exit code 2 like a usage error.
        print(f"ifforge: error: {e}", file=sys.stderr)
        sys.exit(2)
    for stage, path in outputs.items():
        print(f"{stage}: {path}")


def main() -> None:
    _app()


if __name__ == "__main__":
    main()
