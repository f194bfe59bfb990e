"""Agents: one algorithm per file (docs/design.md, "Agents").

MOORE, MTPPO, MoE and PCGrad land with the MiniGrid agents issue.
"""
