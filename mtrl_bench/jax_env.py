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

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

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
    """Params of ``tasks`` stacked on a leading axis (for ``jax.vmap`` over tasks).

    ``env.params`` runs once per distinct task and the stack is a gather: a batch repeats a few
    tasks thousands of times (calling ``params`` per sub-env and stacking B arrays per leaf took
    114 s for 4096 signal-control sub-envs)."""
    keys: list[Any] = []
    for t in tasks:
        try:
            hash(t)
            keys.append(t)
        except TypeError:  # a task with unhashable kwargs: one params call per object
            keys.append(id(t))
    first: dict[Any, Task] = {}
    for k, t in zip(keys, tasks, strict=True):
        first.setdefault(k, t)
    slot = {k: i for i, k in enumerate(first)}
    index = np.asarray([slot[k] for k in keys], dtype=np.int32)
    unique = [env.params(t) for t in first.values()]
    return jax.tree.map(lambda *xs: jnp.stack(xs)[index], *unique)


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


def reset_slots(num_envs: int) -> int:
    """Default ``K`` of ``reset_done`` (sub-envs reset per round): ``ceil(sqrt(B) / 2)``.

    With ``n`` episodes ending in a step, the resets cost about ``ceil(n / K)`` rounds of ``K``
    resets plus a fixed cost per round (listing, gathering and writing back the sub-envs). The
    unused slots of the last round waste about ``K / 2`` resets, the rounds cost ``n / K`` fixed
    costs; their sum is least at ``K = sqrt(2 n fixed / reset)``, and ``n`` grows with ``B``
    (random actions end about 1 % of the MiniGrid MT3 episodes per step, a trained agent's
    several per cent), so ``K`` grows as ``sqrt(B)``: 32 at B = 4096, 64 at 16384 (the constant
    from ``benchmarks/env_throughput.py --slots``, which measures other values)."""
    return max(1, math.ceil(math.sqrt(num_envs) / 2))


def reset_done(
    reset: Any, keys: jax.Array, params: PyTree, done: jax.Array, obs: PyTree, state: PyTree,
    slots: int,
) -> tuple[PyTree, PyTree]:  # fmt: skip
    """``(obs, state)`` with sub-env ``i`` replaced by ``reset(keys[i], params[i])`` where
    ``done[i]`` (batched arrays, leading axis B), computing ``reset`` for ``slots`` sub-envs at a
    time ("optimistic resets"; ``vmap(reset)`` over all B costs B resets on every step).

    The finished sub-envs are listed (``nonzero``) and reset ``slots`` per round of a
    ``while_loop``: no round when none finished, more rounds when more than ``slots`` did (a
    burst costs its own size, not a stall or a fallback to all B). Every finished sub-env gets the
    reset of its own key, once: no layout is shared or reused, so the result is bit-identical to
    ``where(done, vmap(reset)(keys, params), ...)`` and the distribution is ``reset``'s own."""
    b = done.shape[0]
    slots = max(1, min(int(slots), b))
    rounds = -(-b // slots)
    order = jnp.nonzero(done, size=rounds * slots, fill_value=b)[0]  # done first, then b
    count = done.sum()

    def one_round(carry: tuple) -> tuple:
        r, obs, state = carry
        idx = jax.lax.dynamic_slice(order, (r * slots,), (slots,))
        take = jnp.minimum(idx, b - 1)  # unused slots compute sub-env b-1's reset, then drop it
        new_obs, new_state = jax.vmap(reset)(keys[take], jax.tree.map(lambda x: x[take], params))
        put = lambda old, new: old.at[idx].set(new, mode="drop")  # noqa: E731
        return r + 1, jax.tree.map(put, obs, new_obs), jax.tree.map(put, state, new_state)

    cond = lambda carry: carry[0] * slots < count  # noqa: E731
    _, obs, state = jax.lax.while_loop(cond, one_round, (jnp.int32(0), obs, state))
    return obs, state
