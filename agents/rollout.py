"""On-policy rollouts for the JAX agents, on both suite backends (shared leaf; docs/design.md,
"Agents").

- ``jax_rollout``: on a JAX suite, ``steps`` vector steps as one ``lax.scan``, with the sub-env
  key scheme of ``jax_vector`` (``reset_one`` / ``vector_step``), so it sees exactly the episodes a
  ``make_env(suite, split, seed=seed)`` vector env gives for the same actions.
- ``python_rollout``: the same loop over any suite's vector env (CPU reference backends).

Both call ``policy_step(params, obs, key) -> (key, actions)`` once per step and return a
``Batch`` shaped ``(E, S, ...)`` plus per-env episode statistics ``(E, 3)``: sum of finished
episodes' returns, finished episodes, successful ones (success at any step of the episode).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mtrl_bench.jax_env import stack_params
from mtrl_bench.jax_vector import env_keys, reset_one, suite_env, vector_step
from mtrl_bench.types import Suite

PolicyStep = Callable[[Any, Any, jax.Array], tuple[jax.Array, Any]]


class Batch(NamedTuple):
    """One rollout, ``(E, S, ...)``: env-major, envs ordered task-major (as ``make_env``)."""

    obs: Any
    actions: Any
    rewards: Any
    terminated: Any
    dones: Any
    next_obs: Any
    """The observation after each step: the finished episode's last one where ``dones``."""


class EnvCarry(NamedTuple):
    """The JAX env side of a run (all of it is in checkpoints: exact resume)."""

    keys: jax.Array
    state: Any
    obs: jax.Array
    ep_return: jax.Array
    ep_success: jax.Array


def run_keys(seed: int, num_envs: int) -> tuple[jax.Array, jax.Array]:
    """The agent key and the env keys of a run; the env keys are those ``make_env`` gives its
    sub-envs for ``seed`` (``jax_vector.env_keys``), so both rollouts see the same episodes."""
    return jax.random.key(seed), env_keys(seed, num_envs)


def episode_stats(ep_return, ep_success, rewards, dones, success, xp=jnp):
    """Per-env ``(ep_return, ep_success, stats)`` after one step (``xp``: jnp or np)."""
    ep_return, ep_success = ep_return + rewards, ep_success | success
    stats = xp.stack([xp.where(dones, ep_return, 0.0), dones, dones & ep_success], -1)
    return xp.where(dones, 0.0, ep_return), ep_success & ~dones, stats


class JaxSuiteEnv(NamedTuple):
    """The vmapped env functions of a JAX suite for a fixed list of sub-env tasks."""

    reset: Callable[..., Any]
    step: Callable[..., Any]
    params: Any
    obs_dtype: Any
    """The observation space's dtype (what the suite's vector env returns)."""


def jax_suite_env(suite: Suite, task_ids: Any) -> JaxSuiteEnv:
    env = suite_env(suite)
    params = stack_params(env, [suite.tasks[int(i)] for i in task_ids])
    return JaxSuiteEnv(jax.vmap(partial(reset_one, env)), partial(vector_step, env), params,
                       env.observation_space.dtype)  # fmt: skip


def jax_reset(env: JaxSuiteEnv, keys: jax.Array) -> EnvCarry:
    keys, obs, state = env.reset(keys, env.params)
    zeros = jnp.zeros(keys.shape[0], jnp.float32)
    return EnvCarry(keys, state, obs.astype(env.obs_dtype), zeros, zeros > 0)


def jax_rollout(env: JaxSuiteEnv, policy_step: PolicyStep, params: Any, key: jax.Array,
                carry: EnvCarry, steps: int):  # fmt: skip
    """``steps`` steps of every sub-env: ``(key, carry, batch, stats)``."""

    def one(c, _):
        key, carry = c
        key, actions = policy_step(params, carry.obs, key)
        out = env.step(carry.keys, carry.state, actions, env.params)
        dones = out.terminated | out.truncated
        obs, final = out.obs.astype(env.obs_dtype), out.final_obs.astype(env.obs_dtype)
        next_obs = jnp.where(dones.reshape(-1, *[1] * (obs.ndim - 1)), final, obs)
        rewards = out.rewards.astype(jnp.float32)
        ep_return, ep_success, stats = episode_stats(
            carry.ep_return, carry.ep_success, rewards, dones, out.success
        )
        row = Batch(carry.obs, actions, rewards, out.terminated, dones, next_obs)
        return (key, EnvCarry(out.keys, out.state, obs, ep_return, ep_success)), (row, stats)

    (key, carry), (rows, stats) = jax.lax.scan(one, (key, carry), None, steps)
    return key, carry, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows), stats.sum(0)


def python_rollout(venv: Any, policy_step: PolicyStep, params: Any, key: jax.Array,
                   carry: dict[str, np.ndarray], steps: int):  # fmt: skip
    """The same rollout over a gymnasium vector env; ``carry``: ``obs``, ``ep_return``,
    ``ep_success`` (updated in place). Returns ``(key, batch, stats)``."""
    cols: list[list[np.ndarray]] = [[] for _ in Batch._fields]
    stats = np.zeros((venv.num_envs, 3))
    for _ in range(steps):
        key, actions = policy_step(params, carry["obs"], key)
        actions = np.asarray(actions)
        obs, rewards, terminated, truncated, info = venv.step(actions)
        rewards = rewards.astype(np.float32)
        dones = terminated | truncated
        next_obs = obs.copy()
        for i in np.flatnonzero(dones):
            next_obs[i] = info["final_obs"][i]
        carry["ep_return"], carry["ep_success"], row_stats = episode_stats(
            carry["ep_return"], carry["ep_success"], rewards, dones, info["success"], xp=np
        )
        stats += row_stats
        row = (carry["obs"], actions, rewards, terminated, dones, next_obs)
        for col, x in zip(cols, row, strict=True):
            col.append(x)
        carry["obs"] = obs
    return key, Batch(*(np.stack(col, 1) for col in cols)), stats


def python_reset(venv: Any, seed: int | None = None) -> dict[str, np.ndarray]:
    obs, _ = venv.reset(seed=seed)
    n = venv.num_envs
    return {"obs": obs, "ep_return": np.zeros(n, np.float32),
            "ep_success": np.zeros(n, bool)}  # fmt: skip


def episode_metrics(stats: Any, num_tasks: int) -> dict[str, Any]:
    """Summary of rollout ``stats`` ``(E, 3)`` (envs task-major): mean success over tasks, per-task
    success (``None`` where no episode finished) and the mean return of finished episodes."""
    per_task = np.asarray(stats).reshape(num_tasks, -1, 3).sum(1)
    finished = per_task[:, 1]
    success = [float(s / f) if f else None for s, f in zip(per_task[:, 2], finished, strict=True)]
    rate = [s for s in success if s is not None]
    return {
        "success": float(np.mean(rate)) if rate else None, "task_success": success,
        "episode_return": float(per_task[:, 0].sum() / finished.sum()) if finished.sum() else None,
    }  # fmt: skip
