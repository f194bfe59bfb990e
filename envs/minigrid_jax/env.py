"""The functional JAX env of a MiniGrid suite (``mtrl_bench.jax_env.JaxEnv``, docs/design.md).

One ``MiniGridJax`` serves all tasks of a suite: grids are padded to the static ``size`` (the
largest width / height over the tasks), and a task is the data in its ``TaskParams``, so a batch
mixing tasks is one ``jax.vmap`` of ``step``. Dynamics and observation are ``core`` (equal to
minigrid 3.2.0 step for step); episode starts come from ``generators.generate`` (same
distribution as minigrid's ``_gen_grid``, not the same random stream). ``step`` autoresets
SAME_STEP with the step's ``key``: on ``terminated | truncated`` the returned obs and state are a
fresh episode's and ``info["final_obs"]`` is the last observation of the finished one.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import jax
import jax.numpy as jnp
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import numpy as np

from mtrl_bench.types import Suite, Task

from . import core
from .layout import Layout, TaskParams

Info = dict[str, jax.Array]
StepOut = tuple[jax.Array, core.State, jax.Array, jax.Array, jax.Array, Info]


def _task_params(task: Task) -> TaskParams:
    env = gym.make(task.name, **dict(task.kwargs))
    try:
        params = core.task_params(env)
    finally:
        env.close()
    if int(params.max_steps) != task.max_episode_steps:
        raise ValueError(
            f"{task.name}: minigrid max_steps is {int(params.max_steps)}, the task says "
            f"{task.max_episode_steps}"
        )
    return params


def reset_from_layout(layout: Layout, params: TaskParams) -> tuple[jax.Array, core.State]:
    """``(obs, state)`` of an episode starting from ``layout`` (what ``reset`` returns)."""
    state = core.init_state(layout)
    return core.observe(state, params), state


def step_autoreset(
    state: core.State, action: jax.Array, params: TaskParams, reset_obs: jax.Array,
    reset_state: core.State,
) -> StepOut:  # fmt: skip
    """One step; if the episode ends, obs and state are replaced by ``(reset_obs,
    reset_state)`` (SAME_STEP) and ``info["final_obs"]`` keeps the episode's last obs."""
    state, reward, terminated, truncated, success = core.step(state, action, params)
    obs = core.observe(state, params)
    done = terminated | truncated
    state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
    info = {"success": success, "final_obs": obs}
    return jnp.where(done, reset_obs, obs), state, reward, terminated, truncated, info


class MiniGridJax:
    """``JaxEnv`` over ``tasks`` (gymnasium MiniGrid ids of the families in ``layout``); the
    grid size is fixed by them, other tasks that fit it are accepted by ``params``."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            raise ValueError("MiniGridJax needs at least one task")
        self._params = {(t.name, t.kwargs): _task_params(t) for t in tasks}
        #: Static grid side: every task's grid is padded with walls to ``size x size``.
        self.size = max(max(int(p.width), int(p.height)) for p in self._params.values())
        self.observation_space = gym.spaces.Box(0, 255, (core.VIEW, core.VIEW, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(7)

    def params(self, task: Task) -> TaskParams:
        """The task's ``TaskParams`` (int32 scalars; same structure for every task)."""
        key = (task.name, task.kwargs)
        if key not in self._params:
            params = _task_params(task)
            if max(int(params.width), int(params.height)) > self.size:
                raise ValueError(f"{task.name} does not fit the {self.size}x{self.size} grid")
            self._params[key] = params
        return self._params[key]

    def reset(self, key: jax.Array, params: TaskParams) -> tuple[jax.Array, core.State]:
        from .generators import generate  # written separately; imported only when resetting

        return reset_from_layout(generate(key, params, self.size), params)

    def step(
        self, key: jax.Array, state: core.State, action: jax.Array, params: TaskParams
    ) -> StepOut:
        return step_autoreset(state, action, params, *self.reset(key, params))

    def step_env(
        self, key: jax.Array, state: core.State, action: jax.Array, params: TaskParams
    ) -> StepOut:
        """``step`` without its autoreset (``jax_env``'s optional method)."""
        state, reward, terminated, truncated, success = core.step(state, action, params)
        obs = core.observe(state, params)
        return obs, state, reward, terminated, truncated, {"success": success, "final_obs": obs}


def make_suite_env(suite: Suite) -> MiniGridJax:
    """``f(suite) -> JaxEnv`` of the JAX MiniGrid suites (their ``env_factory``)."""
    return MiniGridJax(suite.tasks)
