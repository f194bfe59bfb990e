"""mtrl_bench: a benchmark suite for multi-task and transfer reinforcement learning.

Importing this package is cheap on purpose: it pulls in neither JAX, torch nor MuJoCo
(``make_env`` and ``make_single_env`` are resolved on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtrl_bench.make import make_env, make_single_env

__version__ = "0.1.0"
__all__ = ["make_env", "make_single_env"]


def __getattr__(name: str) -> Any:
    # ``make_env`` / ``make_single_env`` load gymnasium; resolve them on first use so that
    # ``mtrl list`` (which imports this package) stays fast.
    if name in __all__:
        from mtrl_bench import make

        return getattr(make, name)
    raise AttributeError(f"module 'mtrl_bench' has no attribute {name!r}")
