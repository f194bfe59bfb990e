"""mtrl_bench: a benchmark suite for multi-task and transfer reinforcement learning.

Importing this package is cheap on purpose: it pulls in neither JAX, torch nor MuJoCo.
"""

__version__ = "0.1.0"
