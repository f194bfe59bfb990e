"""Uniform random policy: the lower reference point of every table.

It ignores observations and task ids and samples from the suite's action space. Each ``act``
reseeds the space from numpy's global RNG, which ``evaluate`` seeds at the start of every
protocol (as every learned policy here draws its sampling keys), so each protocol's episodes
depend on the evaluation seed only: a run resumed between ``mt`` and ``zero_shot`` writes the same
records as an uninterrupted one. (Before 2026-12-05 the space kept one generator across the
protocols of a run, so a resumed run's second protocol differed.) "Training" writes nothing.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl_bench import make_single_env
from mtrl_bench.types import AgentSpec, Suite


@dataclass(frozen=True)
class Config:
    """The random policy has no hyperparameters."""


class RandomPolicy:
    def __init__(self, action_space: gym.Space, seed: int = 0) -> None:
        self.action_space = copy.deepcopy(action_space)  # own RNG, never a shared space's
        self.action_space.seed(seed)

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        self.action_space.seed(int(np.random.randint(2**31)))  # module docstring
        return np.stack([self.action_space.sample() for _ in range(len(task_ids))])

    def reset(self, mask: np.ndarray) -> None:
        pass


def load(run_dir: Path, suite: Suite) -> RandomPolicy:
    seed = json.loads((run_dir / "config.json").read_text())["seed"]
    return RandomPolicy(make_single_env(suite, suite.tasks[0]).action_space, seed)


def train(config: Config, suite: Suite, seed: int, run_dir: Path, steps: int, progress: bool):
    return RandomPolicy(make_single_env(suite, suite.tasks[0]).action_space, seed)


SPEC = AgentSpec(
    id="random", config_cls=Config, presets={"default": Config()}, train=train, load=load,
    description="uniform random actions",
)  # fmt: skip
