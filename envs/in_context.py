"""Hidden-goal suites for in-context RL (docs/suites/in_context.md): DarkRoom and Point-Robot.

Pure JAX (``mtrl_bench.jax_env``): the goal is data in ``params``, so ``jax.vmap`` over stacked
params steps a batch that mixes goals. The observation never shows the goal: an agent has to find
it from rewards, across episodes of one task -- what in-context RL methods (AD, DPT, T2MIR)
learn to do. ``step`` autoresets SAME_STEP with the step's ``key``.

- ``darkroom/dpt-v1``: DPT's / T2MIR-DPT's DarkRoom. A 9 x 9 grid, the agent starts in the corner
  (0, 0) and observes its own (x, y) as float32; 5 actions (+x, -x, +y, -y, stay); reward 1 on
  every step that ends on the goal cell, else 0; the episode never terminates and is truncated
  after 20 steps. 81 goals (every cell): 65 train / 16 held-out.
- ``darkroom/ad-v1``: the 100-step variant of T2MIR-AD's ``DarkRoom-v0`` (its ``dim`` = 10: 100
  goals, 80 train / 20 held-out), otherwise the same dynamics.
- ``point-robot/v1``: a 2-D point mass (T2MIR's ``PointEnv``). Start uniform in [-0.1, 0.1]^2,
  action in [-1, 1]^2 clipped and scaled by 0.1 and added to the position, reward the negative
  Euclidean distance to the goal after the move, no termination, 20 steps. 50 goals drawn once
  uniformly from [-1, 1]^2 (numpy ``default_rng(20251204)``, rounded to 0.01; the released
  ``task_goals.pkl`` is a pickle, not read here): the first 45 train, the last 5 held-out.

``options["in_context_episodes"]``: the episodes of the ``in_context`` protocol (T2MIR's: 100 on
DarkRoom-AD, 30 elsewhere). Splits are the literal tuples below (fixed data, never recomputed).
``info["success"]``: DarkRoom, the agent stands on the goal; Point-Robot, it is within
``POINT_SUCCESS_RADIUS`` (0.1, one step's reach) of the goal. Neither reference env reports
success; ours is the harness's any-step rule.

Normalisers (``Task.score_bounds``): 0 is the return of never reaching the goal (DarkRoom) or of
standing still at the origin (Point-Robot: ``-H |g|``); 1 is the optimal return (DarkRoom: walk
the Manhattan distance ``d``, then stay: ``H - d + 1``, or ``H`` at the start cell; Point-Robot:
full-speed straight line from the origin, ``-sum_t max(|g| - 0.1 t, 0)``; the start's +-0.1
jitter can make a return slightly exceed it).
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from mtrl_bench.types import Suite, Task

_F32 = jnp.float32
POINT_SUCCESS_RADIUS = 0.1
POINT_STEP = 0.1

#: held-out goal cells ``x * dim + y`` (numpy ``default_rng(81)`` / ``(100)`` permutations,
#: first 16 / 20, sorted; written out so they are data)
DPT_HELD_OUT = (2, 6, 8, 13, 21, 31, 32, 43, 46, 47, 55, 56, 60, 68, 76, 80)
AD_HELD_OUT = (9, 11, 14, 27, 28, 35, 36, 45, 50, 51, 54, 55, 56, 58, 59, 63, 87, 93, 94, 96)
POINT_GOALS = (
    (-0.78, -0.03), (-0.30, 0.67), (-0.86, 0.86), (0.13, 0.83), (0.74, -0.49), (0.26, 0.09),
    (0.89, -0.77), (-0.27, -0.72), (0.99, 0.89), (-0.39, -0.82), (-0.92, 0.22), (0.56, -0.67),
    (-0.72, 1.00), (-0.39, -0.94), (-0.61, -0.22), (0.61, 0.47), (0.53, 0.66), (-0.13, 0.93),
    (-0.43, -0.33), (-0.98, 0.46), (-0.93, -0.61), (0.01, 0.93), (0.42, -0.20), (0.56, 0.30),
    (0.83, -0.86), (0.48, 0.51), (-0.27, -0.68), (0.15, 0.01), (0.92, 0.11), (-0.45, 0.97),
    (0.36, 0.26), (0.36, 0.27), (0.26, -0.75), (-0.50, 0.17), (0.85, -0.79), (-0.90, 0.65),
    (0.19, -0.73), (-0.04, -0.98), (0.66, -0.72), (-0.94, -0.02), (-0.20, -0.78), (-0.53, 0.37),
    (0.27, 0.41), (0.37, 0.06), (-0.90, 0.16), (0.55, 0.26), (-0.40, 0.72), (-0.65, 0.54),
    (-0.69, -0.24), (0.91, 0.43),
)  # fmt: skip
POINT_TRAIN = 45


class GoalParams(NamedTuple):
    goal: jax.Array  # DarkRoom: int32 (x, y); Point-Robot: float32 (x, y)
    max_steps: jax.Array  # int32


class GoalState(NamedTuple):
    pos: jax.Array  # float32 (x, y)
    t: jax.Array  # int32 steps taken in this episode


def _goal(task: Task) -> tuple:
    return dict(task.kwargs)["goal"]


def _autoreset(env, key, params, obs, state, reward, truncated, success):
    """SAME_STEP: when the episode ends the returned obs and state are a fresh episode's."""
    reset_obs, reset_state = env.reset(key, params)
    new_state = jax.tree.map(lambda r, s: jnp.where(truncated, r, s), reset_state, state)
    info = {"success": success, "final_obs": obs}
    terminated = jnp.zeros((), bool)
    return jnp.where(truncated, reset_obs, obs), new_state, reward, terminated, truncated, info


