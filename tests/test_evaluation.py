"""The evaluation harness: exact episode counts, success at any step, normalised scores."""

import gymnasium as gym
import numpy as np
import pytest
from baselines_helpers import GoalLineOracle
from mtrl_bench.baselines.random_policy import RandomPolicy

from mtrl_bench.errors import UsageError
from mtrl_bench.evaluation import PROTOCOLS, evaluate, get_protocol
from mtrl_bench.registry import get_suite
from mtrl_bench.types import Suite, Task


class FlagMidEpisode(gym.Env):
    """Four-step episodes whose success flag is raised only at step 2, never at the end."""

    observation_space = gym.spaces.Box(0, 1, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {"success": False}

    def step(self, action):
        self.t += 1
        flag = self.t == 2 and int(action) == 1
        return np.zeros(1, np.float32), 0.25, self.t == 4, False, {"success": flag}


def make_flag_env(task, suite):
    return FlagMidEpisode()


FLAG_SUITE = Suite(
    id="test/flag-v1",
    tasks=(Task("flag-a", 0, 4, (0.0, 2.0)), Task("flag-b", 1, 4, (0.0, 2.0))),
    splits={"train": (0,), "test": (1,)},
    env_factory="test_evaluation:make_flag_env",
)


class AlwaysOne:
    def act(self, obs, task_ids, *, deterministic=False):
        return np.ones(len(task_ids), int)

    def reset(self, mask):
        pass


@pytest.mark.parametrize("episodes,envs", [(1, 4), (5, 2), (7, 3), (16, 4)])
def test_counts_exactly_n_episodes_and_success_at_any_step(episodes, envs):
    result = evaluate(AlwaysOne(), FLAG_SUITE, "train", episodes, seed=0, envs_per_task=envs)
    (task,) = result.tasks
    assert task.episodes == episodes
    assert task.success == 1.0  # flag seen at step 2, not at the last step
    assert task.mean_return == pytest.approx(1.0)
    assert task.score == pytest.approx(0.5)  # bounds (0, 2)


def test_flag_never_raised_means_failure():
    class AlwaysZero(AlwaysOne):
        def act(self, obs, task_ids, *, deterministic=False):
            return np.zeros(len(task_ids), int)

    assert evaluate(AlwaysZero(), FLAG_SUITE, "test", 3, seed=0).tasks[0].success == 0.0


def test_scripted_oracle_scores_one_and_random_is_worse():
    suite = get_suite("toy/goal-line-v1")
    oracle = evaluate(GoalLineOracle(), suite, "train", 8, seed=0)
    assert [t.success for t in oracle.tasks] == [1.0, 1.0, 1.0]
    assert [t.score for t in oracle.tasks] == pytest.approx([1.0, 1.0, 1.0])
    held_out = evaluate(GoalLineOracle(), suite, "test", 8, seed=0)
    assert held_out.tasks[0].task_index == 3 and held_out.score == pytest.approx(1.0)
    action_space = suite.make_single(0).action_space
    rand = evaluate(RandomPolicy(action_space, 0), suite, "train", 32, seed=0)
    assert rand.score < 0.5


def test_policy_reset_mask_follows_episode_ends():
    masks = []

    class Recorder(AlwaysOne):
        def reset(self, mask):
            masks.append(np.asarray(mask).copy())

    evaluate(Recorder(), FLAG_SUITE, "train", 4, seed=0, envs_per_task=2)
    assert masks[0].all()  # start
    assert all(m.all() for m in masks[1:])  # both envs end together every 4 steps
    assert len(masks) == 1 + 2  # quotas 2 + 2 episodes -> two episode ends


def test_stochastic_evaluation_is_seeded():
    suite = get_suite("minigrid/mt3-v1")
    space = suite.make_single(0).action_space
    a = evaluate(RandomPolicy(space, 1), suite, "train", 3, seed=5)
    b = evaluate(RandomPolicy(space, 1), suite, "train", 3, seed=5)
    c = evaluate(RandomPolicy(space, 1), suite, "train", 3, seed=6)
    assert a == b
    assert a != c


def test_bad_input():
    with pytest.raises(UsageError, match="episodes_per_task must be positive, got 0"):
        evaluate(AlwaysOne(), FLAG_SUITE, "train", 0, seed=0)
    with pytest.raises(UsageError, match="unknown split 'val'.*allowed: train, test"):
        evaluate(AlwaysOne(), FLAG_SUITE, "val", 1, seed=0)
    with pytest.raises(UsageError, match="unknown protocol 'few'"):
        get_protocol("few")


def test_protocols_name_their_split_and_version():
    assert {n: (p.split, p.version, p.adapts) for n, p in PROTOCOLS.items()} == {
        "mt": ("train", 1, False), "zero_shot": ("test", 1, False), "few_shot": ("test", 1, True)
    }
