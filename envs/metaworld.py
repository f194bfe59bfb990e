"""Meta-World v3 suites (metaworld 3.1.1, mujoco 3.3.0): MT1, ML1, MT10, MT25, MT50, ML10, ML45.

Tasks and splits (``Task.name`` is the upstream class name verbatim, e.g. ``reach-v3``; orders are
upstream's ``env_dict`` orders, copied here so a suite stays fixed if upstream edits a list; a test
compares them with ``metaworld.env_dict``):

- ``mtN`` (N = 10, 25, 50): ``train`` = the benchmark's tasks with their 50 *training goals*;
  ``test`` = the same tasks again (new task indices) with 40 goals never used in training.
  Goal visible in the observation (upstream ``_MT_OVERRIDE``: ``partially_observable=False``).
- ``ml10``, ``ml45``: the official train / test classes; train classes with the 50 training goals,
  test classes with 40 held-out goals (the official protocol: 40 unseen goals per test task).
  Goal hidden (``_ML_OVERRIDE``: ``partially_observable=True``; the last 3 obs entries are 0).
- ``mt1-<task>``: one task; train = its 50 training goals, test = its 40 held-out goals.
- ``ml1-<task>``: upstream's ML1: the same task and goals as ``mt1-<task>``, goal hidden, so a
  policy must find a held-out goal by adapting (the ``meta_test`` protocol).
- ``mt10-sub3``: reach, window-open, drawer-close (``SUB3``), as ``mtN``; not a benchmark, a
  small multi-task set for learning checks at CPU budgets.

Goals are fixed by the suite, never by a run's seed. A task's goals depend only on the task
class (not on the suite it sits in), so a task has the same goals in MT1, MT10 and MT50 and
per-task results are comparable across suites. They are built with upstream's own procedure,
``_make_tasks`` for one class: instantiate, ``_freeze_rand_vec = False``, reset 50 times under
``np.random.seed(goal_seed)`` (the global RNG, restored afterwards) and keep each reset's
``_last_rand_vec``. Training goals use seed 0, held-out goals seed 1 (the first 40 of 50) -- so
they are exactly ``metaworld.MT1(task, seed=0).train_tasks`` and the first 40 of
``metaworld.ML1(task, seed=0).test_tasks`` (upstream ML1 uses ``seed + 1`` for test goals).
Upstream builds a benchmark's goals in one pass over its classes, so its MT10 goals of the 2nd to
10th task depend on the classes before them; ours do not (the reason given above).

The goals ship as a generated data file (``metaworld_goals.npz``, float64, read with
``allow_pickle=False``) rather than being regenerated per process: regeneration costs about 1 s
of MuJoCo resets per class (~50 s for MT50), whereas reading the file costs milliseconds, so
constructing a suite's env costs only the env instantiations (~0.15 s per task). The file
also holds the union of the 50 classes' upstream ``goal_space`` bounds (see below). A test
regenerates a few classes and compares them with the file; ``python -m
mtrl_bench.envs.metaworld --write-goals`` rewrites it (and asserts that no held-out goal equals
a training goal).

Env (``make_env``): one upstream env class instance built with ``reward_function_version``,
``TimeLimit(max_episode_steps)``, held by ``MetaWorldTask`` (a plain ``gym.Env``, not a wrapper:
upstream's ``compute_reward`` would make SB3 take it for a GoalEnv), which on every reset sets
the next goal (what ``set_task`` does: freeze the env's random vector to the goal) and reports
``info["success"]`` as a bool (upstream gives 0.0 / 1.0). Observation and action spaces are the
upstream env's. Upstream surprise: the env declares its observation space at construction,
when the goal is still hidden, so with a visible goal upstream's MT observations fall outside
the declared space (goal bounds are [0, 0, 0]). We re-read upstream's own
``sawyer_observation_space`` after setting the observability (the goal bounded by the task's
``goal_space``, which contains every goal of the file) and widen the goal bounds to the union of
all 50 tasks' goal spaces, so all tasks of a suite share one observation space (a vector env
needs that). Hidden-goal (ML) spaces are upstream's unchanged.

Seeding (upstream's ``reset(seed=)`` ignores the seed): ``reset(seed=s)`` seeds our goal RNG and
the env's own RNG (``env.seed(s)``), so the same seed gives the same goals and identical
episodes (MuJoCo is deterministic once the goal is fixed). Goal selection cycles through a
seeded permutation of the task's goals, each goal once per pass, so 50 episodes on one env
cover all 50 training goals (the official MT evaluation: one episode per training goal). A
task kwarg ``goal_index`` (``Task.kwargs``) pins an env to one goal (the ML adapt-then-evaluate
protocol uses it per goal).

Options (``Suite.options``, recorded in every result): ``reward_function_version`` ``v2``
(default) or ``v1`` (id infix ``-rv1``; Meta-World+ shows results are not comparable across the
two); ``max_episode_steps`` 500 (default) or 150 (MOORE's preset, id infix ``-h150``);
``score: "success"`` (``evaluate`` reports the success rate as the normalised score, since
Meta-World is judged by success rate); goal seeds and counts; ``async_from_envs``: ``make_env``
steps the envs in worker processes when there are at least this many (MuJoCo dominates).
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl_bench.envs.metaworld_tasks import METAWORLD_TASKS, METAWORLD_VARIANTS, metaworld_attr
from mtrl_bench.errors import UsageError
from mtrl_bench.types import Suite, Task

GOALS_FILE = Path(__file__).with_name("metaworld_goals.npz")
GOAL_SEEDS = {"train": 0, "test": 1}
"""Global ``np.random`` seed of each goal set (upstream ``_make_tasks(seed=...)``)."""
NUM_GOALS = {"train": 50, "test": 40}
"""Goals per task in each goal set (upstream ``_N_GOALS`` and ``total_tasks_per_cls=40``)."""
METAWORLD_VERSION = "3.1.1"

MT10 = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3",
        "drawer-close-v3", "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3",
        "window-close-v3")  # fmt: skip
MT25 = (*MT10, "coffee-pull-v3", "pick-out-of-hole-v3", "disassemble-v3", "pick-place-wall-v3",
        "basketball-v3", "stick-pull-v3", "button-press-wall-v3", "faucet-open-v3",
        "door-lock-v3", "lever-pull-v3", "sweep-into-v3", "faucet-close-v3", "coffee-button-v3",
        "button-press-topdown-wall-v3", "dial-turn-v3")  # fmt: skip
MT50 = METAWORLD_TASKS
ML10 = {
    "train": ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-close-v3",
              "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "sweep-v3",
              "basketball-v3"),
    "test": ("drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3"),
}  # fmt: skip
ML45 = {
    "train": ("assembly-v3", "basketball-v3", "button-press-topdown-v3",
              "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3",
              "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3",
              "disassemble-v3", "door-close-v3", "door-open-v3", "drawer-close-v3",
              "drawer-open-v3", "faucet-open-v3", "faucet-close-v3", "hammer-v3",
              "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3",
              "lever-pull-v3", "pick-place-wall-v3", "pick-out-of-hole-v3", "push-back-v3",
              "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3",
              "plate-slide-back-side-v3", "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3",
              "stick-push-v3", "stick-pull-v3", "push-wall-v3", "push-v3", "reach-wall-v3",
              "reach-v3", "shelf-place-v3", "sweep-into-v3", "sweep-v3", "window-open-v3",
              "window-close-v3"),
    "test": ("bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3"),
}  # fmt: skip
#: Not a benchmark: three MT10 tasks MTSAC learns within ~30k steps each, so that multi-task
#: learning can be checked at the budgets a 2-core CPU can run (``experiments/metaworld_sac.py``).
SUB3 = ("reach-v3", "window-open-v3", "drawer-close-v3")


def generate_goals(name: str, seed: int, n: int = 50) -> np.ndarray:
    """Upstream ``_make_tasks`` for one class: ``n`` random vectors drawn by ``n`` resets under
    the seeded global ``np.random`` (its state is restored afterwards)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        env = ALL_V3_ENVIRONMENTS[name]()
        env._freeze_rand_vec, env._set_task_called = False, True
        goals = []
        for _ in range(n):
            env.reset()
            goals.append(env._last_rand_vec)
        env.close()
    finally:
        np.random.set_state(state)
    goals = np.array(goals, dtype=np.float64)
    assert len(np.unique(goals, axis=0)) == n, f"{name}: duplicate goals (seed {seed})"
    return goals


