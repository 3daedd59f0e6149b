"""Sweeps: the summary table a multirun ends in, and the Hydra callback that keeps it up to date."""
