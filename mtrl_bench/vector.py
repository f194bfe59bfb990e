"""The numpy-backend multi-task vector env: a real ``gymnasium.vector.VectorEnv``.

Contract (pinned by ``tests/test_suite_contracts.py``):

- ``task_ids``: int array, one entry per sub-env; never part of the observation.
- ``info["success"]``: bool array on every ``reset`` and ``step``; on the step that ends an
  episode it is that final step's flag (not the flag of the fresh episode).
- Autoreset is ``AutoresetMode.SAME_STEP`` (Meta-World's mode): when an episode ends, the
  returned observation is already the first one of the next episode; the last observation is in
  ``info["final_obs"][i]`` with ``info["_final_obs"][i] == True``.
- Seeding: sub-env ``i`` is seeded with ``base * SEED_STRIDE + i`` on a seeded reset; the
  first ``reset()`` without a seed uses the ``seed`` given at construction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from mtrl_bench.types import SEED_STRIDE


def reset_seed(env: VectorEnv, seed: int | None) -> int | None:
    """The base seed of this reset: ``seed`` if given, else the construction seed on the first
    reset only (``env._initial_seed``); seeds ``env.np_random`` when there is one."""
    if seed is None:
        seed = env._initial_seed
    env._initial_seed = None
    if seed is not None:
        env._np_random, env._np_random_seed = gym.utils.seeding.np_random(seed)
    return seed


class MultiTaskVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self, env_fns: Sequence[Callable[[], gym.Env]], task_ids: np.ndarray, *, seed: int = 0
    ) -> None:
        if len(env_fns) != len(task_ids):
            raise ValueError(f"{len(env_fns)} env factories but {len(task_ids)} task ids")
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.task_ids = np.asarray(task_ids, dtype=np.int64)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        for env in self.envs[1:]:
            if env.observation_space != self.single_observation_space:
                raise ValueError("all tasks of a suite must share one observation space")
            if env.action_space != self.single_action_space:
                raise ValueError("all tasks of a suite must share one action space")
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs = create_empty_array(self.single_observation_space, self.num_envs)
        self._initial_seed: int | None = seed

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seed = reset_seed(self, seed)
        observations = []
        for i, env in enumerate(self.envs):
            sub_seed = None if seed is None else seed * SEED_STRIDE + i
            obs, _ = env.reset(seed=sub_seed, options=options)
            observations.append(obs)
        self._obs = concatenate(self.single_observation_space, observations, self._obs)
        info = {"success": np.zeros(self.num_envs, dtype=bool)}
        return self._copy(self._obs), info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = list(gym.vector.utils.iterate(self.action_space, actions))
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        success = np.zeros(self.num_envs, dtype=bool)
        final_obs = np.full(self.num_envs, None, dtype=object)
        observations = []
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            obs, rewards[i], terminated[i], truncated[i], step_info = env.step(action)
            success[i] = bool(step_info["success"])
            if terminated[i] or truncated[i]:
                final_obs[i] = obs
                obs, _ = env.reset()
            observations.append(obs)
        self._obs = concatenate(self.single_observation_space, observations, self._obs)
        done = terminated | truncated
        info: dict[str, Any] = {"success": success}
        if done.any():
            info["final_obs"], info["_final_obs"] = final_obs, done
        return self._copy(self._obs), rewards, terminated, truncated, info

    def _copy(self, obs: Any) -> Any:
        return copy.deepcopy(obs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
