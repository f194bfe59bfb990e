"""Core contracts every suite, policy and agent meets at (docs/design.md, "Core types").

- ``Task``: an upstream environment id, verbatim, plus the stable ``index`` agents see.
- ``Suite``: a frozen, versioned value with fixed ``train`` / ``test`` splits. It is data: envs
  are built from it by ``mtrl_bench.make_env`` / ``make_single_env`` (``mtrl_bench/make.py``).
- ``Policy``: what the harness needs to evaluate anything (``act`` + ``reset``).
- ``Agent``: a policy that can also ``update``, ``save`` and ``load``.

Task identity is always passed explicitly as ``task_ids``; no suite puts it into observations.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from mtrl_bench.errors import UsageError

#: Evaluation env seeds are offset by this much, so they never meet training env seeds.
EVAL_SEED_OFFSET = 1_000_000_000
#: Sub-env ``i`` of a vector env built with base seed ``s`` is seeded with ``s * SEED_STRIDE + i``.
SEED_STRIDE = 10_000


def load_attr(path: str) -> Any:
    """Import ``"package.module:attr"`` lazily (the registry stores only such strings)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Task:
    name: str
    """Upstream environment id, verbatim (e.g. ``MiniGrid-DoorKey-6x6-v0``)."""
    index: int
    """Stable id within the suite; what agents see as ``task_ids``."""
    max_episode_steps: int
    """Episode limit of this task (truncation happens at this step)."""
    score_bounds: tuple[float, float] = (0.0, 1.0)
    """Returns ``(low, high)`` that map to normalised scores 0 and 1."""
    kwargs: tuple[tuple[str, Any], ...] = ()
    """Extra keyword arguments for the upstream constructor (hashable pairs)."""

    def normalize(self, episode_return: float) -> float:
        low, high = self.score_bounds
        return (float(episode_return) - low) / (high - low)


@dataclass(frozen=True)
class Suite:
    id: str
    """``family/name-vN``; the version changes whenever tasks, splits or normalisers change."""
    tasks: tuple[Task, ...]
    splits: Mapping[str, tuple[int, ...]]
    """Split name -> task indices. Fixed in code, never recomputed from a runtime seed."""
    env_factory: str
    """``"module:attr"`` of ``f(task, suite) -> gym.Env``: one task, ``info["success"]`` on
    every step. JAX backend: of ``f(suite) -> JaxEnv`` (``mtrl_bench.jax_env``)."""
    backend: Literal["numpy", "jax"] = "numpy"
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Reward / episode options that change results; recorded in every result record."""

    def __post_init__(self) -> None:
        indices = [t.index for t in self.tasks]
        if indices != list(range(len(self.tasks))):
            raise ValueError(f"{self.id}: task indices must be 0..{len(self.tasks) - 1}")
        for name, ids in self.splits.items():
            if not ids or any(i not in range(len(self.tasks)) for i in ids):
                raise ValueError(f"{self.id}: split {name!r} has bad task indices {ids}")
        object.__setattr__(self, "splits", MappingProxyType(dict(self.splits)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def max_episode_steps(self) -> int:
        return max(t.max_episode_steps for t in self.tasks)

    def split_tasks(self, split: str) -> tuple[Task, ...]:
        if split not in self.splits:
            raise UsageError(
                f"unknown split {split!r} for suite {self.id}; allowed: {', '.join(self.splits)}"
            )
        return tuple(self.tasks[i] for i in self.splits[split])

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)


@runtime_checkable
class Policy(Protocol):
    """All the harness needs. ``obs`` is the batched observation of a ``MultiTaskVectorEnv``,
    ``task_ids`` the int array of task indices; returns a batch of actions."""

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray: ...

    def reset(self, mask: np.ndarray) -> None:
        """Forget per-episode memory for the envs where ``mask`` is True."""
        ...


@runtime_checkable
class Agent(Policy, Protocol):
    """A policy that learns. Training loops live with each algorithm, not in a base class."""

    def update(self, batch: Any) -> Mapping[str, float]: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path, suite: Suite) -> Agent: ...


@dataclass(frozen=True)
class AgentSpec:
    """What the registry resolves an agent id to: a config type, its presets and two functions.

    ``train(config, suite, seed, run_dir, steps, progress)`` trains for ``steps`` env steps
    (resuming from checkpoints in ``run_dir.ckpt_dir``, a ``results.RunDir``) and returns the
    trained policy; ``load(path, suite)`` rebuilds it from the run directory at ``path``.
    """

    id: str
    config_cls: type
    presets: Mapping[str, Any]
    train: Callable[..., Policy]
    load: Callable[[Path, Suite], Policy]
    description: str = ""
    adapt: Callable[..., Policy] | None = None
    """``adapt(policy, suite, split, steps, seed, run_dir, progress)``: the ``few_shot``
    protocol's adaptation on ``split`` within ``steps`` env steps; ``None``: not supported."""
    action_spaces: tuple[str, ...] = ("discrete", "continuous")
    """The action spaces it can act in: ``discrete`` (``Discrete``), ``continuous`` (``Box``)."""
    backends: tuple[str, ...] = ("numpy", "jax")
    """The suite backends it trains on (``Suite.backend``); ``mtrl train`` refuses others."""
    jax_trainer: Callable[..., tuple[Callable, Callable]] | None = None
    """For the ``transfer`` protocol (JAX suites): ``jax_trainer(config, env, steps, contexts,
    max_steps) -> (train, evaluate)``, pure functions it ``vmap``s over runs. ``train(key,
    env_params, context) -> (policy_params, episode return per update)`` trains one policy for
    ``steps`` env steps on ``contexts`` contexts (their ``JaxEnv`` params, leading axis
    ``contexts``, and normalised values); ``evaluate(policy_params, env_params, context, key) ->
    (return, success)`` plays one greedy episode of at most ``max_steps`` steps on one context.
    ``None``: no transfer matrices (``agents/transfer_ppo.py`` is the example)."""
