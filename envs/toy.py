"""Tiny multi-task suites where the task id decides the optimal action (learning tests in seconds).

- ``toy/bandit-v1``: a contextual bandit. The observation is uninformative noise; task ``i`` pays 1
  for action ``i`` and 0 otherwise, then the episode ends. Without the task id no policy beats
  ``1 / num_actions``; with it, 1 is reachable. Train tasks 0-3, held-out task 4 (its arm is
  never rewarded in training, so zero-shot success measures nothing but luck, by design).
- ``toy/goal-line-v1``: a corridor of 15 cells; the agent starts in the middle and must walk to a
  task-dependent goal cell. The observation is the one-hot position only, so the direction
  comes from the task id. Train goals 0, 14, 3; held-out goal 11 (same side as goal 14, so a policy
  that generalises "go right" from goal 14 can solve it zero-shot). Reward minigrid-style:
  ``1 - 0.9 * steps / max_steps`` on reaching the goal.
- ``toy/reach-1d-v1``: the continuous-action analogue for SAC-style agents. A point on [-1, 1]
  starts at 0 and moves by ``0.2 * a`` for an action ``a`` in [-1, 1]; the observation is its
  position only, so the target comes from the task id. Train targets -0.8, 0.8, -0.4; held-out
  0.4. Reward: 1 on reaching the target (within 0.1; the episode terminates), otherwise
  ``-0.1 * distance``; 20 steps at most. Normaliser: 0 = standing still, 1 = the straight path.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from mtrl_bench.types import Suite, Task

_BANDIT_ARMS = 5
_LINE_CELLS, _LINE_MAX_STEPS = 15, 16
_LINE_GOALS = (0, 14, 3, 11)
_REACH_TARGETS, _REACH_STEP, _REACH_TOLERANCE, _REACH_MAX_STEPS = (
    (-0.8, 0.8, -0.4, 0.4),
    0.2,
    0.1,
    20,
)


class ContextualBandit(gym.Env):
    def __init__(self, arm: int) -> None:
        self.arm = arm
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(_BANDIT_ARMS)

    def _obs(self) -> np.ndarray:
        return self.np_random.uniform(-1, 1, 2).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {"success": False}

    def step(self, action):
        hit = int(action) == self.arm
        return self._obs(), float(hit), True, False, {"success": hit}


class GoalLine(gym.Env):
    def __init__(self, goal: int) -> None:
        self.goal = goal
        self.observation_space = gym.spaces.Box(0.0, 1.0, (_LINE_CELLS,), np.float32)
        self.action_space = gym.spaces.Discrete(2)  # 0: left, 1: right
        self.pos, self.t = _LINE_CELLS // 2, 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(_LINE_CELLS, np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = _LINE_CELLS // 2, 0
        return self._obs(), {"success": False}

    def step(self, action):
        self.t += 1
        self.pos = int(np.clip(self.pos + (1 if int(action) == 1 else -1), 0, _LINE_CELLS - 1))
        reached = self.pos == self.goal
        reward = 1.0 - 0.9 * self.t / _LINE_MAX_STEPS if reached else 0.0
        truncated = not reached and self.t >= _LINE_MAX_STEPS
        return self._obs(), reward, reached, truncated, {"success": reached}


class Reach1D(gym.Env):
    def __init__(self, target: float) -> None:
        self.target = target
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.x, self.t = 0.0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return np.array([self.x], np.float32), {"success": False}

    def step(self, action):
        self.t += 1
        step = _REACH_STEP * float(np.clip(np.asarray(action).reshape(-1)[0], -1.0, 1.0))
        self.x = float(np.clip(self.x + step, -1.0, 1.0))
        distance = abs(self.x - self.target)
        reached = distance <= _REACH_TOLERANCE
        reward = 1.0 if reached else -0.1 * distance
        truncated = not reached and self.t >= _REACH_MAX_STEPS
        return np.array([self.x], np.float32), reward, reached, truncated, {"success": reached}


def make_bandit(task: Task, suite: Suite) -> gym.Env:
    return ContextualBandit(arm=dict(task.kwargs)["arm"])


def make_goal_line(task: Task, suite: Suite) -> gym.Env:
    return GoalLine(goal=dict(task.kwargs)["goal"])


def make_reach(task: Task, suite: Suite) -> gym.Env:
    return Reach1D(target=dict(task.kwargs)["target"])


def _reach_task(index: int, target: float) -> Task:
    d = abs(target)
    n = int(np.ceil((d - _REACH_TOLERANCE) / _REACH_STEP - 1e-9))  # steps of the straight path
    best = 1.0 - 0.1 * sum(d - _REACH_STEP * k for k in range(1, n))
    still = -0.1 * d * _REACH_MAX_STEPS
    return Task(f"reach-1d-{target:+.1f}", index, _REACH_MAX_STEPS, (still, best),
                (("target", target),))  # fmt: skip


def _line_task(index: int, goal: int) -> Task:
    optimal = abs(goal - _LINE_CELLS // 2)
    best = 1.0 - 0.9 * optimal / _LINE_MAX_STEPS
    return Task(f"goal-line-{goal}", index, _LINE_MAX_STEPS, (0.0, best), (("goal", goal),))


BANDIT = Suite(
    id="toy/bandit-v1",
    tasks=tuple(Task(f"bandit-arm{a}", a, 1, (0.0, 1.0), (("arm", a),)) for a in range(5)),
    splits={"train": (0, 1, 2, 3), "test": (4,)},
    env_factory="mtrl_bench.envs.toy:make_bandit",
    description="contextual bandit: the task id names the paying arm",
)

GOAL_LINE = Suite(
    id="toy/goal-line-v1",
    tasks=tuple(_line_task(i, g) for i, g in enumerate(_LINE_GOALS)),
    splits={"train": (0, 1, 2), "test": (3,)},
    env_factory="mtrl_bench.envs.toy:make_goal_line",
    description="corridor with a task-dependent goal cell; held-out goal 11",
)

REACH_1D = Suite(
    id="toy/reach-1d-v1",
    tasks=tuple(_reach_task(i, x) for i, x in enumerate(_REACH_TARGETS)),
    splits={"train": (0, 1, 2), "test": (3,)},
    env_factory="mtrl_bench.envs.toy:make_reach",
    description="continuous 1-D reach with a task-dependent target; held-out target 0.4",
)
