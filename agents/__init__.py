"""Agents: one algorithm per file (DESIGN §6).

MOORE, MTPPO, MoE and PCGrad land with the MiniGrid agents issue.
"""
