"""The JAX-backend adapters (``mtrl_bench.jax_vector``) mirror the numpy ``MultiTaskVectorEnv``.

A JAX re-implementation of ``toy/goal-line-v1`` lives here (``GoalLineJax``, ``goal_line_jax``); its
suite must pass the suite contract checks, step exactly like the numpy suite on the same
actions, evaluate to the same results, and train SB3 PPO to the same weights.
"""

import warnings

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtrl_bench import checks, make_env, make_single_env
from mtrl_bench.baselines.sb3 import PRESETS, OneHotTaskVecEnv, _make_model
from mtrl_bench.envs.toy import GOAL_LINE
from mtrl_bench.evaluation import evaluate
from mtrl_bench.jax_env import JaxEnv, stack_params
from mtrl_bench.jax_vector import JaxSingleEnv, JaxVectorEnv, _jitted, env_keys, suite_env
from mtrl_bench.types import EVAL_SEED_OFFSET, SEED_STRIDE, Suite

SPACE = make_single_env(GOAL_LINE, 0).observation_space
CELLS, MAX_STEPS = SPACE.shape[0], GOAL_LINE.tasks[0].max_episode_steps


class GoalLineJax:
    """``envs/toy.py``'s ``GoalLine`` as a ``JaxEnv``. ``noise > 0`` fills the cells the agent
    is not on with ``noise * U(0, 0.5)`` so that keys matter (for the seeding tests)."""

    def __init__(self, noise: float = 0.0) -> None:
        self.noise = noise
        self.observation_space, self.action_space = SPACE, gym.spaces.Discrete(2)

    def params(self, task):
        return {"goal": jnp.int32(dict(task.kwargs)["goal"])}

    def _obs(self, key, pos):
        noise = self.noise * 0.5 * jax.random.uniform(key, (CELLS,))
        return jnp.where(jnp.arange(CELLS) == pos, 1.0, noise).astype(jnp.float32)

    def reset(self, key, params):
        state = {"pos": jnp.int32(CELLS // 2), "t": jnp.int32(0)}
        return self._obs(key, state["pos"]), state

    def step(self, key, state, action, params):
        obs_key, reset_key = jax.random.split(key)
        t = state["t"] + 1
        pos = jnp.clip(state["pos"] + jnp.where(action == 1, 1, -1), 0, CELLS - 1)
        reached = pos == params["goal"]
        reward = jnp.where(reached, 1.0 - 0.9 * t / MAX_STEPS, 0.0)
        truncated = ~reached & (t >= MAX_STEPS)
        done = reached | truncated
        final_obs = self._obs(obs_key, pos)
        reset_obs, reset_state = self.reset(reset_key, params)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), reset_state, {"pos": pos, "t": t})
        obs = jnp.where(done, reset_obs, final_obs)
        return obs, state, reward, reached, truncated, {"success": reached, "final_obs": final_obs}


def goal_line_jax(suite: Suite) -> GoalLineJax:
    return GoalLineJax(noise=suite.options.get("noise", 0.0))


def _jax_suite(**options) -> Suite:
    return Suite(id="toy/goal-line-jax-v1", tasks=GOAL_LINE.tasks, splits=GOAL_LINE.splits,
                 env_factory="test_jax_vector:goal_line_jax", backend="jax", options=options)  # fmt: skip


JAX_LINE, NOISY_LINE = _jax_suite(), _jax_suite(noise=1.0)


def test_goal_line_jax_is_a_jax_env():
    assert isinstance(suite_env(JAX_LINE), JaxEnv)
    assert suite_env(JAX_LINE) is suite_env(JAX_LINE) is make_env(JAX_LINE, "train").jax_env
    assert suite_env(NOISY_LINE) is not suite_env(JAX_LINE)  # same id, different suite
    assert isinstance(make_single_env(JAX_LINE, 0), JaxSingleEnv)


@pytest.mark.parametrize("suite", [JAX_LINE, NOISY_LINE], ids=["plain", "noisy"])
def test_check_suite_passes(suite):
    passed = checks.check_suite(suite, steps=100)
    assert len(passed) == 6


