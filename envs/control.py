"""Contextual CartPole and Pendulum (CARL, Benjamins et al. 2023; MBTL, Cho et al., NeurIPS 2024).

One physics parameter of gymnasium's ``CartPole-v1`` / ``Pendulum-v1`` is the context; every
other parameter keeps gymnasium's default. As in MBTL's CARL runs (``control-tasks/s-*.sh``), the
context grid is 0.1x, 0.2x, ..., 10.0x the default: 100 tasks, task ``k - 1`` has multiplier
``k / 10``. One suite per (env, context) pair:

==============================  ===================  =====================  ==============
suite                           gymnasium attribute  default                grid (values)
==============================  ===================  =====================  ==============
``control/cartpole-masscart``   ``masscart``         1.0 kg                 0.1 ... 10
``control/cartpole-length``     ``length`` (half!)   0.5 m                  0.05 ... 5
``control/cartpole-masspole``   ``masspole``         0.1 kg                 0.01 ... 1
``control/pendulum-dt``         ``dt``               0.05 s                 0.005 ... 0.5
``control/pendulum-length``     ``l``                1.0 m                  0.1 ... 10
``control/pendulum-mass``       ``m``                1.0 kg                 0.1 ... 10
==============================  ===================  =====================  ==============

CartPole's ``total_mass`` and ``polemass_length`` are recomputed from the context, as
``CartPoleEnv.__init__`` computes them. Everything else (observation, action, reward, reset
distribution, termination, time limit 500 / 200 via ``gymnasium.make``) is gymnasium's.

Splits (fixed, v1). The train range is [0.5x, 2.0x], symmetric around the default on a log scale;
held-out contexts interpolate between train contexts and extrapolate on both sides, near and far
(each extrapolating multiplier has its reciprocal partner: 0.4 / 2.5, 0.2 / 5, 0.1 / 10)::

    train        0.5  0.7  1.0  1.4  2.0
    test_interp  0.6  0.8  1.2  1.7                 (strictly between train values)
    test_extrap  0.1  0.2  0.4  2.5  5.0  10.0      (outside [0.5, 2.0])
    test         test_interp + test_extrap
    all          all 100 contexts (transfer matrices, MBTL's source-task selection)

Success (``info["success"]``, True only on the step that ends the episode):

- CartPole: the episode reached the 500-step time limit without termination (the pole was
  balanced and the cart stayed on the track for the whole episode).
- Pendulum (never terminates): at the 200-step time limit the pole has been upright,
  ``|angle_normalize(theta)| < 0.1`` rad (5.7 deg) after each of the last 20 steps (10 % of the
  episode) - swung up and held, not just passing through. With ``dt`` as the context the episode
  covers 200 * dt seconds (1 s at 0.1x, 100 s at 10x), so success is much harder at small ``dt``;
  that is the task, not a bug.

Normalisers (``Task.score_bounds``): MBTL's per-domain bounds (``MBTL/utils.py``,
``get_dataset_settings``), so normalised scores are comparable with the paper's figures:
CartPole (0, 500) - 0 to the maximum return; Pendulum (-2200, -500) for every context. The
Pendulum bounds are not the extremes of the return (worst case about -3255; the simple
energy-pumping + PD controller of ``tests/test_control.py`` averages -137 at the default context,
normalised 1.22), so Pendulum scores can leave [0, 1]; they are not clipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from mtrl_bench.types import Suite, Task

#: Context multipliers: 0.1x ... 10.0x in steps of 0.1x; task index = round(10 * m) - 1.
MULTIPLIERS = tuple(k / 10 for k in range(1, 101))
TRAIN = (0.5, 0.7, 1.0, 1.4, 2.0)
TEST_INTERP = (0.6, 0.8, 1.2, 1.7)
TEST_EXTRAP = (0.1, 0.2, 0.4, 2.5, 5.0, 10.0)

#: Pendulum success: upright within this angle (rad) after each of the last HOLD steps.
UPRIGHT_ANGLE, UPRIGHT_HOLD = 0.1, 20
SUCCESS = {
    "CartPole-v1": "reached the 500-step time limit without termination",
    "Pendulum-v1": f"|theta| < {UPRIGHT_ANGLE} rad after each of the last {UPRIGHT_HOLD} steps",
}


@dataclass(frozen=True)
class _Domain:
    upstream: str  # gymnasium id
    family: str  # suite id prefix
    factory: str  # env_factory attribute in this module
    max_episode_steps: int  # gymnasium's TimeLimit
    score_bounds: tuple[float, float]  # MBTL's per-domain bounds
    contexts: dict[str, tuple[str, float, str]]  # suite-id name -> (attribute, default, unit)


_CARTPOLE = _Domain(
    "CartPole-v1", "cartpole", "make_cartpole", 500, (0.0, 500.0),
    {"masscart": ("masscart", 1.0, "kg"), "length": ("length", 0.5, "m (half the pole)"),
     "masspole": ("masspole", 0.1, "kg")},
)  # fmt: skip
_PENDULUM = _Domain(
    "Pendulum-v1", "pendulum", "make_pendulum", 200, (-2200.0, -500.0),
    {"dt": ("dt", 0.05, "s"), "length": ("l", 1.0, "m"), "mass": ("m", 1.0, "kg")},
)  # fmt: skip


def task_index(multiplier: float) -> int:
    """Index of the task with context ``multiplier`` x the default (0.1 ... 10.0)."""
    k = round(multiplier * 10)
    if not (1 <= k <= 100 and math.isclose(k / 10, multiplier)):
        raise ValueError(f"no context {multiplier}x; the grid is 0.1x ... 10.0x in 0.1x steps")
    return k - 1


def context(task: Task) -> tuple[str, float]:
    """``(gymnasium attribute, value)`` of a task of these suites."""
    kw = dict(task.kwargs)
    return kw["attr"], kw["value"]


def _set_context(env: gym.Env, attr: str, value: float) -> None:
    base = env.unwrapped
    if not hasattr(base, attr):
        raise AttributeError(f"{base} has no attribute {attr!r}")
    setattr(base, attr, float(value))


class CartPoleContext(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``CartPole-v1`` with one context attribute set, plus ``info["success"]``: the episode was
    truncated by the time limit, not terminated. Recording the constructor args lets gymnasium
    re-create the contextual env from ``env.spec`` (``check_env`` does)."""

    def __init__(self, env: gym.Env, attr: str, value: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, attr=attr, value=value)
        gym.Wrapper.__init__(self, env)
        _set_context(env, attr, value)
        base = env.unwrapped  # derived quantities, as CartPoleEnv.__init__ computes them
        base.total_mass = base.masspole + base.masscart
        base.polemass_length = base.masspole * base.length

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "success": False}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = bool(truncated and not terminated)
        return obs, reward, terminated, truncated, {**info, "success": success}


