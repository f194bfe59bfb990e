"""The functional JAX env contract (docs/design.md, "Core types"): the task is data in ``params``.

A JAX suite (``Suite.backend == "jax"``) has an ``env_factory`` ``"module:attr"`` of
``f(suite) -> JaxEnv``: one env object for the whole suite (static shapes, e.g. MiniGrid grids
padded to the suite's largest task), whose ``params(task)`` gives that task's parameters. All
tasks' params share one pytree structure and shapes, so ``stack_params`` + ``jax.vmap`` steps
a batch that mixes tasks with one compiled function.

``step`` autoresets in the SAME_STEP convention of the numpy backend: when an episode ends,
the returned ``obs`` and ``state`` already belong to the next episode (reset with the step's
``key``), and ``info["final_obs"]`` holds the episode's last observation (equal to ``obs``
when the episode did not end). ``info["success"]`` is the step's success flag.

Optional: ``step_env(key, state, action, params)``, the same step without the autoreset
(``step`` must equal it followed by ``reset(key, params)`` where the episode ended).
``jax_vector.vector_step`` then computes resets only on steps where some sub-env finished.

This module imports JAX; nothing in the registry or ``mtrl list`` imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import jax
import jax.numpy as jnp

from mtrl_bench.types import Task

PyTree = Any


@runtime_checkable
class JaxEnv(Protocol):
    observation_space: gym.Space
    """Single-env observation space (numpy dtypes), identical to the numpy backend's."""
    action_space: gym.Space
    """Single-env action space."""

    def params(self, task: Task) -> PyTree:
        """Unbatched parameters of one task (arrays only, same structure for every task)."""
        ...

    def reset(self, key: jax.Array, params: PyTree) -> tuple[jax.Array, PyTree]:
        """``(obs, state)`` of a fresh episode."""
        ...

    def step(
        self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree
    ) -> tuple[jax.Array, PyTree, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        """``(obs, state, reward, terminated, truncated, info)``, autoresetting SAME_STEP;
        ``info`` has ``success`` and ``final_obs``."""
        ...


def stack_params(env: JaxEnv, tasks: Sequence[Task]) -> PyTree:
    """Params of ``tasks`` stacked on a leading axis (for ``jax.vmap`` over tasks)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[env.params(t) for t in tasks])


def autoreset(step_out: tuple, reset_out: tuple[jax.Array, PyTree]) -> tuple:
    """SAME_STEP ``step`` from ``step_env``'s output and a fresh ``reset``: where the episode
    ended, the returned obs and state are the new episode's; ``info`` keeps ``success`` and adds
    ``final_obs``."""
    obs, state, reward, terminated, truncated, info = step_out
    reset_obs, reset_state = reset_out
    done = terminated | truncated
    state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
    info = {"success": info["success"], "final_obs": obs}
    return jnp.where(done, reset_obs, obs), state, reward, terminated, truncated, info