def test_rollouts_equal_numpy_backend():
    """Same actions -> same obs, rewards, flags, success and final_obs as MultiTaskVectorEnv."""
    for split in ("train", "test"):
        ours = make_env(JAX_LINE, split, envs_per_task=3, seed=4)
        ref = make_env(GOAL_LINE, split, envs_per_task=3, seed=4)
        assert isinstance(ref, gym.vector.VectorEnv) and type(ref) is not type(ours)
        np.testing.assert_array_equal(ours.task_ids, ref.task_ids)
        assert ours.observation_space == ref.observation_space
        assert ours.action_space == ref.action_space and ours.metadata == ref.metadata
        (obs, info), (ref_obs, ref_info) = ours.reset(), ref.reset()
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(info["success"], ref_info["success"])
        rng, ends = np.random.default_rng(0), 0
        for _ in range(120):
            # biased walks so that both goals are reached and time limits are hit
            actions = (rng.random(ours.num_envs) < np.linspace(0.1, 0.9, ours.num_envs)).astype(int)
            got, want = ours.step(actions), ref.step(actions)
            for a, b in zip(got[:4], want[:4], strict=True):
                assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_allclose(got[1], want[1], rtol=1e-6)  # JAX computes in float32
            np.testing.assert_array_equal(got[2], want[2])
            np.testing.assert_array_equal(got[3], want[3])
            info, ref_info = got[4], want[4]
            assert info.keys() == ref_info.keys()
            np.testing.assert_array_equal(info["success"], ref_info["success"])
            if "final_obs" in info:
                ends += 1
                np.testing.assert_array_equal(info["_final_obs"], ref_info["_final_obs"])
                for p, q in zip(info["final_obs"], ref_info["final_obs"], strict=True):
                    assert (p is None) == (q is None)
                    if p is not None:
                        np.testing.assert_array_equal(p, q)
                        assert p.dtype == q.dtype
        assert ends > 5
        ours.close(), ref.close()


class ScriptedLinePolicy:
    """Walks towards the task's goal, but takes a random step with probability 0.3 (drawn from
    numpy's global RNG, which ``evaluate`` seeds), so episode lengths and outcomes vary."""

    def act(self, obs, task_ids, *, deterministic=False):
        goals = np.array([dict(GOAL_LINE.tasks[t].kwargs)["goal"] for t in task_ids])
        greedy = (goals > np.argmax(obs, axis=1)).astype(int)
        explore = np.random.random(len(task_ids)) < 0.3
        return np.where(explore, np.random.randint(0, 2, len(task_ids)), greedy)

    def reset(self, mask):
        pass


@pytest.mark.parametrize("split", ["train", "test"])
def test_evaluate_matches_numpy_backend(split):
    ours = evaluate(ScriptedLinePolicy(), JAX_LINE, split, episodes_per_task=7, seed=3)
    ref = evaluate(ScriptedLinePolicy(), GOAL_LINE, split, episodes_per_task=7, seed=3)
    assert len(ours.tasks) == len(ref.tasks)
    for a, b in zip(ours.tasks, ref.tasks, strict=True):
        assert (a.task, a.task_index, a.episodes, a.success) == (
            b.task,
            b.task_index,
            b.episodes,
            b.success,
        )
        assert a.mean_return == pytest.approx(b.mean_return, rel=1e-6)
        assert a.score == pytest.approx(b.score, rel=1e-6)
    assert ours.success > 0 and min(t.score for t in ours.tasks) < 0.99  # not all optimal


def test_sb3_one_hot_adapter_and_ppo_match_numpy_backend():
    """SB3 PPO on OneHotTaskVecEnv(JaxVectorEnv) runs and learns the same weights as on numpy."""
    config = PRESETS["ci"]
    weights = []
    for suite in (JAX_LINE, GOAL_LINE):
        env = OneHotTaskVecEnv(make_env(suite, "train", envs_per_task=2, seed=0), suite.num_tasks)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. SB3's "render_mode is not defined" warning
            model = _make_model(config, env, seed=0)
        assert env.render_mode is None and env.get_attr("render_mode") == [None] * env.num_envs
        assert env.env_is_wrapped(gym.Wrapper) == [False] * env.num_envs
        model.learn(2 * config.n_steps * env.num_envs)
        assert model.num_timesteps == 2 * config.n_steps * env.num_envs
        weights.append([p.detach().numpy().copy() for p in model.policy.parameters()])
        env.close()
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_same_seed_same_rollout_and_seeds_matter():
    a = checks._rollout(NOISY_LINE, "train", 5, 40)
    b = checks._rollout(NOISY_LINE, "train", 5, 40)
    c = checks._rollout(NOISY_LINE, "train", 6, 40)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    assert not any(np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))
    # Seeding rules of MultiTaskVectorEnv: first unseeded reset uses the construction seed,
    # later unseeded resets continue; an explicit seed restarts the streams.
    env = make_env(NOISY_LINE, "train", envs_per_task=2, seed=5)
    first, _ = env.reset()
    np.testing.assert_array_equal(first, a[0][0])
    again, _ = env.reset()
    assert not np.array_equal(again, first)
    np.testing.assert_array_equal(env.reset(seed=5)[0], first)