def goal_space_union() -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the union of the 50 classes' upstream ``goal_space`` boxes."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    spaces = [ALL_V3_ENVIRONMENTS[name]().goal_space for name in METAWORLD_TASKS]
    return np.min([s.low for s in spaces], 0), np.max([s.high for s in spaces], 0)


def write_goals(path: Path = GOALS_FILE) -> None:
    low, high = goal_space_union()
    arrays = {"meta/metaworld_version": np.array(METAWORLD_VERSION),
              "meta/goal_low": low, "meta/goal_high": high}  # fmt: skip
    for name in METAWORLD_TASKS:
        for split, seed in GOAL_SEEDS.items():
            arrays[f"{name}/{split}"] = generate_goals(name, seed)[: NUM_GOALS[split]]
        train = {tuple(g) for g in arrays[f"{name}/train"]}
        assert not any(tuple(g) in train for g in arrays[f"{name}/test"]), f"{name}: goal reused"
    np.savez_compressed(path, **arrays)


@cache
def _goal_file() -> dict[str, np.ndarray]:
    with np.load(GOALS_FILE, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def task_goals(name: str, goal_set: str) -> np.ndarray:
    """The fixed goals (upstream random vectors) of task ``name`` in ``goal_set``."""
    goals = _goal_file()[f"{name}/{goal_set}"]
    goals.setflags(write=False)
    return goals


class MetaWorldTask(gym.Env):
    """Sets the next goal on every reset (seeded permutation, or the pinned ``goal_index``) and
    reports ``info["success"]`` as a bool.

    It holds the upstream env (``self.env``) instead of being a ``gym.Wrapper``, so that
    ``unwrapped`` is this env: upstream defines ``compute_reward(action, obs)``, which SB3's
    ``check_env`` (looking on ``env.unwrapped``) takes for a GoalEnv's
    ``compute_reward(achieved_goal, desired_goal, info)``."""

    def __init__(
        self, env: gym.Env, goals: np.ndarray, *, goal_observable: bool,
        goal_index: int | None = None,
    ) -> None:  # fmt: skip
        self.env, self.action_space = env, env.action_space
        self.metadata, self.render_mode = env.metadata, env.render_mode
        if goal_index is not None and not 0 <= goal_index < len(goals):
            raise UsageError(f"goal_index must be in [0, {len(goals)}), got {goal_index}")
        self.goals, self.goal_index = goals, goal_index
        mw = env.unwrapped
        mw._partially_observable = not goal_observable  # what set_task does on observability
        vars(mw).pop("sawyer_observation_space", None)  # a cached_property: recompute it
        space = mw.sawyer_observation_space  # upstream's space for this observability
        if goal_observable:  # goal bounds: all tasks' goal spaces, so one space per suite
            low, high = space.low.copy(), space.high.copy()
            low[-3:], high[-3:] = _goal_file()["meta/goal_low"], _goal_file()["meta/goal_high"]
            space = gym.spaces.Box(low, high, dtype=space.dtype)
        mw.observation_space = self.observation_space = space
        self._goal_rng: np.random.Generator | None = None
        self._order, self._next = np.empty(0, dtype=np.int64), 0
        self.goal: np.ndarray | None = None

    def _next_goal(self) -> int:
        if self.goal_index is not None:
            return self.goal_index
        if self._next == len(self._order):  # a new pass: each goal once, in a seeded order
            if self._goal_rng is None:  # never seeded: fresh entropy, like gymnasium
                self._goal_rng = np.random.default_rng()
            self._order, self._next = self._goal_rng.permutation(len(self.goals)), 0
        self._next += 1
        return int(self._order[self._next - 1])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)  # gymnasium's np_random (unused here; env checkers expect it)
        mw = self.env.unwrapped
        if seed is not None:
            self._goal_rng = np.random.default_rng(seed)
            self._order, self._next = np.empty(0, dtype=np.int64), 0
            mw.seed(seed)
        self.goal = self.goals[self._next_goal()]
        # set_task without the pickled Task: freeze the env's random vector to this goal
        mw._set_task_called, mw._freeze_rand_vec = True, True
        mw._last_rand_vec = self.goal.copy()
        obs, info = self.env.reset(options=options)
        return obs, {**info, "success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "success": bool(info["success"])}

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def make_env(task: Task, suite: Suite) -> gym.Env:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    kwargs = dict(task.kwargs)
    env = ALL_V3_ENVIRONMENTS[task.name](
        reward_function_version=suite.options["reward_function_version"]
    )
    env = gym.wrappers.TimeLimit(env, task.max_episode_steps)
    return MetaWorldTask(
        env, task_goals(task.name, kwargs["goal_set"]),
        goal_observable=suite.options["goal_observable"], goal_index=kwargs.get("goal_index"),
    )  # fmt: skip


def _suite(name: str, train: tuple[str, ...], test: tuple[str, ...], *, observable: bool,
           variant: str = "", description: str = "") -> Suite:  # fmt: skip
    reward = "v1" if "rv1" in variant else "v2"
    steps = 150 if "h150" in variant else 500
    tasks = [Task(n, i, steps, kwargs=(("goal_set", "train"),)) for i, n in enumerate(train)]
    tasks += [Task(n, len(train) + i, steps, kwargs=(("goal_set", "test"),))
              for i, n in enumerate(test)]  # fmt: skip
    return Suite(
        id=f"metaworld/{name}{variant}-v1",
        tasks=tuple(tasks),
        splits={"train": tuple(range(len(train))),
                "test": tuple(range(len(train), len(train) + len(test)))},
        env_factory="mtrl_bench.envs.metaworld:make_env",
        description=description + f" (reward {reward}, {steps} steps)",
        options={"reward_function_version": reward, "max_episode_steps": steps,
                 "goal_observable": observable, "score": "success",
                 "goal_seeds": dict(GOAL_SEEDS), "goals_per_task": dict(NUM_GOALS),
                 "metaworld": METAWORLD_VERSION, "async_from_envs": 25},
    )  # fmt: skip


def _all_suites() -> dict[str, Suite]:
    suites = []
    for variant in METAWORLD_VARIANTS:
        for name, tasks in (("mt10", MT10), ("mt25", MT25), ("mt50", MT50)):
            desc = f"Meta-World {name.upper()}; test: the same tasks, 40 unseen goals each"
            suites.append(_suite(name, tasks, tasks, observable=True, variant=variant,
                                 description=desc))  # fmt: skip
        for name, split in (("ml10", ML10), ("ml45", ML45)):
            desc = f"Meta-World {name.upper()}; test: held-out classes, 40 goals each, goal hidden"
            suites.append(_suite(name, split["train"], split["test"], observable=False,
                                 variant=variant, description=desc))  # fmt: skip
    suites.append(
        _suite(
            "mt10-sub3",
            SUB3,
            SUB3,
            observable=True,
            description="3 MT10 tasks SAC learns early (CPU learning checks)",
        )
    )
    for task in METAWORLD_TASKS:
        desc = f"Meta-World MT1 {task}; test: 40 unseen goals"
        suites.append(_suite(f"mt1-{task.removesuffix('-v3')}", (task,), (task,),
                             observable=True, description=desc))  # fmt: skip
        desc = f"Meta-World ML1 {task}: 50 training goals, 40 held-out goals, goal hidden"
        suites.append(_suite(f"ml1-{task.removesuffix('-v3')}", (task,), (task,),
                             observable=False, description=desc))  # fmt: skip
    return {metaworld_attr(s.id): s for s in suites}


SUITES = _all_suites()


def __getattr__(name: str) -> Suite:
    """Registry attributes (``metaworld_tasks.metaworld_attr``), e.g. ``MT10_RV1_H150_V1``."""
    if name in SUITES:
        return SUITES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-goals", action="store_true", help=f"regenerate {GOALS_FILE.name}")
    if parser.parse_args().write_goals:
        write_goals()
        print(f"wrote {GOALS_FILE}")
