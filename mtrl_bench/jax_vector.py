"""Gymnasium views of a functional ``JaxEnv``, what ``make_env`` gives JAX suites (docs/design.md).

- ``JaxVectorEnv``: a ``gymnasium.vector.VectorEnv`` over stacked per-sub-env params with the exact
  contract of the numpy ``MultiTaskVectorEnv`` (``task_ids``, ``info["success"]``, SAME_STEP
  autoreset with ``info["final_obs"]`` / ``info["_final_obs"]``, numpy observations, float64
  rewards). Each ``reset`` / ``step`` is one jitted ``vmap`` call plus one host transfer.
- ``JaxSingleEnv``: one task as a plain ``gymnasium.Env`` (no autoreset; ``check_env`` passes).

Seeding mirrors the numpy backend: on a seeded reset, sub-env ``i`` gets the threefry key whose
64-bit data *is* its sub-seed ``seed * SEED_STRIDE + i``, so distinct sub-seeds give distinct keys
and evaluation keys (base ``EVAL_SEED_OFFSET + seed``) never equal training keys. (Not
``jax.random.key(sub_seed)``: without x64 it silently drops the high 32 bits.) Each reset / step
splits a sub-env's carried key, so sub-env ``i``'s randomness depends only on ``(seed, i)``.

Jitted functions are cached per env object (``jax.jit`` then caches one executable per batch
size), so many adapters of one env compile once per batch size. The cache keeps its envs alive;
suites build their env once (``suite_env``), so this holds one entry per suite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mtrl_bench.jax_env import JaxEnv, PyTree, reset_done, reset_slots, stack_params
from mtrl_bench.types import SEED_STRIDE, Suite, Task, load_attr
from mtrl_bench.vector import reset_seed


def seed_keys(sub_seeds: np.ndarray) -> jax.Array:
    """Typed threefry keys whose data is the 64-bit seed itself: ``(seed >> 32, seed & (2**32-1))``,
    what ``jax.random.key(seed)`` gives with x64 on (injective, unlike it without x64)."""
    sub_seeds = np.asarray(sub_seeds, dtype=np.uint64)
    data = np.stack([sub_seeds >> np.uint64(32), sub_seeds & np.uint64(0xFFFFFFFF)], axis=-1)
    return jax.random.wrap_key_data(data.astype(np.uint32), impl="threefry2x32")


def env_keys(seed: int, num_envs: int) -> jax.Array:
    """Keys of sub-envs 0..num_envs-1 for base ``seed``: sub-seeds ``seed * SEED_STRIDE + i``."""
    base = np.uint64(seed) * np.uint64(SEED_STRIDE)
    return seed_keys(base + np.arange(num_envs, dtype=np.uint64))


class Step(NamedTuple):
    keys: jax.Array
    state: PyTree
    obs: PyTree
    rewards: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    success: jax.Array
    final_obs: PyTree


class _Fns(NamedTuple):
    reset: Callable[..., tuple[jax.Array, PyTree, PyTree]]  # (keys, params) -> keys, obs, state
    step: Callable[..., Step]  # (keys, state, actions, params) -> Step


_FNS: dict[int, tuple[JaxEnv, _Fns]] = {}


def reset_one(env: JaxEnv, key: jax.Array, params: PyTree) -> tuple[jax.Array, PyTree, PyTree]:
    """One sub-env's reset under the key scheme of the module docstring: ``(key, obs, state)``.
    Jitted training loops ``vmap`` this (and use ``vector_step``) to stay step-for-step equal to a
    ``JaxVectorEnv`` built with the same seed."""
    key, sub = jax.random.split(key)
    obs, state = env.reset(sub, params)
    return key, obs, state


def step_one(env: JaxEnv, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree) -> Step:
    key, sub = jax.random.split(key)
    obs, state, reward, terminated, truncated, info = env.step(sub, state, action, params)
    return Step(key, state, obs, reward, terminated, truncated, info["success"],
                info["final_obs"])  # fmt: skip


def vector_step(env: JaxEnv, keys: jax.Array, state: PyTree, actions: jax.Array,
                params: PyTree, *, slots: int | None = None) -> Step:  # fmt: skip
    """``vmap(step_one)`` over sub-envs. For envs with the optional ``step_env`` (the step
    without its autoreset), the same result, bit for bit, but resets are computed only for the
    sub-envs whose episode ended, ``slots`` at a time (``jax_env.reset_done``; default
    ``jax_env.reset_slots(B)``): with no episode end a step computes no reset at all, and at
    batch 4096 a step resets about 128 sub-envs instead of 4096."""
    if not hasattr(env, "step_env"):
        return jax.vmap(partial(step_one, env))(keys, state, actions, params)
    split = jax.vmap(jax.random.split)(keys)
    keys, subs = split[:, 0], split[:, 1]
    obs, stepped, reward, terminated, truncated, info = jax.vmap(env.step_env)(
        subs, state, actions, params
    )
    done = terminated | truncated
    slots = reset_slots(done.shape[0]) if slots is None else slots
    new_obs, new_state = reset_done(env.reset, subs, params, done, obs, stepped, slots)
    return Step(keys, new_state, new_obs, reward, terminated, truncated, info["success"], obs)


def _jitted(env: JaxEnv) -> _Fns:
    """One jitted ``vmap`` of ``reset`` and of ``step`` per env object (see module docstring)."""
    if (hit := _FNS.get(id(env))) is not None and hit[0] is env:
        return hit[1]

    fns = _Fns(jax.jit(jax.vmap(partial(reset_one, env))), jax.jit(partial(vector_step, env)))
    _FNS[id(env)] = (env, fns)
    return fns


_SUITE_ENVS: dict[str, tuple[Suite, JaxEnv]] = {}


def suite_env(suite: Suite) -> JaxEnv:
    """The suite's one ``JaxEnv`` (``load_attr(suite.env_factory)(suite)``), built once per suite.

    Keyed by ``suite.id`` and checked with ``==`` (a ``Suite`` is unhashable: its ``splits`` and
    ``options`` are mapping proxies), so a different suite under a reused id gets its own env."""
    if (hit := _SUITE_ENVS.get(suite.id)) is None or hit[0] != suite:
        hit = _SUITE_ENVS[suite.id] = (suite, load_attr(suite.env_factory)(suite))
    return hit[1]


def _to_numpy(tree: PyTree, space: gym.Space) -> PyTree:
    """Writable numpy copies in the space's dtype(s) (``np.asarray`` of jax arrays is read-only)."""
    if isinstance(space, gym.spaces.Dict):
        return {k: _to_numpy(tree[k], s) for k, s in space.spaces.items()}
    return np.array(tree, dtype=space.dtype)


