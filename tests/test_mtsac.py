"""The multi-task SAC family (agents/mtsac.py, agents/replay.py, nets.SACNet): networks, slots,
the squashed-Gaussian log-prob, replay, determinism, exact resume, few-shot freezing, learning."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtrl_bench.agents import mtsac, nets
from mtrl_bench.agents.replay import TaskReplay
from mtrl_bench.errors import UsageError
from mtrl_bench.evaluation import evaluate
from mtrl_bench.registry import get_suite
from mtrl_bench.results import RunDir
from mtrl_bench.runner import RunConfig, resolve
from mtrl_bench.types import Suite, Task

AGENTS = ("mtsac", "mtmh-sac", "moe-sac", "moore-sac", "pcgrad-sac")
# actor_starts = learning_starts: one compiled update per fit (compiles dominate these tests);
# the resume test delays the actor to cover the critic-only update too.
TINY = replace(mtsac.Config(), widths=(32, 32), batch_per_task=16, buffer_per_task=1000,
               random_steps=40, learning_starts=40, actor_starts=40, checkpoint_every=50)  # fmt: skip


def _run_dir(tmp_path, agent="mtsac", suite="toy/reach-1d-v1", steps=600) -> RunDir:
    run_dir = RunDir(tmp_path, suite, agent, 0)
    run_dir.open(resolve(RunConfig(suite=suite, agent=agent, preset="ci", steps=steps)))
    return run_dir


def _fit(config, tmp_path, steps, name="a"):
    suite = get_suite("toy/reach-1d-v1")
    algo = mtsac.build(config, suite)
    run_dir = _run_dir(tmp_path / name)
    learner = mtsac._fit(algo, suite, algo.init(jax.random.key(0)), 0, run_dir,
                         run_dir.ckpt_dir, steps, False, "train")  # fmt: skip
    return learner, run_dir


@pytest.mark.parametrize("kind", ["mtsac", "mh", "moe", "moore"])
def test_sacnet_shapes_and_task_dependence(kind):
    net = nets.SACNet(kind, n_experts=3, num_slots=4, out=5, widths=(16, 16))
    x = jax.random.normal(jax.random.key(0), (4, 7, 6))
    params = net.init(jax.random.key(1), x, jnp.arange(4))
    y = net.apply(params, x, jnp.arange(4))
    assert y.shape == (4, 7, 5)
    same_x = jnp.broadcast_to(x[:1], x.shape)
    out = net.apply(params, same_x, jnp.arange(4))
    assert float(jnp.abs(out[0] - out[1]).max()) > 0, "the task id must change the output"
    if kind in ("moe", "moore"):  # experts see the state only: k stacked matrices
        assert params["params"]["experts_w0"].shape == (3, 6, 16)
        assert params["params"]["task_weights"].shape == (4, 3)


def test_gram_schmidt_gradient_is_finite_at_zero_experts():
    g = jax.grad(lambda u: nets.gram_schmidt(u).sum())(jnp.zeros((2, 3, 8)))
    assert bool(jnp.isfinite(g).all())
    u = jax.random.normal(jax.random.key(0), (4, 3, 8))
    np.testing.assert_allclose(
        nets._safe_norm(u), jnp.linalg.norm(u, axis=-1, keepdims=True), rtol=1e-6
    )


def test_task_slots_share_same_named_tasks():
    tasks = (Task("reach-v3", 0, 500), Task("push-v3", 1, 500), Task("reach-v3", 2, 500),
             Task("push-v3", 3, 500), Task("door-v3", 4, 500))  # fmt: skip
    suite = Suite("x/y-v1", tasks, {"train": (0, 1), "test": (2, 3, 4)}, "unused:unused")
    np.testing.assert_array_equal(mtsac.task_slots(suite), [0, 1, 0, 1, 2])


def test_squashed_gaussian_log_prob_is_a_density():
    """exp(log pi) of the tanh-squashed samples integrates to ~1 over (-1, 1) (1-D actions)."""
    suite = get_suite("toy/reach-1d-v1")
    algo = mtsac.build(TINY, suite)
    learner = algo.init(jax.random.key(0))
    grid = jnp.linspace(-0.999, 0.999, 4001)
    mean, std = 0.3, 0.5  # evaluate the change of variables directly on a grid
    u = jnp.arctanh(grid)
    logp = jax.scipy.stats.norm.logpdf(u, mean, std) - jnp.log(1 - grid**2 + 1e-6)
    assert abs(float(jnp.trapezoid(jnp.exp(logp), grid)) - 1.0) < 0.01
    # and the agent's actions lie in the action box
    a = algo.act(learner.actor, jnp.zeros((3, 1)), jnp.arange(3), jax.random.key(1), False)
    assert a.shape == (3, 1) and bool((jnp.abs(a) <= 1).all())


def test_replay_stratified_sampling_and_state_roundtrip():
    replay = TaskReplay(2, capacity=5, obs_dim=1, act_dim=1)
    for step in range(7):  # task 0 wraps around, task 1 gets one transition per step too
        x = np.array([[step], [100 + step]], np.float32)
        replay.add(np.array([0, 1]), obs=x, actions=x, rewards=x[:, 0], next_obs=x,
                   terminated=np.zeros(2))  # fmt: skip
    batch = replay.sample(np.random.default_rng(0), 50)
    assert batch["obs"].shape == (2, 50, 1)
    assert set(batch["obs"][0, :, 0]) <= {2, 3, 4, 5, 6} and (batch["obs"][1] >= 100).all()
    other = TaskReplay(2, capacity=5, obs_dim=1, act_dim=1)
    other.load_state(replay.state())
    again = other.sample(np.random.default_rng(0), 50)
    np.testing.assert_array_equal(again["obs"], batch["obs"])


def test_same_seed_same_parameters_and_exact_resume(tmp_path):
    config = replace(TINY, actor_starts=60)  # critic-only updates first, then full ones
    a, _ = _fit(config, tmp_path, 300, "a")  # 100 vector steps, 2 checkpoints
    b, _ = _fit(config, tmp_path, 300, "b")
    for x, y in zip(jax.tree.leaves(a.actor), jax.tree.leaves(b.actor), strict=True):
        np.testing.assert_array_equal(x, y)
    # interrupted after the first chunk (50 vector steps), then resumed from the checkpoint
    _, run_dir = _fit(config, tmp_path, 150, "c")
    suite = get_suite("toy/reach-1d-v1")
    algo = mtsac.build(config, suite)
    resumed = mtsac._fit(algo, suite, algo.init(jax.random.key(0)), 0, run_dir,
                         run_dir.ckpt_dir, 300, False, "train")  # fmt: skip
    assert int(resumed.steps) == int(a.steps) == 100 and int(resumed.updates) == int(a.updates)
    for tree in ("actor", "critic", "target", "log_alpha"):
        for x, y in zip(jax.tree.leaves(getattr(a, tree)), jax.tree.leaves(getattr(resumed, tree)),
                        strict=True):  # fmt: skip
            np.testing.assert_array_equal(x, y)
    assert len(list(run_dir.ckpt_dir.glob("replay-*.npz"))) == 1  # older replay files removed


@pytest.mark.parametrize("agent", ["moore-sac", pytest.param("mtsac", marks=pytest.mark.slow)])
def test_few_shot_adapts_the_held_out_slot(tmp_path, agent):
    from mtrl_bench.registry import get_agent

    spec, suite = get_agent(agent), get_suite("toy/reach-1d-v1")
    config = replace(TINY, network=spec.presets["ci"].network)
    algo = mtsac.build(config, suite)
    run_dir = _run_dir(tmp_path, agent)
    learner = mtsac._fit(algo, suite, algo.init(jax.random.key(0)), 0, run_dir,
                         run_dir.ckpt_dir, 300, False, "train")  # fmt: skip
    adapted = mtsac.adapt(mtsac.SACPolicy(algo, learner), suite, "test", 150, 0, run_dir, False)
    before, after = learner.actor["params"], adapted.learner.actor["params"]
    assert mtsac.task_slots(suite)[3] == 3  # an unseen target: a slot of its own
    if agent == "moore-sac":  # experts frozen, the held-out head trains, training heads do not
        for name in before:
            if name.startswith("experts"):
                np.testing.assert_array_equal(before[name], after[name])
        assert float(jnp.abs(before["head_w"][3] - after["head_w"][3]).max()) > 0
        np.testing.assert_array_equal(before["head_w"][:3], after["head_w"][:3])
    else:  # no experts: the shared MLP is fine-tuned
        assert any(float(jnp.abs(x - y).max()) > 0 for x, y in
                   zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True))  # fmt: skip


# MTSAC and MOORE-SAC in the default run; the other three (the same update code with other
# networks or PCGrad, ~30 s each here) in the slow run.
@pytest.mark.parametrize("agent", [a if a in ("mtsac", "moore-sac") else
                                   pytest.param(a, marks=pytest.mark.slow) for a in AGENTS])  # fmt: skip
def test_learns_toy_reach(tmp_path, agent):
    from mtrl_bench.registry import get_agent

    spec, suite = get_agent(agent), get_suite("toy/reach-1d-v1")
    policy = spec.train(spec.presets["ci"], suite, 0, _run_dir(tmp_path, agent), 2400, False)
    result = evaluate(policy, suite, "train", 6, 0, deterministic=True)
    assert result.success >= 0.9, [t.success for t in result.tasks]


def test_refuses_discrete_actions():
    with pytest.raises(UsageError, match="Box action space"):
        mtsac.build(mtsac.Config(), get_suite("toy/goal-line-v1"))
    with pytest.raises(UsageError, match="network must be"):
        mtsac.build(replace(mtsac.Config(), network="cnn"), get_suite("toy/reach-1d-v1"))
