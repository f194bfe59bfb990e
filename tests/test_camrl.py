"""CAMRL (agents/camrl.py and its parts): Frank-Wolfe, smooth rank, the mode indicator,
uncertainty weighting, the composite loss, the asymmetric row update, determinism, exact resume
and learning on a toy suite. Training tests compile CAMRL's iteration (~10 s of CPU each), so
they run under ``slow``; the default run trains CAMRL through the agent contract test."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtrl_bench.agents import camrl
from mtrl_bench.agents import camrl_parts as parts
from mtrl_bench.registry import get_suite
from mtrl_bench.results import RunDir, read_jsonl
from mtrl_bench.runner import RunConfig, resolve, run

CI = camrl.CAMRL.presets["ci"]


def _max_diff(a, b) -> float:
    a, b = (jax.tree.map(lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x, t) for t in (a, b))  # fmt: skip
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.abs(x - y).max()), a, b)))


def test_frank_wolfe_stays_feasible_and_reaches_the_minimum():
    r = 0.05
    # minimiser outside the ball in every coordinate: the clipped corner, reached exactly
    c = jnp.array([-1.0, 1.0, 0.3])
    x = parts.frank_wolfe(lambda x: ((x - c) ** 2).sum(), jnp.zeros(3), r, 10)
    np.testing.assert_allclose(x, [0.0, r, r], atol=1e-7)
    # an interior minimiser: every iterate feasible, and the gap within FW's 2 L D^2 / (k + 2)
    c = jnp.array([0.01, 0.03, 0.045, 0.02])
    f = lambda x: ((x - c) ** 2).sum()  # noqa: E731
    bound = 2 * 2 * (4 * r**2)  # L = 2, D^2 = n r^2
    for k in (1, 5, 10, 50, 400):
        x = parts.frank_wolfe(f, jnp.zeros(4), r, k)
        assert bool(((x >= 0) & (x <= r + 1e-7)).all()), x
        assert float(f(x)) <= bound / (k + 2) + 1e-9, (k, float(f(x)))
    assert float(jnp.abs(x - c).max()) < 2e-3
    # ``free``: held entries never move
    x = parts.frank_wolfe(f, jnp.array([1.0, 0, 0, 0]), r, 10, jnp.arange(4) != 0)
    assert float(x[0]) == 1.0


def test_soft_rank_approaches_hard_rank_as_slope_grows():
    x = jnp.array([0.3, 1.0, 0.0, 0.62, 0.05, 0.6])  # gaps > the 0.01 shift
    hard = parts.hard_rank(x)
    np.testing.assert_array_equal(hard, [4, 1, 6, 2, 5, 3])  # descending, 1 = largest
    errors = [float(jnp.abs(parts.soft_rank(x, x, s) - hard).max()) for s in (2, 20, 200, 2e4)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0.5
    assert errors[-1] < 1e-3
    # ties share the worse rank, as the code's 1 + T - rankdata(x, "min")
    np.testing.assert_array_equal(parts.hard_rank(jnp.array([2.0, 1.0, 2.0])), [2, 3, 2])


def test_indicator_on_hand_made_losses():
    one_outlier = jnp.array([0.0] * 9 + [10.0])  # mean 1, std 3: 10 > 1 + 2 * 3
    p = parts.mode_probability(one_outlier, jnp.zeros(10), jnp.float32(0))
    assert float(p) == pytest.approx((0.1 + 1 + 1) / 3)
    # three tasks never have a 2-sigma outlier; time and z terms only
    p = parts.mode_probability(jnp.array([0.0, 0.0, 5.0]), jnp.full(3, 40.0), jnp.float32(1000))
    assert float(p) == pytest.approx(2 * np.exp(-1) / 3, rel=1e-6)
    # losses far below their history: the z term exceeds 1 and p is clipped
    p = parts.mode_probability(jnp.ones(4), jnp.full(4, -400.0), jnp.float32(0))
    assert float(p) == 1.0


def test_uncertainty_weighting_on_a_hand_made_history():
    rows = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [3.0, 2.5, 1.0, 0.0, 6.0], [2.0, 6.0, 1.0, 1.0, 9.0]])
    history = parts.running((5,))
    on = jnp.array([True, True, False, True, True])
    terms = jnp.array([0.5, 1.0, 7.0, 2.0, 3.0])
    history = parts.running_add(history, rows[0])
    # one recorded value: the plain sum of the enabled terms
    assert float(parts.uncertainty_weighted(terms, history, on)) == pytest.approx(6.5)
    history = parts.running_add(history, rows[1])
    history = parts.running_add(history, rows[2], keep=False)  # not recorded
    history = parts.running_add(history, rows[2])
    sigma = rows.std(0)  # population std of the whole history
    np.testing.assert_allclose(parts.running_std(history), sigma, rtol=1e-6)
    m = np.array(on)
    expected = (np.array(terms)[m] / sigma[m] ** 2).sum() + np.log(sigma[m]).sum()
    assert float(parts.uncertainty_weighted(terms, history, on)) == pytest.approx(expected, 1e-5)


def _context(key, t=4, p=50):
    kw, kb = jax.random.split(key)
    w = jax.random.normal(kw, (t, p))
    transfer = jnp.eye(t) + 0.05 * jax.random.uniform(kb, (t, t)) * (1 - jnp.eye(t))
    placed = jnp.array([True, False, True, False])
    ctx = parts.RowContext(transfer, jnp.array([0.3, -0.1, 0.2, 0.5]), w @ w.T, placed, ~placed,
                           jnp.tile(jnp.arange(1.0, t + 1), (t, 1)), jnp.ones((t, t)))  # fmt: skip
    return w, ctx


def test_reconstruction_term_equals_the_direct_sum():
    w, ctx = _context(jax.random.key(0))
    t, row = 1, ctx.transfer[1]
    direct = 0.0
    for s in (3,):  # U \ t: the unplaced tasks other than t
        recon = sum(ctx.transfer[j, s] * w[j] for j in (0, 2)) + row[s] * w[t]
        direct += float(((w[s] - recon) ** 2).sum())
    terms = jax.jit(parts.composite_terms, static_argnums=(3, 4, 5))(row, jnp.int32(t), ctx, 0.01,
                                                                      200.0, 0.01)  # fmt: skip
    assert float(terms[1]) == pytest.approx(direct, rel=1e-4)
    assert float(terms[0]) == pytest.approx(float((1 + 0.01 * (row.sum() - row[t])) * -0.1), rel=1e-5)


def test_row_update_is_asymmetric_and_non_negative():
    _, ctx = _context(jax.random.key(1))
    on = jnp.ones(5, bool)
    history = parts.running_add(parts.running_add(parts.running((5,)), jnp.ones(5)), 3 * jnp.ones(5))
    for t in range(4):

        def f(row, t=t):
            return parts.uncertainty_weighted(
                parts.composite_terms(row, jnp.int32(t), ctx, 0.01, 200.0, 0.01), history, on)

        new = parts.update_row(ctx.transfer, jnp.int32(t), f, 0.05, 10)
        others = np.arange(4) != t
        np.testing.assert_array_equal(new[others], ctx.transfer[others])  # only row t moves
        assert float(new[t, t]) == 1.0 and bool((new >= 0).all()) and bool((new <= 1).all())
        assert float(jnp.abs(new[t] - ctx.transfer[t]).max()) > 0
        assert bool((new[t][others] <= 0.05 + 1e-7).all())


def _train(tmp_path, name, steps, config=CI, suite="toy/goal-line-v1"):
    """Train ``steps`` in the run directory ``name`` (opened with a fixed budget, so a second
    call with more steps resumes it)."""
    s = get_suite(suite)
    run_dir = RunDir(tmp_path / name, s.id, "camrl", 0)
    run_dir.open(resolve(RunConfig(suite=s.id, agent="camrl", steps=10**6, preset="ci",
                                   agent_config=config)))  # fmt: skip
    return camrl.train(config, s, 0, run_dir, steps, False), run_dir


@pytest.mark.slow
def test_same_key_same_parameters_and_exact_resume(tmp_path):
    """Four iterations (the last two curriculum ones with mode ``always``) in one go, twice, and
    stopped after two then resumed: identical learners and B; B stays non-negative."""
    config = replace(CI, mode="always")
    per_iter = config.steps_per_task * 3
    a, _ = _train(tmp_path, "a", 4 * per_iter, config)
    b, _ = _train(tmp_path, "b", 4 * per_iter, config)
    assert _max_diff(a.state, b.state) == 0.0
    _, part = _train(tmp_path, "c", 2 * per_iter, config)  # "killed" after 2 iterations
    resumed, _ = _train(tmp_path, "c", 4 * per_iter, config)
    assert _max_diff(a.state, resumed.state) == 0.0
    assert [r["updates"] for r in read_jsonl(part.metrics_path)] == [2, 4]
    assert int(a.state.curriculum_iters) == 2
    transfer = np.asarray(a.state.transfer)
    off = transfer[~np.eye(3, dtype=bool)]
    assert (off >= 0).all() and (off <= config.fw_radius + 1e-7).all() and off.max() > 0
    np.testing.assert_array_equal(np.diag(transfer), 1.0)
    loaded = camrl.load(part.path, get_suite("toy/goal-line-v1"))
    assert _max_diff(loaded.state.tasks, a.state.tasks) == 0.0


@pytest.mark.slow
def test_learns_toy_goal_line(tmp_path):
    """The task id alone says which way to walk: every train task must be solved."""
    cfg = RunConfig(suite="toy/goal-line-v1", agent="camrl", seed=0, steps=6000, preset="ci",
                    protocols=("mt",), eval_episodes=4)  # fmt: skip
    run_dir = run(cfg, tmp_path, progress=False)
    success = [r["success"] for r in read_jsonl(run_dir.eval_path)]
    assert len(success) == 3 and min(success) >= 0.75, success
    rows = read_jsonl(run_dir.metrics_path)
    assert rows[-1]["curriculum_iters"] > 0  # the mode switch fired


def test_bad_config_is_refused():
    from mtrl_bench.errors import UsageError

    suite = get_suite("toy/goal-line-v1")
    with pytest.raises(UsageError, match="mode must be"):
        camrl.build(replace(CI, mode="sometimes"), suite)
    with pytest.raises(UsageError, match="prior"):
        camrl.build(replace(CI, prior="no/such/dir"), suite)


@pytest.mark.slow
def test_sac_path_learns_reach_and_resumes_exactly(tmp_path):
    """Continuous suites train one SAC learner per task (replay, numpy RNG and envs restored)."""
    per_iter = CI.epoch_steps * 3
    total = CI.learning_starts * 3 + 4 * per_iter
    a, _ = _train(tmp_path, "a", total, suite="toy/reach-1d-v1")
    _train(tmp_path, "b", total - 2 * per_iter, suite="toy/reach-1d-v1")
    b, _ = _train(tmp_path, "b", total, suite="toy/reach-1d-v1")
    assert _max_diff(a.state, b.state) == 0.0
    cfg = RunConfig(suite="toy/reach-1d-v1", agent="camrl", steps=6000, preset="ci",
                    protocols=("mt",), eval_episodes=4, deterministic_eval=True)  # fmt: skip
    success = [r["success"] for r in read_jsonl(run(cfg, tmp_path / "c", progress=False).eval_path)]
    assert min(success) >= 0.75, success


@pytest.mark.slow
def test_jax_suite_chunk_resumes_exactly(tmp_path):
    """On a JAX suite a chunk of iterations is one jitted scan; the env state is checkpointed."""
    suite = "control-jax/cartpole-masscart-v1"
    per_iter = CI.steps_per_task * len(get_suite(suite).splits["train"])
    config = replace(CI, mode="always")
    a, _ = _train(tmp_path, "a", 4 * per_iter, config, suite)
    _train(tmp_path, "b", 2 * per_iter, config, suite)
    b, _ = _train(tmp_path, "b", 4 * per_iter, config, suite)
    assert _max_diff(a.state, b.state) == 0.0 and int(a.state.curriculum_iters) == 2