def _index(tree: PyTree, i: int) -> PyTree:
    return jax.tree.map(lambda x: x[i].copy(), tree)


def _random_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2 * 10**9))  # inside make_env's allowed seed range


class _SubEnvView:
    """Stands in for ``envs[i]`` of the numpy backend (SB3's ``get_attr`` / ``env_method``): the
    spaces, ``render_mode = None`` and the task id; other attributes come from the ``JaxEnv``.
    ``set_wrapper_attr`` only stores on the view: it cannot change the compiled simulation."""

    render_mode = None
    spec = None

    def __init__(self, venv: JaxVectorEnv, index: int) -> None:
        self.venv, self.index, self.task_id = venv, index, int(venv.task_ids[index])
        self.observation_space = venv.single_observation_space
        self.action_space = venv.single_action_space

    def get_wrapper_attr(self, name: str) -> Any:
        return getattr(self, name) if hasattr(self, name) else getattr(self.venv.jax_env, name)

    def set_wrapper_attr(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def close(self) -> None:
        pass


class JaxVectorEnv(VectorEnv):
    """Sub-env ``i`` runs ``tasks[i]`` (``task_ids[i]``); see the module docstring for the rest."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self, env: JaxEnv, tasks: Sequence[Task], task_ids: np.ndarray | None = None, *,
        seed: int | None = 0,
    ) -> None:  # fmt: skip
        task_ids = [t.index for t in tasks] if task_ids is None else task_ids
        if len(tasks) != len(task_ids):
            raise ValueError(f"{len(tasks)} tasks but {len(task_ids)} task ids")
        self.jax_env, self.num_envs = env, len(tasks)
        self.task_ids = np.asarray(task_ids, dtype=np.int64)
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.params = stack_params(env, tasks)
        self._fns = _jitted(env)
        self._keys: jax.Array | None = None
        self._state: PyTree = None
        self._initial_seed = seed
        self.envs = [_SubEnvView(self, i) for i in range(self.num_envs)]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if options:
            raise ValueError(f"JaxVectorEnv.reset takes no options, got {options}")
        if (seed := reset_seed(self, seed)) is not None:
            self._keys = env_keys(seed, self.num_envs)
        elif self._keys is None:  # never seeded: fresh entropy, like an unseeded numpy env
            self._keys = env_keys(_random_seed(np.random.default_rng()), self.num_envs)
        self._keys, obs, self._state = self._fns.reset(self._keys, self.params)
        info = {"success": np.zeros(self.num_envs, dtype=bool)}
        return _to_numpy(obs, self.observation_space), info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = np.asarray(actions, dtype=self.single_action_space.dtype)
        out = self._fns.step(self._keys, self._state, actions, self.params)
        self._keys, self._state = out.keys, out.state
        # One transfer for everything (final_obs too: cheaper than a second round trip).
        host = jax.device_get(out._replace(keys=None, state=None))
        terminated, truncated = np.array(host.terminated, bool), np.array(host.truncated, bool)
        done = terminated | truncated
        info: dict[str, Any] = {"success": np.array(host.success, bool)}
        if done.any():
            final = _to_numpy(host.final_obs, self.observation_space)
            info["final_obs"] = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                info["final_obs"][i] = _index(final, i)
            info["_final_obs"] = done
        obs = _to_numpy(host.obs, self.observation_space)
        return obs, np.array(host.rewards, np.float64), terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self._state = self._keys = None


class JaxSingleEnv(gym.Env):
    """One task of a ``JaxEnv`` as a plain env: ``step`` does not autoreset; when an episode
    ends it returns the episode's last observation (the ``JaxEnv``'s ``info["final_obs"]``).
    Runs the batch-of-one functions of ``JaxVectorEnv`` (same compiled code, same key scheme:
    ``reset(seed=s)`` starts from the key of sub-seed ``s``)."""

    def __init__(self, env: JaxEnv, task: Task) -> None:
        self.jax_env, self.task = env, task
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self._vec = JaxVectorEnv(env, [task], seed=None)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None and self._vec._keys is None:
            seed = _random_seed(self.np_random)  # unseeded: follow gymnasium's np_random
        if seed is not None:
            self._vec._keys = seed_keys(np.array([seed]))
        obs, info = self._vec.reset(options=options)
        return _index(obs, 0), {"success": bool(info["success"][0])}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, rewards, terminated, truncated, info = self._vec.step(np.asarray(action)[None])
        done = bool(terminated[0] or truncated[0])
        obs = info["final_obs"][0] if done else _index(obs, 0)
        info = {"success": bool(info["success"][0])}
        return obs, float(rewards[0]), bool(terminated[0]), bool(truncated[0]), info

    def close(self) -> None:
        self._vec.close()