class DarkRoomJax:
    """The DarkRoom of the module docstring on a ``dim`` x ``dim`` grid."""

    # action -> (dx, dy): T2MIR's order (+x, -x, +y, -y, stay)
    MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]], np.float32)

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.observation_space = gym.spaces.Box(0.0, dim - 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(5)

    def params(self, task: Task) -> GoalParams:
        return GoalParams(jnp.asarray(_goal(task), jnp.int32), jnp.int32(task.max_episode_steps))

    def reset(self, key: jax.Array, params: GoalParams) -> tuple[jax.Array, GoalState]:
        pos = jnp.zeros(2, _F32)  # the corner, as DPT / T2MIR (AD's paper starts in the centre)
        return pos, GoalState(pos, jnp.int32(0))

    def step(self, key, state: GoalState, action, params: GoalParams):
        move = jnp.asarray(self.MOVES)[jnp.asarray(action, jnp.int32).reshape(())]
        pos = jnp.clip(state.pos + move, 0.0, self.dim - 1.0)
        on_goal = jnp.all(pos.astype(jnp.int32) == params.goal)
        t = state.t + 1
        truncated = t >= params.max_steps
        return _autoreset(self, key, params, pos, GoalState(pos, t), on_goal.astype(_F32),
                          truncated, on_goal)  # fmt: skip

    def optimal_action(self, params: GoalParams, obs: jax.Array) -> jax.Array:
        """DPT's label: +x / -x until the goal's column, then +y / -y, then stay (T2MIR's
        ``opt_action`` order). ``obs`` (..., 2)."""
        dx = params.goal[..., 0] - obs[..., 0].astype(jnp.int32)
        dy = params.goal[..., 1] - obs[..., 1].astype(jnp.int32)
        return jnp.where(dx > 0, 0, jnp.where(dx < 0, 1, jnp.where(dy > 0, 2,
                                                                    jnp.where(dy < 0, 3, 4))))


class PointRobotJax:
    """The Point-Robot of the module docstring."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def params(self, task: Task) -> GoalParams:
        return GoalParams(jnp.asarray(_goal(task), _F32), jnp.int32(task.max_episode_steps))

    def reset(self, key: jax.Array, params: GoalParams) -> tuple[jax.Array, GoalState]:
        pos = jax.random.uniform(key, (2,), _F32, -0.1, 0.1)
        return pos, GoalState(pos, jnp.int32(0))

    def step(self, key, state: GoalState, action, params: GoalParams):
        action = jnp.clip(jnp.asarray(action, _F32).reshape(2), -1.0, 1.0)
        pos = state.pos + POINT_STEP * action
        dist = jnp.sqrt(jnp.sum(jnp.square(pos - params.goal)))
        t = state.t + 1
        truncated = t >= params.max_steps
        return _autoreset(self, key, params, pos, GoalState(pos, t), -dist, truncated,
                          dist < POINT_SUCCESS_RADIUS)  # fmt: skip


    def optimal_action(self, params: GoalParams, obs: jax.Array) -> jax.Array:
        """DPT's label: the full-speed step towards the goal, clipped to the action box."""
        return jnp.clip((params.goal - obs) / POINT_STEP, -1.0, 1.0)


@cache
def _env(kind: str, dim: int) -> DarkRoomJax | PointRobotJax:
    return DarkRoomJax(dim) if kind == "darkroom" else PointRobotJax()


def make_suite_env(suite: Suite) -> DarkRoomJax | PointRobotJax:
    """``f(suite) -> JaxEnv``; stateless envs, shared by suites of one kind and size."""
    return _env(suite.options["kind"], int(suite.options.get("dim", 0)))


def darkroom_suite(name: str, dim: int, horizon: int, held_out: tuple[int, ...], episodes: int,
                   what: str) -> Suite:  # fmt: skip
    """A ``darkroom/<name>-v1`` suite: every cell a goal, ``held_out`` cells (``x * dim + y``)
    in ``test`` (the registered suites below; tests build small ones)."""
    cells = [(x, y) for x in range(dim) for y in range(dim)]
    order = [c for c in range(dim * dim) if c not in held_out] + list(held_out)
    tasks = []
    for i, c in enumerate(order):
        x, y = cells[c]
        d = x + y  # Manhattan distance from the start corner
        best = horizon if d == 0 else horizon - d + 1
        tasks.append(Task(f"DarkRoom-{dim}x{dim}-goal-{x}-{y}", i, horizon, (0.0, float(best)),
                          kwargs=(("goal", (x, y)),)))  # fmt: skip
    n_train = dim * dim - len(held_out)
    return Suite(
        id=f"darkroom/{name}-v1", tasks=tuple(tasks),
        splits={"train": tuple(range(n_train)), "test": tuple(range(n_train, dim * dim))},
        env_factory="mtrl_bench.envs.in_context:make_suite_env", backend="jax",
        description=what,
        options={"kind": "darkroom", "dim": dim, "start": "corner (0, 0)",
                 "reward": "1 per step on the goal", "in_context_episodes": episodes},
    )  # fmt: skip


def _point_bounds(goal: tuple[float, float], horizon: int) -> tuple[float, float]:
    r = float(np.hypot(*goal))
    best = -sum(max(r - POINT_STEP * t, 0.0) for t in range(1, horizon + 1))
    return -horizon * r, best


def _point_robot() -> Suite:
    horizon = 20
    tasks = tuple(
        Task(f"PointRobot-goal-{x:+.2f}-{y:+.2f}", i, horizon, _point_bounds((x, y), horizon),
             kwargs=(("goal", (x, y)),))
        for i, (x, y) in enumerate(POINT_GOALS)
    )  # fmt: skip
    n = len(POINT_GOALS)
    return Suite(
        id="point-robot/t2mir-v1", tasks=tasks,
        splits={"train": tuple(range(POINT_TRAIN)), "test": tuple(range(POINT_TRAIN, n))},
        env_factory="mtrl_bench.envs.in_context:make_suite_env", backend="jax",
        description="T2MIR's Point-Robot: 2-D point mass, hidden goal, 20 steps; 45/5 goals",
        options={"kind": "point-robot", "success_radius": POINT_SUCCESS_RADIUS,
                 "in_context_episodes": 30},
    )  # fmt: skip


DARKROOM_DPT = darkroom_suite("dpt", 9, 20, DPT_HELD_OUT, 30,
                              "DPT's DarkRoom: 9x9, hidden goal, 20 steps; 65/16 goals")
DARKROOM_AD = darkroom_suite("ad", 10, 100, AD_HELD_OUT, 100,
                             "T2MIR-AD's DarkRoom: 10x10, hidden goal, 100 steps; 80/20 goals")
POINT_ROBOT = _point_robot()
