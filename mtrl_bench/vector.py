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

``AsyncMultiTaskVectorEnv`` meets the same contract with the sub-envs stepped in worker
processes: worker ``w`` hosts a contiguous block of sub-envs as a ``MultiTaskVectorEnv`` whose
seeds are offset by the block's start, so it gives exactly the sync rollout (a test pins this).
Workers are few (one per core by default, not one per env as in gymnasium's
``AsyncVectorEnv``: MT50 with 4 envs per task would otherwise start 200 processes) and started
with ``spawn`` (safe when JAX or torch threads run in the parent).
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

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
        self, env_fns: Sequence[Callable[[], gym.Env]], task_ids: np.ndarray, *,
        seed: int | None = 0, index_offset: int = 0,
    ) -> None:  # fmt: skip
        """``index_offset``: index of sub-env 0 in a larger vector env (its seeds start there)."""
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
        self._index_offset = index_offset

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seed = reset_seed(self, seed)
        observations = []
        for i, env in enumerate(self.envs):
            sub_seed = None if seed is None else seed * SEED_STRIDE + self._index_offset + i
            obs, _ = env.reset(seed=sub_seed, options=options)
            observations.append(obs)
        self._obs = concatenate(self.single_observation_space, observations, self._obs)
        info = {"success": np.zeros(self.num_envs, dtype=bool)}
        return self._copy(self._obs), info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = list(iterate(self.action_space, actions))
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


def _worker(conn: Connection, payload: bytes, index_offset: int) -> None:
    """Hosts a block of sub-envs; answers ``(ok, result)`` to each ``(command, data)``."""
    env = None
    try:
        fns = cloudpickle.loads(payload)
        env = MultiTaskVectorEnv(fns, np.zeros(len(fns)), seed=None, index_offset=index_offset)
        conn.send((True, (env.single_observation_space, env.single_action_space)))
        while True:
            command, data = conn.recv()
            if command == "close":
                break
            conn.send((True, env.reset(**data) if command == "reset" else env.step(data)))
    except (KeyboardInterrupt, EOFError):
        pass
    except Exception:  # the parent re-raises it with the worker's traceback
        conn.send((False, traceback.format_exc()))
    finally:
        if env is not None:
            env.close()
        conn.close()


class AsyncMultiTaskVectorEnv(VectorEnv):
    """``MultiTaskVectorEnv``'s contract, sub-envs stepped in ``num_workers`` processes."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self, env_fns: Sequence[Callable[[], gym.Env]], task_ids: np.ndarray, *,
        seed: int = 0, num_workers: int | None = None,
    ) -> None:  # fmt: skip
        if len(env_fns) != len(task_ids):
            raise ValueError(f"{len(env_fns)} env factories but {len(task_ids)} task ids")
        self.num_envs = len(env_fns)
        self.task_ids = np.asarray(task_ids, dtype=np.int64)
        workers = max(1, min(num_workers or os.cpu_count() or 1, self.num_envs))
        sizes = [self.num_envs // workers + (w < self.num_envs % workers) for w in range(workers)]
        self._bounds = np.cumsum([0, *sizes])
        ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs = []
        for start, stop in zip(self._bounds[:-1], self._bounds[1:], strict=True):
            parent, child = ctx.Pipe()
            payload = cloudpickle.dumps(list(env_fns[start:stop]))
            proc = ctx.Process(target=_worker, args=(child, payload, int(start)), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        spaces = self._gather()
        self.single_observation_space, self.single_action_space = spaces[0]
        if any(s != spaces[0] for s in spaces[1:]):
            raise ValueError("all tasks of a suite must share one observation and action space")
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._initial_seed: int | None = seed

    def _gather(self) -> list[Any]:
        results = []
        for conn in self._conns:
            ok, result = conn.recv()
            if not ok:
                self.close()
                raise RuntimeError(f"a vector env worker failed:\n{result}")
            results.append(result)
        return results

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seed = reset_seed(self, seed)
        for conn in self._conns:
            conn.send(("reset", {"seed": seed, "options": options}))
        results = self._gather()
        return _cat([obs for obs, _ in results]), {
            "success": np.concatenate([info["success"] for _, info in results])
        }

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        for conn, start, stop in zip(self._conns, self._bounds[:-1], self._bounds[1:], strict=True):
            conn.send(("step", actions[start:stop]))
        results = self._gather()
        obs = _cat([r[0] for r in results])
        rewards, terminated, truncated = (_cat([r[k] for r in results]) for k in (1, 2, 3))
        info: dict[str, Any] = {"success": np.concatenate([r[4]["success"] for r in results])}
        done = terminated | truncated
        if done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for (*_, part), start in zip(results, self._bounds[:-1], strict=True):
                if "final_obs" in part:
                    final_obs[start : start + len(part["final_obs"])] = part["final_obs"]
            info["final_obs"], info["_final_obs"] = final_obs, done
        return obs, rewards, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        for conn in self._conns:
            conn.close()


def _cat(parts: list[Any]) -> Any:
    """Concatenate the workers' batches (arrays, or dicts / tuples of them)."""
    if isinstance(parts[0], dict):
        return {k: _cat([p[k] for p in parts]) for k in parts[0]}
    if isinstance(parts[0], tuple):
        return tuple(_cat(list(x)) for x in zip(*parts, strict=True))
    return np.concatenate(parts)
