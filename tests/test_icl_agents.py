"""AD, DPT and their T2MIR variants (agents/ad.py, agents/dpt.py): the paired batches T2MIR's
contrastive loss needs, and (slow) in-context learning on a toy DarkRoom from histories made in
the test."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtrl_bench.agents import ad, dpt


def _fake_data(tasks=5, episodes=12, horizon=3):
    """obs encodes (task, episode, step); returns increase with the episode index."""
    t, m, h = np.meshgrid(np.arange(tasks), np.arange(episodes), np.arange(horizon), indexing="ij")
    obs = np.stack([t, m, h], -1).astype(np.float32)
    rewards = (m / episodes).astype(np.float32)
    return {"obs": obs, "next_obs": obs + 0.5, "actions": (t % 5).astype(np.int32),
            "rewards": rewards, "returns": rewards.sum(-1)}  # fmt: skip


def test_ad_batch_pairing_and_sorted_episodes():
    data = {k: jnp.asarray(v) for k, v in _fake_data().items()}
    tasks, obs, _, _, timestep = ad.sample_batch(jax.random.key(0), data, 8, 4, paired=True)
    tasks, obs = np.asarray(tasks), np.asarray(obs)
    assert obs.shape == (8, 4 * 3, 3) and timestep.shape == (8, 12)
    np.testing.assert_array_equal(tasks[:4], tasks[4:])  # rows i and i + B/2: the same task
    assert np.all(obs[..., 0] == tasks[:, None])  # every step of a row comes from its task
    eps = obs[:, ::3, 1]  # the episode index of each of the 4 episodes
    assert np.all(np.diff(eps, axis=1) > 0)  # distinct episodes, in sorted (return) order
    assert not np.array_equal(eps[:4], eps[4:])  # the two halves are independent draws
    assert np.array_equal(np.asarray(timestep[0]), np.tile(np.arange(3), 4))
    unpaired = np.asarray(ad.sample_batch(jax.random.key(1), data, 64, 4, paired=False)[0])
    assert not np.array_equal(unpaired[:32], unpaired[32:])


def test_ad_sorts_each_task_by_return():
    data = _fake_data()
    data["returns"] = data["returns"][:, ::-1].copy()  # pretend later episodes did worse
    out = ad.sort_by_return(data)
    assert np.all(np.diff(out["returns"], axis=1) >= 0)
    np.testing.assert_array_equal(out["obs"][:, :, 0, 1], np.tile(np.arange(12)[::-1], (5, 1)))


def test_dpt_batch_pairing_and_oracle_labels():
    data = {k: jnp.asarray(v) for k, v in _fake_data().items()}
    goals = jnp.arange(5.0)  # the oracle's label: the task's goal + the query's episode index

    def oracle(goal, query):
        return (goal + query[1]).astype(jnp.int32)

    tasks, query, obs, *_, label = dpt.sample_batch(jax.random.key(0), data, goals, oracle, 8, 2,
                                                    paired=True)  # fmt: skip
    tasks, query = np.asarray(tasks), np.asarray(query)
    np.testing.assert_array_equal(tasks[:4], tasks[4:])
    assert np.all(np.asarray(obs)[..., 0] == tasks[:, None]) and np.all(query[:, 0] == tasks)
    np.testing.assert_array_equal(np.asarray(label), tasks + query[:, 1])


TOY_HELD_OUT = (6, 8, 12, 16, 18)  # 5 held-out goals of a 5 x 5 room (20 train goals)


@pytest.fixture(scope="module")
def toy_ad():
    """Histories on the toy room, AD trained on them, the in-context curves on both splits."""
    from mtrl_bench.agents import icl_data
    from mtrl_bench.envs.in_context import darkroom_suite
    from mtrl_bench.in_context import curve, evaluate_in_context

    suite = darkroom_suite("toy", 5, 10, TOY_HELD_OUT, 8, "5x5 DarkRoom, 10 steps, 20 / 5 goals")
    cfg = icl_data.DataConfig(updates=80, envs=4, episodes_per_update=1, batch_size=40, epochs=4,
                              lr=1e-2, ent_coef=0.0, hidden=(32,))  # fmt: skip
    data = icl_data.make_dataset(suite, cfg, seed=0)
    data["meta"] = json.loads(str(data["meta"]))
    config = ad.Config(steps=1500, batch_size=32, lr=1e-3, warmup=50, layers=2, heads=2, d=32,
                       dropout=0.0, episodes=3)  # fmt: skip
    params, model = ad.train(config, data, seed=0, act_dim=5, discrete=True)
    policy = ad.ADPolicy(model, params)
    return {split: curve(evaluate_in_context(policy, suite, 8, seed=0, trials=4, split=split))
            .mean(0) for split in ("train", "test")}  # fmt: skip


@pytest.mark.slow  # histories, 1500 AD steps, 2 x 8 in-context episodes: ~65 s CPU here
def test_ad_learns_in_context_on_training_goals(toy_ad):
    ret = toy_ad["train"]  # measured: 1.0 at the first episode, ~2.0 over the last three
    assert ret[-3:].mean() > ret[0] + 0.5, ret


@pytest.mark.slow
@pytest.mark.xfail(reason="at this CI budget AD does not yet improve in context on held-out "
                   "goals (measured flat, ~0.3; also flat with PPO lr 3e-3 / entropy 0.01 "
                   "histories and 4-episode contexts, on this room and on a 7x7 one with 44 "
                   "train goals: agents/ad.py); open item", strict=False)  # fmt: skip
def test_ad_learns_in_context_on_held_out_goals(toy_ad):
    ret = toy_ad["test"]
    assert ret[-3:].mean() > ret[0] + 0.5, ret


class _RandomPolicy:
    context_steps = 1

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def act_in_context(self, context, task_ids, *, deterministic=False):
        return self.rng.integers(0, 5, len(context.length))


@pytest.mark.slow  # histories, 1000 DPT steps, 3 x 8 in-context episodes: ~50 s CPU here
def test_dpt_learns_in_context_on_held_out_goals():
    """DPT with a 4-episode context on gradually improving PPO histories (PPO lr 3e-3, entropy
    0.01): on the 5 held-out goals the return rises after the first in-context episode and
    stays well above a random policy's. Measured (seed 0): first 1.25, episodes 2-8 1.75-2.1;
    random 0.2-0.55."""
    from mtrl_bench.agents import icl_data
    from mtrl_bench.envs.in_context import darkroom_suite
    from mtrl_bench.in_context import curve, evaluate_in_context
    from mtrl_bench.jax_env import stack_params
    from mtrl_bench.jax_vector import suite_env

    suite = darkroom_suite("toy", 5, 10, TOY_HELD_OUT, 8, "5x5 DarkRoom, 10 steps, 20 / 5 goals")
    cfg = icl_data.DataConfig(updates=80, envs=4, episodes_per_update=1, batch_size=40, epochs=4,
                              lr=3e-3, ent_coef=0.01, hidden=(32,))  # fmt: skip
    data = icl_data.make_dataset(suite, cfg, seed=0)
    env = suite_env(suite)
    goals = stack_params(env, suite.split_tasks("train"))
    config = dpt.Config(steps=1000, batch_size=32, lr=1e-3, warmup=50, layers=2, heads=2, d=32,
                        dropout=0.0, episodes=4)  # fmt: skip
    params, model = dpt.train(config, data, goals, env.optimal_action, 0, 5, True)
    policy = dpt.DPTPolicy(model, params)
    ret = curve(evaluate_in_context(policy, suite, 8, seed=0, trials=4)).mean(0)
    rnd = curve(evaluate_in_context(_RandomPolicy(), suite, 8, seed=0, trials=4)).mean(0)
    assert ret[1:].mean() > ret[0] + 0.3, ret
    assert ret[-3:].mean() > ret[0] + 0.2, ret
    assert ret[1:].mean() > 3 * rnd.mean(), (ret, rnd)
