"""MOORE's MiniGrid PPO family (agents/mtppo.py, agents/nets.py): layers, PCGrad, determinism,
the two training paths, exact resume, few-shot freezing, learning on a toy suite."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtrl_bench import make_env
from mtrl_bench.agents import mtppo, nets
from mtrl_bench.agents.rollout import python_reset, python_rollout, run_keys
from mtrl_bench.registry import get_suite
from mtrl_bench.results import RunDir, read_jsonl
from mtrl_bench.runner import RunConfig, resolve, run


def _max_diff(a, b) -> float:
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.abs(x - y).max()), a, b)))


def test_im2col_conv_equals_xla_conv():
    kx, kw, kb = jax.random.split(jax.random.key(0), 3)
    x = jax.random.randint(kx, (5, 7, 7, 3), 0, 11).astype(jnp.float32)
    w, b = jax.random.normal(kw, (12, 16)), jax.random.normal(kb, (16,))
    ours, ref = nets.conv2x2(x, w, b), nets.conv2x2_xla(x, w, b)
    assert ours.shape == ref.shape == (5, 6, 6, 16)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)
    # a whole network: the same parameters give the same logits with either convolution
    suite = get_suite("minigrid-jax/mt3-v1")
    a, b_ = mtppo._networks(mtppo.Config(), suite), mtppo._networks(
        mtppo.Config(), suite, conv=nets.conv2x2_xla)  # fmt: skip
    obs = jax.random.randint(kx, (3, 4, 7, 7, 3), 0, 11).astype(jnp.uint8)
    params = a[0].init(kw, obs, jnp.arange(3))
    np.testing.assert_allclose(a[0].apply(params, obs, jnp.arange(3)),
                               b_[0].apply(params, obs, jnp.arange(3)), atol=1e-4)  # fmt: skip


def test_chunked_forward_and_static_task_rows_equal_one_gathered_call():
    # the update's full-batch forward passes run in minibatch chunks (nets.apply_chunked), and
    # constant task ids take static rows (nets.per_group): both bitwise equal to one call
    suite = get_suite("minigrid-jax/mt3-v1")
    actor = mtppo._networks(mtppo.Config(), suite)[0]
    obs = jax.random.randint(jax.random.key(0), (3, 10, 7, 7, 3), 0, 11).astype(jnp.uint8)
    tids = jnp.array([2, 0, 1])
    params = actor.init(jax.random.key(1), obs, tids)
    traced = jax.jit(lambda p, t: actor.apply(p, obs, t))(params, tids)  # gathers
    chunked = jax.jit(lambda p: nets.apply_chunked(actor, p, obs, tids, 4))(params)
    assert chunked.shape == traced.shape == (3, 10, 7)
    np.testing.assert_array_equal(chunked, traced)
    w = jnp.arange(12.0).reshape(3, 4)
    assert nets.per_group(w, jnp.arange(3)) is w
    np.testing.assert_array_equal(nets.per_group(w, tids), w[tids])


@pytest.mark.parametrize("k", [1, 2, 4])
def test_gram_schmidt_is_orthonormal_per_sample(k):
    u = jax.random.normal(jax.random.key(k), (32, 5, k, 1024))
    v = nets.gram_schmidt(u)
    gram = jnp.einsum("bnkd,bnjd->bnkj", v, v)
    np.testing.assert_allclose(gram, jnp.broadcast_to(jnp.eye(k), gram.shape), atol=1e-5)
    first = u[..., 0, :] / jnp.linalg.norm(u[..., 0, :], axis=-1, keepdims=True)
    np.testing.assert_allclose(v[..., 0, :], first, atol=1e-6)  # expert 1 is only normalised
    # span is kept: each u_i is a combination of v_1..v_i
    coef = jnp.einsum("bnkd,bnjd->bnkj", u, v)
    np.testing.assert_allclose(jnp.einsum("bnkj,bnjd->bnkd", coef, v), u, atol=1e-3)


def test_gram_schmidt_degenerate_sample_is_finite():
    u = jnp.stack([jnp.ones(8), jnp.ones(8)])[None]  # two identical experts
    assert bool(jnp.isfinite(nets.gram_schmidt(u)).all())


def test_pcgrad_projects_conflicting_gradients():
    key, no_heads = jax.random.key(0), jnp.zeros(2, bool)
    # g1 . g2 = -1 < 0: g1' = g1 + g2 / 2 = (0.5, 0.5); g2' = g2 + g1 = (0, 1); mean (0.25, 0.75)
    grads = jnp.array([[1.0, 0.0], [-1.0, 1.0]])
    np.testing.assert_allclose(nets.pcgrad(grads, key, no_heads), [0.25, 0.75], atol=1e-6)
    # no conflict: the plain mean
    grads = jnp.array([[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(nets.pcgrad(grads, key, no_heads), [1.0, 0.5], atol=1e-6)
    # per-task (head) entries are summed, not averaged
    grads = jnp.array([[1.0, 2.0], [1.0, 0.0]])
    np.testing.assert_allclose(nets.pcgrad(grads, key, jnp.array([False, True])), [1.0, 2.0])


def test_pcgrad_agent_uses_per_task_gradients():
    """With two identical tasks PCGrad equals the plain gradient (no conflicts)."""
    params = {"w": jnp.array([1.0, -2.0]), "head_w1": jnp.array([[0.5], [1.0]])}

    def losses(p):
        return jnp.stack([(p["w"] ** 2).sum() + p["head_w1"][0, 0], (p["w"] ** 2).sum()])

    loss, plain = nets.task_grad(losses, params, False, jax.random.key(0))
    _, pc = nets.task_grad(losses, params, True, jax.random.key(0))
    np.testing.assert_allclose(pc["w"], plain["w"])  # shared: mean of equal gradients
    np.testing.assert_allclose(pc["head_w1"], 2 * plain["head_w1"])  # heads: sum, not mean
    assert float(loss) == pytest.approx(5.0 + 0.25)


CI = mtppo._presets("moore")["ci"]


@pytest.fixture(scope="module")
def mt3_jax():
    return get_suite("minigrid-jax/mt3-v1")


# The MiniGrid MT3 case compiles a CNN update inside a scan over the JAX MiniGrid (~65 s of CPU,
# +0.8 GB): slow. By default the same check runs on CartPole (the same make_train / python_rollout
# code with MLP experts), and the CNN update runs in test_cpu_minigrid_loop_runs_the_cnn_update.
@pytest.mark.parametrize(("jax_id", "steps"), [
    ("control-jax/cartpole-masscart-v1", 64),
    pytest.param("minigrid-jax/mt3-v1", 64, marks=pytest.mark.slow),
])  # fmt: skip
def test_jitted_training_is_deterministic_and_matches_the_python_loop(jax_id, steps):
    suite = get_suite(jax_id)
    config = replace(CI, steps_per_task=steps)
    t = len(suite.splits["train"])
    train = jax.jit(mtppo.make_train(config, suite, 2))
    (a, _), (metrics, _) = train(*run_keys(0, t))
    (b, _), _ = train(*run_keys(0, t))
    (c, _), _ = train(*run_keys(1, t))
    assert _max_diff(a.actor, b.actor) == 0.0 and _max_diff(a.critic, b.critic) == 0.0
    assert _max_diff(a.actor, c.actor) > 0.0
    assert metrics["value_loss"].shape == (2,) and np.isfinite(metrics["policy_loss"]).all()
    # the Python rollout loop over the suite's vector env, same seed: the same parameters
    algo = mtppo.build(config, suite)
    learner = algo.init(jax.random.key(0))
    venv = make_env(suite, "train", seed=0)
    carry, step, update = python_reset(venv), jax.jit(algo.policy_step), jax.jit(algo.update)
    for _ in range(2):
        key, batch, _ = python_rollout(venv, step, learner.actor, learner.key, carry, steps)
        learner, _ = update(learner._replace(key=key), batch)
    assert _max_diff(a.actor, learner.actor) < 1e-5 and _max_diff(a.critic, learner.critic) < 1e-5


def test_cpu_minigrid_loop_runs_the_cnn_update(mt3_jax):
    """The python loop on the CPU reference suite (python minigrid) with MOORE's CNN experts:
    grid batches of the right shape and dtype, a finite update."""
    algo = mtppo.build(CI, mt3_jax)
    step, update = jax.jit(algo.policy_step), jax.jit(algo.update)
    venv = make_env(get_suite("minigrid/mt3-v1"), "train", seed=0)
    learner = algo.init(jax.random.key(0))
    key, batch, stats = python_rollout(
        venv, step, learner.actor, learner.key, python_reset(venv), 64
    )
    venv.close()
    assert batch.obs.shape == (3, 64, 7, 7, 3) and batch.obs.dtype == np.uint8
    assert stats.shape == (3, 3) and stats[:, 1].sum() == batch.dones.sum()
    learner, metrics = update(learner._replace(key=key), batch)
    assert int(learner.updates) == 1 and all(np.isfinite(float(v)) for v in metrics.values())


CARTPOLE = "control-jax/cartpole-masscart-v1"  # a JAX suite that compiles in seconds


def test_vmapped_seeds_equal_separate_runs():
    suite = get_suite(CARTPOLE)
    train = mtppo.make_train(CI, suite, 1)
    keys = [run_keys(s, len(suite.splits["train"])) for s in (0, 1)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *keys)
    (both, _), _ = jax.jit(jax.vmap(train))(*stacked)
    (one, _), _ = jax.jit(train)(*keys[1])
    assert _max_diff(jax.tree.map(lambda x: x[1], both.actor), one.actor) < 1e-5


def _run(tmp_path, suite, agent, steps, protocols=("mt",), **kw):
    cfg = RunConfig(suite=suite, agent=agent, seed=0, steps=steps, preset="ci",
                    protocols=protocols, eval_episodes=4, **kw)  # fmt: skip
    return run(cfg, tmp_path, progress=False), cfg


def test_resume_equals_uninterrupted_run(tmp_path):
    """A run stopped after its first checkpoint and resumed ends with the same parameters
    (JAX suite: the env state is in the checkpoint too)."""
    suite = get_suite(CARTPOLE)
    per_update = CI.steps_per_task * len(suite.splits["train"])
    spec = mtppo.MOORE
    whole = RunDir(tmp_path / "a", suite.id, "moore", 0)
    whole.open(resolve(RunConfig(suite=suite.id, agent="moore", steps=4 * per_update)))
    full = spec.train(CI, suite, 0, whole, 4 * per_update, False)
    part = RunDir(tmp_path / "b", suite.id, "moore", 0)
    part.open(resolve(RunConfig(suite=suite.id, agent="moore", steps=4 * per_update)))
    spec.train(CI, suite, 0, part, 2 * per_update, False)  # "killed" after 2 updates
    resumed = spec.train(CI, suite, 0, part, 4 * per_update, False)
    assert _max_diff(full.learner.actor, resumed.learner.actor) == 0.0
    assert [r["updates"] for r in read_jsonl(part.metrics_path)] == [2, 4]
    loaded = spec.load(part.path, suite)
    assert _max_diff(loaded.learner.actor, full.learner.actor) == 0.0


@pytest.mark.parametrize("agent", ["moore", "mtppo"])
def test_few_shot_trains_only_held_out_weights_and_heads(tmp_path, agent):
    suite, spec = get_suite("toy/goal-line-v1"), mtppo.MOORE if agent == "moore" else mtppo.MTPPO
    config = spec.presets["ci"]
    run_dir = RunDir(tmp_path, suite.id, agent, 0)
    run_dir.open(resolve(RunConfig(suite=suite.id, agent=agent, steps=192)))
    trained = mtppo.train(config, suite, 0, run_dir, 192, False)
    adapted = mtppo.adapt(trained, suite, "test", 128, 0, run_dir, False)
    before, after = trained.learner.actor["params"], adapted.learner.actor["params"]
    assert _max_diff(before["experts"], after["experts"]) == 0.0  # frozen
    test, train = np.array(suite.splits["test"]), np.array(suite.splits["train"])
    names = ("head_w1", "head_w2") + (("task_weights",) if agent == "moore" else ())
    for name in names:
        assert float(jnp.abs(before[name][test] - after[name][test]).max()) > 0
        assert float(jnp.abs(before[name][train] - after[name][train]).max()) == 0
    assert (run_dir.ckpt_dir / "few_shot_test" / "state.json").exists()


def test_few_shot_protocol_adapts_then_records_its_budget(tmp_path):
    run_dir, _ = _run(tmp_path, "toy/goal-line-v1", "mtppo", 576, ("zero_shot", "few_shot"),
                      few_shot_steps=384)  # fmt: skip
    records = read_jsonl(run_dir.eval_path)
    few = [r for r in records if r["protocol"] == "few_shot"]
    assert len(few) == 1 and few[0]["adapt_steps"] == 384 and few[0]["split"] == "test"
    assert "adapt_steps" not in [r for r in records if r["protocol"] == "zero_shot"][0]
    rows = [r for r in read_jsonl(run_dir.metrics_path) if r["split"] == "test"]
    assert rows and rows[-1]["env_steps"] == 384


def test_few_shot_refused_for_agents_that_cannot_adapt():
    from mtrl_bench.errors import UsageError

    with pytest.raises(UsageError, match="cannot adapt"):
        resolve(RunConfig(suite="toy/bandit-v1", agent="random", protocols=("few_shot",)))


@pytest.mark.parametrize("agent", ["mtppo", "moe", "moore", "mtppo-pcgrad", "moe-pcgrad"])
def test_learns_toy_goal_line(tmp_path, agent):
    """The task id alone says which way to walk: every agent must solve all train tasks."""
    run_dir, _ = _run(tmp_path, "toy/goal-line-v1", agent, 6000)
    success = [r["success"] for r in read_jsonl(run_dir.eval_path)]
    assert len(success) == 3 and min(success) >= 0.75, success


def test_bad_config_is_refused(mt3_jax):
    from mtrl_bench.errors import UsageError

    with pytest.raises(UsageError, match="network must be"):
        mtppo.build(mtppo.Config(network="resnet"), mt3_jax)
    with pytest.raises(UsageError, match="not a multiple"):
        mtppo.build(mtppo.Config(steps_per_task=100, envs_per_task=3), mt3_jax)
