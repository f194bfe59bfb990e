"""Baselines and reference points: random policy, SB3 adapters."""
