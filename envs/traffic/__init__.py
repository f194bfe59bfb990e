"""Contextual traffic suites (MBTL, Cho et al., NeurIPS 2024): SUMO reference backends and
pure-JAX backends of the same scenarios."""