class PendulumContext(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``Pendulum-v1`` with one context attribute set, plus ``info["success"]``: at the time
    limit the pole has been upright for the last ``UPRIGHT_HOLD`` steps (module docstring)."""

    def __init__(self, env: gym.Env, attr: str, value: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, attr=attr, value=value)
        gym.Wrapper.__init__(self, env)
        _set_context(env, attr, value)
        self.upright_steps = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.upright_steps = 0
        return obs, {**info, "success": False}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        theta = self.env.unwrapped.state[0]
        upright = abs((theta + np.pi) % (2 * np.pi) - np.pi) < UPRIGHT_ANGLE
        self.upright_steps = self.upright_steps + 1 if upright else 0
        success = bool(truncated and self.upright_steps >= UPRIGHT_HOLD)
        return obs, reward, terminated, truncated, {**info, "success": success}


def make_cartpole(task: Task, suite: Suite) -> gym.Env:
    return CartPoleContext(gym.make("CartPole-v1"), *context(task))


def make_pendulum(task: Task, suite: Suite) -> gym.Env:
    return PendulumContext(gym.make("Pendulum-v1"), *context(task))


def _tasks(domain: _Domain, name: str) -> tuple[Task, ...]:
    attr, default, _ = domain.contexts[name]
    return tuple(
        Task(
            name=f"{domain.upstream}[{attr}={m:.1f}x]",
            index=i,
            max_episode_steps=domain.max_episode_steps,
            score_bounds=domain.score_bounds,
            # value rounded to 12 digits so that e.g. 0.3 * 0.05 is 0.015, not 0.015000000000000001
            kwargs=(("attr", attr), ("multiplier", m), ("value", round(m * default, 12))),
        )
        for i, m in enumerate(MULTIPLIERS)
    )


def _splits() -> dict[str, tuple[int, ...]]:
    ids = lambda ms: tuple(sorted(task_index(m) for m in ms))  # noqa: E731
    return {
        "train": ids(TRAIN),
        "test": ids(TEST_INTERP + TEST_EXTRAP),
        "test_interp": ids(TEST_INTERP),
        "test_extrap": ids(TEST_EXTRAP),
        "all": tuple(range(len(MULTIPLIERS))),
    }


def _suite(domain: _Domain, name: str) -> Suite:
    attr, default, unit = domain.contexts[name]
    return Suite(
        id=f"control/{domain.family}-{name}-v1",
        tasks=_tasks(domain, name),
        splits=_splits(),
        env_factory=f"mtrl_bench.envs.control:{domain.factory}",
        description=(
            f"{domain.upstream} with context {attr} = 0.1x-10x of {default} {unit} "
            "(CARL / MBTL); held-out contexts interpolate and extrapolate"
        ),
        options={
            "upstream": domain.upstream,
            "context": attr,
            "context_default": default,
            "context_grid": "0.1x-10.0x the default, step 0.1x (MBTL)",
            "success": SUCCESS[domain.upstream],
            "normaliser": f"MBTL per-domain bounds {domain.score_bounds}",
        },
    )


CARTPOLE_MASSCART = _suite(_CARTPOLE, "masscart")
CARTPOLE_LENGTH = _suite(_CARTPOLE, "length")
CARTPOLE_MASSPOLE = _suite(_CARTPOLE, "masspole")
PENDULUM_DT = _suite(_PENDULUM, "dt")
PENDULUM_LENGTH = _suite(_PENDULUM, "length")
PENDULUM_MASS = _suite(_PENDULUM, "mass")
