"""SB3 baselines: the one-hot adapter's SB3 conventions, learning, checkpoints, resume, wrap_sb3."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from mtrl_bench import make_env, make_single_env
from mtrl_bench.baselines.sb3 import (
    PPO_INDEPENDENT,
    PPO_SHARED,
    PRESETS,
    IndependentPolicy,
    OneHotTaskVecEnv,
    SB3Policy,
    wrap_sb3,
)
from mtrl_bench.evaluation import evaluate
from mtrl_bench.registry import get_suite
from mtrl_bench.results import RunDir
from mtrl_bench.runner import RunConfig, resolve, run

CI = PRESETS["ci"]


def open_run(tmp_path, suite, agent, steps, preset="ci"):
    run_dir = RunDir(tmp_path, suite.id, agent, 0)
    run_dir.open(resolve(RunConfig(suite=suite.id, agent=agent, preset=preset, steps=steps)))
    return run_dir


def test_adapter_follows_sb3_conventions():
    suite = get_suite("toy/goal-line-v1")
    env = OneHotTaskVecEnv(make_env(suite, "train", envs_per_task=2, seed=0), suite.num_tasks)
    assert env.observation_space["task"].shape == (suite.num_tasks,)
    one_hot = np.eye(suite.num_tasks)[env.task_ids]
    obs = env.reset()
    assert env.observation_space.contains({k: v[0] for k, v in obs.items()})
    np.testing.assert_array_equal(obs["task"], one_hot)
    # Back and forth never reaches a goal (goals are >= 4 cells away): all truncate at step 16.
    for t in range(1, 17):
        obs, rewards, dones, infos = env.step(np.full(env.num_envs, t % 2))
        np.testing.assert_array_equal(obs["task"], one_hot)
        assert len(infos) == env.num_envs and rewards.shape == dones.shape == (env.num_envs,)
        for i, info in enumerate(infos):
            assert ("terminal_observation" in info) == dones[i] == (t == 16)
            assert info["TimeLimit.truncated"] == (t == 16) and info["is_success"] is False
            single = {k: v[i] for k, v in obs.items()}
            assert env.observation_space.contains(single)
            if dones[i]:
                terminal = info["terminal_observation"]
                assert env.observation_space.contains(terminal)
                np.testing.assert_array_equal(terminal["task"], one_hot[i])
                assert terminal["obs"].argmax() == 7 and single["obs"].argmax() == 7
                assert info["episode"]["l"] == 16 and info["episode"]["r"] == 0.0
    # Walking to the goal terminates: no truncation flag, success, the goal cell is terminal.
    env.reset()
    for _ in range(7):
        obs, rewards, dones, infos = env.step(np.zeros(env.num_envs, int))
    first = 0  # task 0's goal is cell 0, seven steps left of the middle
    assert dones[first] and infos[first]["is_success"] and not infos[first]["TimeLimit.truncated"]
    assert infos[first]["terminal_observation"]["obs"].argmax() == 0
    assert env.get_attr("goal") == [0, 0, 14, 14, 3, 3] and env.env_is_wrapped(PPO) == [False] * 6
    env.close()


def test_minigrid_grid_reaches_the_cnn_unscaled_and_hwc(tmp_path):
    """SB3 must not take the 7x7x3 uint8 grid for pixels (no VecTransposeImage, no /255)."""
    suite = get_suite("minigrid/mt3-v1")
    config = replace(PRESETS["minigrid"], envs_per_task=1, n_steps=16, batch_size=48)
    policy = PPO_SHARED.train(config, suite, 0, RunDir(tmp_path, suite.id, "sb3-ppo", 0), 48, False)
    model = policy.model
    assert isinstance(model.env, OneHotTaskVecEnv)  # not wrapped in VecTransposeImage
    extractor = model.policy.features_extractor
    assert extractor.features_dim == 1024 + suite.num_tasks
    env = make_env(suite, "test", envs_per_task=2, seed=0)
    grid, _ = env.reset()
    obs = {"obs": grid.astype(np.float32), "task": np.eye(suite.num_tasks)[env.task_ids]}
    tensors = model.policy.obs_to_tensor(obs)[0]
    with torch.no_grad():
        features = model.policy.extract_features(tensors, extractor)
        expected = extractor.cnn(torch.as_tensor(grid, dtype=torch.float32).permute(0, 3, 1, 2))
    np.testing.assert_allclose(features[:, :1024], expected, rtol=1e-6)
    np.testing.assert_array_equal(features[:, 1024:], obs["task"])
    assert policy.act(grid, env.task_ids).shape == (env.num_envs,)
    env.close()


def test_shared_ppo_learns_bandit(tmp_path):
    suite = get_suite("toy/bandit-v1")
    policy = PPO_SHARED.train(CI, suite, 0, RunDir(tmp_path, suite.id, "sb3-ppo", 0), 4096, False)
    result = evaluate(policy, suite, "train", 32, seed=0, deterministic=True)
    assert result.success >= 0.9, [t.success for t in result.tasks]


def test_runner_save_load_identical_actions(tmp_path):
    suite = get_suite("toy/bandit-v1")
    cfg = RunConfig(suite=suite.id, agent="sb3-ppo", preset="ci", steps=512, eval_episodes=2)
    run_dir = run(cfg, runs_dir=tmp_path / "runner", progress=False)
    assert run_dir.done and run_dir.read_eval()
    assert not any(p.suffix in (".pkl", ".zip") for p in run_dir.path.rglob("*"))
    loaded = PPO_SHARED.load(run_dir.path, suite)
    # The same run trained in memory (same seed: same weights), and its own save -> load.
    own_dir = open_run(tmp_path / "direct", suite, "sb3-ppo", 512)
    trained = PPO_SHARED.train(CI, suite, 0, own_dir, 512, False)
    obs = np.random.default_rng(0).uniform(-1, 1, (5 * 64, 2)).astype(np.float32)
    task_ids = np.repeat(np.arange(5), 64)
    actions = trained.act(obs, task_ids, deterministic=True)
    np.testing.assert_array_equal(actions, loaded.act(obs, task_ids, deterministic=True))
    own = PPO_SHARED.load(own_dir.path, suite)
    np.testing.assert_array_equal(actions, own.act(obs, task_ids, deterministic=True))


def test_resume_continues_from_checkpoint(tmp_path):
    suite = get_suite("toy/bandit-v1")
    rollout = CI.n_steps * CI.envs_per_task * len(suite.splits["train"])  # 256
    run_dir = open_run(tmp_path, suite, "sb3-ppo", 4 * CI.checkpoint_every)
    PPO_SHARED.train(CI, suite, 0, run_dir, CI.checkpoint_every, False)  # "killed" after chunk 1
    first = [r["env_steps"] for r in map(json.loads, run_dir.metrics_path.read_text().splitlines())]
    assert first == [CI.checkpoint_every]
    PPO_SHARED.train(CI, suite, 0, run_dir, 4 * CI.checkpoint_every, False)
    rows = [json.loads(line) for line in run_dir.metrics_path.read_text().splitlines()]
    steps = [r["env_steps"] for r in rows]
    assert steps == [CI.checkpoint_every * k for k in (1, 2, 3, 4)] and rollout < steps[0]
    assert all(r["fps"] > 0 and 0 <= r["success"] <= 1 for r in rows)
    meta = json.loads((run_dir.ckpt_dir / "state.json").read_text())
    assert meta["num_timesteps"] == 4 * CI.checkpoint_every
    assert sorted(p.name for p in run_dir.ckpt_dir.iterdir()) == ["model.pt", "state.json"]


def test_wrap_sb3_evaluates_a_plain_model():
    suite = get_suite("toy/bandit-v1")
    env = OneHotTaskVecEnv(make_env(suite, "train", envs_per_task=4, seed=0), suite.num_tasks)
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=64, learning_rate=3e-3, seed=0)
    model.learn(4096)
    result = evaluate(wrap_sb3(model, suite.num_tasks), suite, "train", 16, seed=0,
                      deterministic=True)  # fmt: skip
    assert result.success >= 0.9
    # one_hot=False feeds the suite's observation as is (a model that never saw task ids).
    line = get_suite("toy/goal-line-v1")
    plain = PPO("MlpPolicy", make_single_env(line, 0), n_steps=64, batch_size=64, seed=0)
    policy = wrap_sb3(plain, line.num_tasks, one_hot=False)
    assert isinstance(policy, SB3Policy)
    result = evaluate(policy, line, "test", 4, seed=0)
    assert result.tasks[0].episodes == 4


def test_independent_trains_and_acts_on_all_tasks(tmp_path):
    suite = get_suite("toy/bandit-v1")
    run_dir = open_run(tmp_path, suite, "sb3-ppo-independent", 4096)
    policy = PPO_INDEPENDENT.train(CI, suite, 0, run_dir, 4096, False)
    assert isinstance(policy, IndependentPolicy) and set(policy.policies) == {0, 1, 2, 3}
    assert sorted(p.name for p in run_dir.ckpt_dir.iterdir()) == [f"task{t}" for t in range(4)]
    assert evaluate(policy, suite, "train", 16, seed=0, deterministic=True).success >= 0.9
    held_out = evaluate(policy, suite, "test", 64, seed=0, deterministic=True)
    assert 0.05 < held_out.success < 0.5  # uniformly random on the held-out arm: 1 / 5
    loaded = PPO_INDEPENDENT.load(run_dir.path, suite)
    obs = np.zeros((5, 2), np.float32)
    np.testing.assert_array_equal(
        policy.act(obs, np.arange(5), deterministic=True)[:4],
        loaded.act(obs, np.arange(5), deterministic=True)[:4],
    )


def test_load_refuses_other_suite_and_missing_checkpoint(tmp_path):
    from mtrl_bench.errors import UsageError

    bandit, line = get_suite("toy/bandit-v1"), get_suite("toy/goal-line-v1")
    run_dir = open_run(tmp_path, bandit, "sb3-ppo", 256)
    with pytest.raises(UsageError, match="no checkpoint"):
        PPO_SHARED.load(run_dir.path, bandit)
    with pytest.raises(UsageError, match="trained on"):
        PPO_SHARED.load(run_dir.path, line)


def test_same_seed_same_results_different_seed_differs(tmp_path):
    """Train + evaluate end to end twice: identical records for the same seed (CPU, 1 thread)."""
    cfg = RunConfig(suite="toy/goal-line-v1", agent="sb3-ppo", preset="ci", steps=1024,
                    eval_episodes=4)  # fmt: skip
    keys = ("task", "success", "return", "score")

    def results(root, seed):
        rd = run(replace(cfg, seed=seed), runs_dir=tmp_path / root, progress=False)
        metrics = [json.loads(x)["episode_return"] for x in rd.metrics_path.read_text().splitlines()]
        return [tuple(r[k] for k in keys) for r in rd.read_eval()], metrics

    assert results("a", 0) == results("b", 0)
    assert results("c", 1) != results("a", 0)