def test_reset_keys_are_derived_from_sub_seeds():
    """Sub-env i of a vector env built with seed s resets with split(key(s * STRIDE + i))[1]."""
    env, seed = make_env(NOISY_LINE, "train", envs_per_task=2, seed=7), 7
    obs, _ = env.reset()
    jax_env, keys = env.jax_env, env_keys(seed, env.num_envs)
    for i, task_id in enumerate(env.task_ids):
        sub = jax.random.split(keys[i])[1]
        want, _ = jax_env.reset(sub, jax_env.params(NOISY_LINE.tasks[task_id]))
        np.testing.assert_array_equal(obs[i], np.asarray(want))
    single = JaxSingleEnv(jax_env, NOISY_LINE.tasks[env.task_ids[3]])
    np.testing.assert_array_equal(single.reset(seed=seed * SEED_STRIDE + 3)[0], obs[3])


def test_eval_and_train_keys_are_disjoint():
    data = lambda s: np.asarray(jax.random.key_data(env_keys(s, 64)))  # noqa: E731
    train = {tuple(k) for s in range(100) for k in data(s)}
    evals = {tuple(k) for s in range(100) for k in data(EVAL_SEED_OFFSET + s)}
    assert len(train) == len(evals) == 6400 and not train & evals
    # The key data is the 64-bit sub-seed itself (jax.random.key would drop its high bits),
    # so keys are distinct exactly when sub-seeds are, up to the largest allowed seed.
    top = 2 * EVAL_SEED_OFFSET - 1
    hi, lo = data(top)[-1].astype(np.uint64)
    assert (hi << np.uint64(32)) + lo == top * SEED_STRIDE + 63


def test_plain_env_does_not_autoreset():
    env = make_single_env(JAX_LINE, 0)  # goal 0: seven steps left from cell 7
    obs, info = env.reset(seed=0)
    assert obs.argmax() == 7 and info == {"success": False} and env.spec is None
    for _ in range(7):
        obs, reward, terminated, truncated, info = env.step(0)
        assert isinstance(reward, float) and isinstance(terminated, bool)
    assert terminated and not truncated and info["success"] and obs.argmax() == 0
    assert reward == pytest.approx(1 - 0.9 * 7 / MAX_STEPS)


def test_adapters_share_compiled_functions():
    env = JaxVectorEnv(GoalLineJax(), GOAL_LINE.tasks[:3], seed=0)
    fns = _jitted(env.jax_env)
    env.reset(), env.step(np.zeros(3, int))
    sizes = fns.reset._cache_size(), fns.step._cache_size()
    other = JaxVectorEnv(env.jax_env, GOAL_LINE.tasks[1:4], seed=1)
    other.reset(), other.step(np.ones(3, int))
    assert _jitted(other.jax_env) is fns
    assert (fns.reset._cache_size(), fns.step._cache_size()) == sizes  # no new compilation
    stacked = stack_params(env.jax_env, GOAL_LINE.tasks[:3])
    np.testing.assert_array_equal(env.params["goal"], stacked["goal"])


def test_stack_params_calls_params_once_per_distinct_task_and_equals_a_plain_stack():
    from mtrl_bench.registry import get_suite

    suite = get_suite("minigrid-jax/mt3-v1")
    env = suite_env(suite)
    tasks = [suite.tasks[i] for i in (2, 0, 0, 1, 2, 0)]
    calls = []

    class Counting:
        def params(self, task):
            calls.append(task.index)
            return env.params(task)

    stacked = stack_params(Counting(), tasks)
    assert sorted(calls) == [0, 1, 2]  # once per distinct task
    plain = jax.tree.map(lambda *xs: jnp.stack(xs), *[env.params(t) for t in tasks])
    assert jax.tree.structure(stacked) == jax.tree.structure(plain)
    for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(plain), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_vector_step_skips_resets_without_changing_results():
    """``vector_step``'s lax.cond path (envs with ``step_env``) equals the plain vmapped
    autoreset step, transition for transition, across many episode ends."""
    from functools import partial

    from mtrl_bench.jax_vector import reset_one, step_one, vector_step
    from mtrl_bench.registry import get_suite

    suite = get_suite("minigrid-jax/mt3-v1")
    env = suite_env(suite)
    assert hasattr(env, "step_env")
    params = stack_params(env, [suite.tasks[i] for i in (0, 0, 1, 2)])
    keys, _, state = jax.vmap(partial(reset_one, env))(env_keys(7, 4), params)

    def run(step):
        def one(c, k):
            keys, state = c
            actions = jax.random.randint(k, (4,), 0, 3)  # turns and forward: episodes end
            out = step(keys, state, actions, params)
            return (out.keys, out.state), out._replace(keys=None, state=None)

        return jax.lax.scan(one, (keys, state), jax.random.split(jax.random.key(1), 300))[1]

    fast = jax.jit(lambda: run(partial(vector_step, env)))()
    plain = jax.jit(lambda: run(jax.vmap(partial(step_one, env))))()
    assert int((fast.terminated | fast.truncated).sum()) > 4  # resets happened
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
