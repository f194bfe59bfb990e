"""T2MIR's MoE layer (agents/t2mir.py): shapes, top-k routing, the balance and contrastive
losses on hand-made cases, and the EMA target gate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtrl_bench.agents import t2mir


def _init(module, *args):
    keys = {"params": jax.random.key(0), "noise": jax.random.key(1), "dropout": jax.random.key(2)}
    return module.init(keys, *args)


def test_shapes_and_expert_width():
    """Traced with ``jax.eval_shape`` (no compilation: this run's budget is tight)."""
    x = jax.ShapeDtypeStruct((4, 6, 32), jnp.float32)
    mask = jax.ShapeDtypeStruct((4, 6), jnp.bool_)
    layer = t2mir.T2MIRFFN(token_expert_dim=96, task_expert_dim=64, task_experts=8)
    keys = {"params": jax.random.key(0), "noise": jax.random.key(1), "dropout": jax.random.key(2)}
    variables = jax.eval_shape(lambda x, m: layer.init(keys, x, m, True), x, mask)
    y, aux = jax.eval_shape(lambda v, x, m: layer.apply(v, x, m, True, rngs=keys),
                            variables, x, mask)  # fmt: skip
    assert y.shape == (4, 6, 32)
    assert aux["balance_loss"].shape == () and aux["contrastive_loss"].shape == ()
    p = variables["params"]
    # each MoE outputs d/2; per-expert hidden width = expert_dim / E
    assert p["token_moe"]["experts"]["w_up"].shape == (6, 32, 96 // 6)
    assert p["token_moe"]["experts"]["w_down"].shape == (6, 96 // 6, 16)
    assert p["task_moe"]["experts"]["w_up"].shape == (8, 32, 64 // 8)
    assert p["task_moe"]["W"].shape == (8, 8)
    assert aux["token_scores"].shape == (24, 6) and aux["task_scores"].shape == (24, 8)


def test_top_k_routing():
    logits = jnp.array([[0.1, 2.0, -1.0, 1.0], [3.0, 0.0, 2.5, -4.0]])
    s = np.asarray(t2mir.top_k_scores(logits, 2))
    assert (s > 0).sum(1).tolist() == [2, 2]
    np.testing.assert_allclose(s.sum(1), 1.0, rtol=1e-6)
    assert set(np.flatnonzero(s[0])) == {1, 3} and set(np.flatnonzero(s[1])) == {0, 2}
    np.testing.assert_allclose(s[0, 1] / s[0, 3], np.exp(1.0), rtol=1e-5)  # softmax over the 2
    # an expert outside the top k contributes nothing: changing its weights keeps the output
    experts = t2mir.Experts(4, 16, 3, 0.0)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5)), jnp.float32)
    shapes = {"w_up": (4, 5, 4), "b_up": (4, 4), "w_down": (4, 4, 3), "b_down": (4, 3)}
    v = {"params": {k: jnp.asarray(rng.normal(size=sh), jnp.float32) for k, sh in shapes.items()}}
    y = experts.apply(v, x, jnp.asarray(s), False)
    w = v["params"]["w_down"].at[2].add(5.0)  # row 0 skips expert 2
    v2 = {"params": {**v["params"], "w_down": w}}
    y2 = experts.apply(v2, x, jnp.asarray(s), False)
    np.testing.assert_allclose(y2[0], y[0], rtol=1e-6)
    assert not np.allclose(y2[1], y[1])  # row 1 uses expert 2


def test_balance_loss_hand_made():
    assert float(t2mir.cv_squared(jnp.array([2.0, 2.0, 2.0]))) == 0.0
    # (4, 0, 0, 0): unbiased variance 4, mean 1 -> CV^2 = 4
    assert float(t2mir.cv_squared(jnp.array([4.0, 0.0, 0.0, 0.0]))) == pytest.approx(4.0)
    # load: with tiny noise, the probability of being in the top k is 1 for the top-k experts
    clean = jnp.array([[5.0, 4.0, 0.0, -3.0], [0.0, 6.0, 5.0, 1.0]])
    load = t2mir.noisy_load(clean, clean, jnp.full_like(clean, 1e-3), 2)
    np.testing.assert_allclose(load, [1.0, 2.0, 1.0, 0.0], atol=1e-6)


@pytest.mark.slow  # compiles the module (~10 s CPU here); the functions above run by default
def test_token_moe_balance_loss_end_to_end():
    """The token MoE's loss at evaluation: every token on experts {0, 1} of 4."""
    moe = t2mir.TokenMoE(out=2, num_experts=4, k=2, expert_dim=8, balance_weight=0.1)
    x = jnp.ones((6, 3))
    v = moe.init({"params": jax.random.key(0)}, x, False)
    gate = jnp.diag(jnp.array([9.0, 8, 0, 0]))
    router = {"in": {"kernel": jnp.eye(3, 4)}, "out": {"kernel": gate}}
    v = {"params": {**v["params"], "router": router}}
    _, aux = moe.apply(v, x, False)
    scores = np.asarray(aux["token_scores"])
    importance, load = scores.sum(0), (scores > 0).sum(0).astype(float)
    cv = lambda z: np.var(z, ddof=1) / np.mean(z) ** 2  # noqa: E731
    assert set(np.flatnonzero(importance)) == {0, 1}
    assert float(aux["balance_loss"]) == pytest.approx(0.1 * (cv(importance) + cv(load)),
                                                       rel=1e-5)  # fmt: skip


def test_contrastive_loss_is_minimal_when_the_router_separates_tasks():
    tasks = 4
    separated = jnp.eye(tasks)  # each task routed to its own expert
    q = k = jnp.concatenate([separated, separated])  # paired halves: rows i and i + 4
    w = 20.0 * jnp.eye(tasks)
    low = float(t2mir.contrastive_loss(q, k, w))
    mixed = jnp.full((2 * tasks, tasks), 1.0 / tasks)  # every task on the same mixture
    flat = float(t2mir.contrastive_loss(mixed, mixed, w))
    assert low < 1e-6
    assert flat == pytest.approx(np.log(tasks), rel=1e-5)  # chance: log(B/2)
    # swapping the second half's order breaks the pairing: the loss rises
    k_bad = jnp.concatenate([separated, separated[::-1]])
    assert float(t2mir.contrastive_loss(q, k_bad, w)) > 5


def test_ema_target_update():
    x = jax.random.normal(jax.random.key(0), (2, 3, 8))
    moe = t2mir.TaskMoE(out=4, num_experts=4, expert_dim=8)
    shapes = jax.eval_shape(lambda x: moe.init(jax.random.key(1), x, jnp.ones((2, 3)), False), x)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32),
                          shapes["params"])  # fmt: skip
    params = t2mir.init_target(params)
    for part in ("in", "out"):  # the target starts as a copy of the online gate
        np.testing.assert_array_equal(params[t2mir.TARGET][part]["kernel"],
                                      params["router"][part]["kernel"])  # fmt: skip
    stepped = jax.tree.map(lambda p: p + 1.0, params)  # an optimiser step moved everything
    new = t2mir.ema_update(stepped, params, tau=0.005)
    old_t = params[t2mir.TARGET]["in"]["kernel"]
    np.testing.assert_allclose(new[t2mir.TARGET]["in"]["kernel"],
                               0.005 * (params["router"]["in"]["kernel"] + 1.0) + 0.995 * old_t,
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_array_equal(new["router"]["in"]["kernel"], stepped["router"]["in"]["kernel"])
    np.testing.assert_array_equal(new["W"], stepped["W"])


@pytest.mark.slow  # compiles the module's gradient (~10 s CPU here)
def test_no_gradient_reaches_the_target_gate():
    x = jax.random.normal(jax.random.key(0), (2, 3, 8))
    moe = t2mir.TaskMoE(out=4, num_experts=4, expert_dim=8)
    mask = jnp.ones((2, 3))
    params = t2mir.init_target(moe.init(jax.random.key(1), x, mask, False)["params"])

    def loss(p):
        y, aux = moe.apply({"params": p}, x, mask, False)
        return aux["contrastive_loss"] + y.sum()

    grads = jax.jit(jax.grad(loss))(params)
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads[t2mir.TARGET]))
    assert float(jnp.abs(grads["router"]["in"]["kernel"]).max()) > 0
