"""MiniGrid multi-task suites: MOORE's MT3 / MT5 / MT7 (Hendawy et al., ICLR 2024), held-out splits.

Train splits are exactly MOORE's task sets (``run_minigrid_ppo_mt.py``)::

    MT3 = LavaGapS7, RedBlueDoors-6x6, MemoryS11
    MT5 = MT3 + DoorKey-6x6, DistShift1
    MT7 = MT5 + SimpleCrossingS9N2, MultiRoom-N2-S4

Held-out ``test`` splits (v1) take the *same families at an unseen size or difficulty*, one held-out
task per train task, so a zero-shot score measures generalisation within a family rather than
transfer to unrelated games::

    LavaGapS7 -> LavaGapS6            RedBlueDoors-6x6 -> RedBlueDoors-8x8
    MemoryS11 -> MemoryS13            DoorKey-6x6 -> DoorKey-8x8
    DistShift1 -> DistShift2          SimpleCrossingS9N2 -> SimpleCrossingS9N3
    MultiRoom-N2-S4 -> MultiRoom-N4-S5 (v1: minigrid 3.2.0's v0 id builds 6 rooms)

Observation: the upstream 7x7x3 egocentric symbolic image (as ``ImgObsWrapper`` gives it), HWC
uint8 as minigrid returns it (agents that want CHW, as MOORE does, transpose it themselves). Reward:
upstream, ``1 - 0.9 * step_count / max_steps`` on reaching the goal, else 0. Episode limit:
upstream ``max_steps``. Success: the episode terminated with a positive reward.

Normaliser (Todorov et al., TMLR 2025, App. B, used for MOORE's MiniGrid IQMs): a return is
divided by the return of an optimal episode, ``1 - 0.9 * optimal_steps / max_steps``, so 0 =
failure and 1 = optimal. The optimal step counts of train tasks are the TMLR paper's (so our
scores are comparable with its MOORE / MoE / MTPPO IQMs). Those of held-out tasks are the median
shortest plan over seeds 0-19, every action counted, from the BFS oracle in
``envs/minigrid_oracle.py``; for MemoryS13 the plan must first look at the start-room object
(the plain oracle knows the answer and needs only 5 steps). The oracle's medians for the train
tasks differ from the paper's (LavaGapS7 11 vs 8, RedBlueDoors-6x6 13.5 vs 8, DistShift1 13 vs
11, MultiRoom-N2-S4 7.5 vs 5; the paper's counts look turn-free): the README has the table.
With ``max_steps`` in the hundreds this moves a score by about 1-2 % (7 % for MultiRoom).
Layouts shorter than the normaliser's optimum can score slightly above 1; scores are not
clipped.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)

from mtrl_bench.types import Suite, Task

# (upstream id, max_steps, optimal steps of the normaliser)
_TRAIN = {
    "LavaGapS7": ("MiniGrid-LavaGapS7-v0", 196, 8),
    "RedBlueDoors-6x6": ("MiniGrid-RedBlueDoors-6x6-v0", 720, 8),
    "MemoryS11": ("MiniGrid-MemoryS11-v0", 605, 15),
    "DoorKey-6x6": ("MiniGrid-DoorKey-6x6-v0", 360, 11),
    "DistShift1": ("MiniGrid-DistShift1-v0", 252, 11),
    "SimpleCrossingS9N2": ("MiniGrid-SimpleCrossingS9N2-v0", 324, 15),
    "MultiRoom-N2-S4": ("MiniGrid-MultiRoom-N2-S4-v0", 40, 5),
}
_HELD_OUT = {
    "LavaGapS7": ("MiniGrid-LavaGapS6-v0", 144, 9),
    "RedBlueDoors-6x6": ("MiniGrid-RedBlueDoors-8x8-v0", 1280, 18),
    "MemoryS11": ("MiniGrid-MemoryS13-v0", 845, 12),
    "DoorKey-6x6": ("MiniGrid-DoorKey-8x8-v0", 640, 15.5),
    "DistShift1": ("MiniGrid-DistShift2-v0", 252, 11),
    "SimpleCrossingS9N2": ("MiniGrid-SimpleCrossingS9N3-v0", 324, 15),
    "MultiRoom-N2-S4": ("MiniGrid-MultiRoom-N4-S5-v1", 80, 20),
}


class MiniGridTask(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The image observation (what ``minigrid.wrappers.ImgObsWrapper`` returns) plus
    ``info["success"]``: the episode terminated with a positive reward. Inheriting
    ``RecordConstructorArgs`` lets gymnasium re-create the env (``check_env`` needs that)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self.observation_space = env.observation_space["image"]

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs["image"], {**info, "success": False}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = bool(terminated and reward > 0)
        return obs["image"], reward, terminated, truncated, {**info, "success": success}


def make_env(task: Task, suite: Suite) -> gym.Env:
    env = gym.make(task.name)
    if env.unwrapped.max_steps != task.max_episode_steps:
        raise RuntimeError(
            f"{task.name}: minigrid max_steps is {env.unwrapped.max_steps}, suite expects "
            f"{task.max_episode_steps}; this minigrid version changed the task"
        )
    return MiniGridTask(env)


def _task(index: int, spec: tuple[str, int, float]) -> Task:
    name, max_steps, optimal = spec
    return Task(name, index, max_steps, score_bounds=(0.0, 1.0 - 0.9 * optimal / max_steps))


def _suite(name: str, families: list[str], description: str) -> Suite:
    tasks = [_task(i, _TRAIN[f]) for i, f in enumerate(families)]
    tasks += [_task(len(families) + i, _HELD_OUT[f]) for i, f in enumerate(families)]
    n = len(families)
    return Suite(
        id=f"minigrid/{name}-v1",
        tasks=tuple(tasks),
        splits={"train": tuple(range(n)), "test": tuple(range(n, 2 * n))},
        env_factory="mtrl_bench.envs.minigrid:make_env",
        description=description,
        options={"observation": "ImgObsWrapper 7x7x3 HWC uint8", "reward": "minigrid upstream"},
    )


_MT3 = ["LavaGapS7", "RedBlueDoors-6x6", "MemoryS11"]
_MT5 = [*_MT3, "DoorKey-6x6", "DistShift1"]
_MT7 = [*_MT5, "SimpleCrossingS9N2", "MultiRoom-N2-S4"]
MT3 = _suite("mt3", _MT3, "MOORE's MiniGrid MT3; held-out: same families, unseen sizes")
MT5 = _suite("mt5", _MT5, "MOORE's MiniGrid MT5; held-out: same families, unseen sizes")
MT7 = _suite("mt7", _MT7, "MOORE's MiniGrid MT7; held-out: same families, unseen sizes")


def _jax(suite: Suite) -> Suite:
    """The same tasks, splits and normalisers on the pure-JAX backend (``envs/minigrid_jax``)."""
    return dataclasses.replace(
        suite, id=suite.id.replace("minigrid/", "minigrid-jax/"), backend="jax",
        env_factory="mtrl_bench.envs.minigrid_jax.env:make_suite_env",
        description=suite.description + " (pure-JAX backend)",
    )  # fmt: skip


MT3_JAX, MT5_JAX, MT7_JAX = _jax(MT3), _jax(MT5), _jax(MT7)
