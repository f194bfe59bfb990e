"""The evaluation harness: exact episode counts, success at any step, normalised scores."""

import json

import gymnasium as gym
import numpy as np
import pytest
from baselines_helpers import GoalLineOracle

from mtrl_bench import make_single_env
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
    action_space = make_single_env(suite, 0).action_space
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
    space = make_single_env(suite, 0).action_space
    a = evaluate(RandomPolicy(space, 1), suite, "train", 3, seed=5)
    b = evaluate(RandomPolicy(space, 1), suite, "train", 3, seed=5)
    c = evaluate(RandomPolicy(space, 1), suite, "train", 3, seed=6)
    assert a == b
    assert a != c


def test_per_episode_values_are_the_aggregates_source():
    """Each task keeps every episode's return, length and success, identified by its sub-env's
    reset seed and ordinal; the task's aggregates are their means."""
    suite = get_suite("toy/goal-line-v1")
    space = make_single_env(suite, 0).action_space
    result = evaluate(RandomPolicy(space, 3), suite, "train", 10, seed=2, envs_per_task=4)
    seen = set()
    for t in result.tasks:
        per = t.per_episode
        assert {k: len(v) for k, v in per.items()} == dict.fromkeys(per, 10)
        assert np.mean(per["return"]) == pytest.approx(t.mean_return)
        assert np.mean(per["success"]) == pytest.approx(t.success)
        assert all(1 <= n <= suite.max_episode_steps for n in per["length"])
        ids = set(zip(per["env_seed"], per["env_episode"], strict=True))
        assert len(ids) == 10 and not ids & seen  # every episode has its own identity
        seen |= ids
    # quotas 3, 3, 2, 2 over 4 sub-envs: ordinals 0..2, 0..2, 0..1, 0..1
    assert sorted(result.tasks[0].per_episode["env_episode"]) == [0] * 4 + [1] * 4 + [2] * 2


def test_a_fixed_goal_set_plays_each_goal_once():
    """A split with a fixed goal set (Meta-World's 40 held-out goals) is evaluated by one sub-env
    per task walking its goal permutation, at most one episode per goal: 5 requested on 3 goals
    play 3, all from the same sub-env, ordinals 0, 1, 2 (the env's permutation then makes them
    3 distinct goals: tests/test_metaworld.py). Splits without one keep their quota."""
    from dataclasses import replace

    base = get_suite("toy/goal-line-v1")
    suite = replace(base, options={**base.options, "goals_per_task": {"test": 3}})
    space = make_single_env(suite, 0).action_space
    held_out = evaluate(RandomPolicy(space, 3), suite, "test", 5, seed=2, envs_per_task=4)
    for t in held_out.tasks:
        assert t.episodes == 3 and len(set(t.per_episode["env_seed"])) == 1
        assert t.per_episode["env_episode"] == (0.0, 1.0, 2.0)
    train = evaluate(RandomPolicy(space, 3), suite, "train", 5, seed=2, envs_per_task=4)
    assert {t.episodes for t in train.tasks} == {5}
    assert len(set(train.tasks[0].per_episode["env_seed"])) == 4


def test_bad_input():
    with pytest.raises(UsageError, match="episodes_per_task must be positive, got 0"):
        evaluate(AlwaysOne(), FLAG_SUITE, "train", 0, seed=0)
    with pytest.raises(UsageError, match="unknown split 'val'.*allowed: train, test"):
        evaluate(AlwaysOne(), FLAG_SUITE, "val", 1, seed=0)
    with pytest.raises(UsageError, match="unknown protocol 'few'"):
        get_protocol("few")


def test_protocols_name_their_split_and_version():
    assert {n: (p.split, p.version, p.adapts, p.per_goal) for n, p in PROTOCOLS.items()} == {
        "mt": ("train", 1, False, False),
        "zero_shot": ("test", 1, False, False),
        "few_shot": ("test", 1, True, False),
        "meta_test": ("test", 1, True, True),
        "in_context": ("test", 1, False, False),
    }


def test_meta_test_adapts_and_evaluates_per_goal_and_resumes(tmp_path):
    """Meta-World's ML protocol on a real ML10 suite: per (test task, goal) adapt, then 3
    episodes; the first test task and 2 goals keep it cheap. A rerun reuses finished goals."""
    from mtrl_bench.evaluation import META_TEST_EPISODES, pin_goal
    from mtrl_bench.runner import RunConfig, run

    cfg = RunConfig(suite="metaworld/ml10-v1", agent="mtsac", preset="ci", steps=100,
                    protocols=("meta_test",), eval_episodes=1, few_shot_steps=60,
                    meta_test_goals=2, meta_test_tasks=1, deterministic_eval=True)  # fmt: skip
    run_dir = run(cfg, tmp_path, progress=False)
    records = run_dir.read_eval()
    assert [r["protocol"] for r in records] == ["meta_test"]
    (rec,) = records
    assert rec["task"] == "drawer-open-v3" and rec["episodes"] == 2 * META_TEST_EPISODES
    assert rec["adapt_steps"] == 60 and rec["goals"] == 2 and 0 <= rec["success"] <= 1
    state = json.loads((run_dir.path / "meta_test.json").read_text())
    assert sorted(state) == ["10/0", "10/1"]
    assert not list(run_dir.path.glob("meta_test/*/ckpt/*")), "finished goals drop checkpoints"
    metrics = list(run_dir.path.glob("meta_test/task10-goal*/metrics.jsonl"))
    assert len(metrics) == 2  # each goal adapted in its own directory
    # pinning: task 10's env plays goal 1 on every reset
    pinned = pin_goal(get_suite("metaworld/ml10-v1"), 10, 1)
    assert pinned.splits["test"] == (10,) and ("goal_index", 1) in pinned.tasks[10].kwargs


def test_meta_test_refuses_suites_without_held_out_goals(tmp_path):
    from mtrl_bench.runner import RunConfig, resolve

    with pytest.raises(UsageError, match="no held-out goals"):
        resolve(RunConfig(suite="toy/reach-1d-v1", agent="mtsac", protocols=("meta_test",)))
    with pytest.raises(UsageError, match="meta_test_goals"):
        resolve(RunConfig(suite="metaworld/ml10-v1", agent="mtsac", protocols=("meta_test",),
                          meta_test_goals=0))  # fmt: skip
