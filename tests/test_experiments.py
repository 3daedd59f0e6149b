"""Every experiment file composes, with every value of its sweep grid, against the structured schema."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

import ifforge.__main__ as entry

EXPERIMENTS = sorted(str(p.relative_to(Path(entry.CONF_DIR) / "experiment").with_suffix(""))
                     for p in (Path(entry.CONF_DIR) / "experiment").rglob("*.yaml"))


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=entry.CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_for_every_grid_value(experiment):
    cfg = _compose([f"experiment={experiment}"])
    params = OmegaConf.to_container(cfg.hydra.sweeper.params) if cfg.hydra.sweeper.get("params") else {}
    assert experiment == "demo" or params, f"{experiment} carries no sweep grid"
    for key, values in params.items():
        for value in str(values).split(","):
            job = _compose([f"experiment={experiment}", f"{key}={value}"])
            with open_dict(job):
                del job["hydra"]
            OmegaConf.resolve(job)  # every interpolation resolves
            assert job.experiment == experiment
