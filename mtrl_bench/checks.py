"""Contract checks for a suite (``mtrl check <suite>`` and the contract tests).

Each check raises ``AssertionError`` with a message naming the suite, task and property that
failed. ``check_suite`` returns the names of the checks that passed.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from mtrl_bench.make import make_env, make_single_env
from mtrl_bench.types import Suite


def check_splits(suite: Suite) -> None:
    assert {"train", "test"} <= set(suite.splits), f"{suite.id}: needs train and test splits"
    train, test = set(suite.splits["train"]), set(suite.splits["test"])
    assert not train & test, f"{suite.id}: train and test share tasks {sorted(train & test)}"
    # a task is its name plus its kwargs (Meta-World's MT test split: same names, unseen goals)
    keys = [(suite.tasks[i].name, suite.tasks[i].kwargs) for i in (*train, *test)]
    assert len(set(keys)) == len(keys), f"{suite.id}: a task appears in both splits"


def check_single_envs(suite: Suite) -> None:
    """gymnasium's ``check_env`` (spaces, seeding determinism, step API) on every task."""
    for task in suite.tasks:
        env = make_single_env(suite, task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env, skip_render_check=True)
        _, info = env.reset(seed=0)
        assert "success" in info, f"{suite.id}/{task.name}: reset info lacks 'success'"
        env.close()


def _rollout(suite: Suite, split: str, seed: int, steps: int) -> list[tuple]:
    env = make_env(suite, split, envs_per_task=2, seed=seed)
    env.action_space.seed(seed)
    obs, info = env.reset()
    trace = [(obs, info["success"])]
    for _ in range(steps):
        obs, rew, term, trunc, info = env.step(env.action_space.sample())
        final = info.get("final_obs")
        trace.append((obs, rew, term, trunc, info["success"], final))
    env.close()
    return trace


def check_vector_env(suite: Suite, split: str, steps: int = 200) -> None:
    env = make_env(suite, split, envs_per_task=2, seed=0)
    where = f"{suite.id}[{split}]"
    assert isinstance(env, gym.vector.VectorEnv), f"{where}: not a gymnasium VectorEnv"
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP, f"{where}: autoreset mode"
    expected = np.repeat(suite.splits[split], 2)
    assert np.array_equal(env.task_ids, expected), f"{where}: task_ids {env.task_ids}"
    obs, info = env.reset()
    assert env.observation_space.contains(obs), f"{where}: reset obs outside observation_space"
    assert info["success"].dtype == bool and info["success"].shape == (env.num_envs,)
    env.action_space.seed(0)
    for _ in range(steps):
        obs, rew, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs), f"{where}: step obs outside space"
        assert rew.shape == term.shape == trunc.shape == (env.num_envs,), f"{where}: shapes"
        assert info["success"].shape == (env.num_envs,), f"{where}: info['success'] missing"
        done = term | trunc
        if done.any():
            assert np.array_equal(info["_final_obs"], done), f"{where}: _final_obs != done"
            for i in np.flatnonzero(done):
                final = info["final_obs"][i]
                assert env.single_observation_space.contains(final), f"{where}: final_obs"
        else:
            assert "final_obs" not in info, f"{where}: final_obs without an episode end"
    env.close()


def check_determinism(suite: Suite, split: str, steps: int = 100) -> None:
    a, b = _rollout(suite, split, 3, steps), _rollout(suite, split, 3, steps)
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        for u, v in zip(x, y, strict=True):
            if isinstance(u, np.ndarray) and u.dtype == object:
                same = all(
                    (p is None and q is None) or np.array_equal(p, q)
                    for p, q in zip(u, v, strict=True)
                )  # fmt: skip
            else:
                same = np.array_equal(u, v)
            assert same, f"{suite.id}[{split}]: same seed, different rollout at step {t}"


def check_suite(suite: Suite, steps: int = 200) -> list[str]:
    passed = []
    check_splits(suite)
    passed.append("splits are fixed and disjoint")
    check_single_envs(suite)
    passed.append(f"gymnasium check_env on all {suite.num_tasks} tasks")
    for split in ("train", "test"):
        check_vector_env(suite, split, steps)
        passed.append(f"{split}: VectorEnv spaces, task_ids, success flag, SAME_STEP autoreset")
        check_determinism(suite, split, steps // 2)
        passed.append(f"{split}: same seed gives an identical rollout")
    return passed
