"""Building envs from a suite: the top of the vector layer.

A ``Suite`` is data (``mtrl_bench.types``); these two functions turn it into envs:

- ``make_env(suite, split, ...)``: a vector env over the tasks of a split -- a
  ``MultiTaskVectorEnv`` (or ``AsyncMultiTaskVectorEnv``) for numpy-backend suites, a
  ``JaxVectorEnv`` for JAX suites; all meet one contract (``tests/test_suite_contracts.py``).
- ``make_single_env(suite, task)``: one task as a plain ``gymnasium.Env`` (what ``check_env`` and
  single-task agents use).

The imports point one way: ``types`` <- ``vector`` <- ``jax_vector`` <- ``make``. JAX is imported
only when a JAX suite is built, so numpy-backend users never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import gymnasium as gym
import numpy as np

from mtrl_bench.errors import UsageError, require_positive
from mtrl_bench.types import EVAL_SEED_OFFSET, Suite, Task, load_attr
from mtrl_bench.vector import AsyncMultiTaskVectorEnv, MultiTaskVectorEnv

if TYPE_CHECKING:
    from mtrl_bench.jax_vector import JaxVectorEnv


def make_single_env(suite: Suite, task: Task | int) -> gym.Env:
    """One env for one task of ``suite`` (a ``Task`` or its index); no autoreset."""
    task = suite.tasks[task] if isinstance(task, int) else task
    if suite.backend == "jax":  # env_factory is f(suite) -> JaxEnv, built once per suite
        from mtrl_bench.jax_vector import JaxSingleEnv, suite_env

        return JaxSingleEnv(suite_env(suite), task)
    return load_attr(suite.env_factory)(task, suite)


def make_env(
    suite: Suite,
    split: str,
    *,
    envs_per_task: int = 1,
    seed: int = 0,
    vector: Literal["auto", "sync", "async"] = "auto",
) -> MultiTaskVectorEnv | AsyncMultiTaskVectorEnv | JaxVectorEnv:
    """A vector env over the tasks of ``split``; env ``j`` of task ``t`` sits at
    ``t_pos * envs_per_task + j``. The first ``reset()`` without a seed uses ``seed``.
    ``vector`` (numpy backend): ``"async"`` steps the envs in worker processes, ``"auto"``
    does so when there are at least ``options["async_from_envs"]`` envs (same rollouts)."""
    require_positive("envs_per_task", envs_per_task)
    if vector not in ("auto", "sync", "async"):
        raise UsageError(f"vector must be 'auto', 'sync' or 'async', got {vector!r}")
    if seed < 0 or seed >= EVAL_SEED_OFFSET * 2:
        raise UsageError(f"seed must be in [0, {2 * EVAL_SEED_OFFSET}), got {seed}")
    tasks = suite.split_tasks(split)
    task_ids = np.repeat([t.index for t in tasks], envs_per_task)
    if suite.backend == "jax":  # same layout, seeds and contract (mtrl_bench.jax_vector)
        from mtrl_bench.jax_vector import JaxVectorEnv, suite_env

        if vector == "async":
            raise UsageError(f"vector='async' needs a numpy-backend suite; {suite.id} is jax")
        subs = [t for t in tasks for _ in range(envs_per_task)]
        return JaxVectorEnv(suite_env(suite), subs, task_ids, seed=seed)
    fns = [(lambda t=t: make_single_env(suite, t)) for t in tasks for _ in range(envs_per_task)]
    threshold = suite.options.get("async_from_envs")
    if vector == "async" or (vector == "auto" and threshold and len(fns) >= threshold):
        return AsyncMultiTaskVectorEnv(fns, task_ids, seed=seed)
    return MultiTaskVectorEnv(fns, task_ids, seed=seed)
