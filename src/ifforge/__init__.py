"""ifforge: instruction-following data generation, training and evaluation from Hydra configs."""

__version__ = "0.1.0"
