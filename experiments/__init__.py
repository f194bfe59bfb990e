"""Reproduction scripts that write ``results/``. Run them from the repository root as modules,
e.g. ``python -m experiments.minigrid_moore``, so that they import their shared helpers
(``experiments/sweep.py``) as package modules."""
