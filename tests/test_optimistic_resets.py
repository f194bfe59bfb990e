"""Optimistic resets (``jax_env.reset_done``, used by ``jax_vector.vector_step``): a step resets
only the sub-envs whose episode ended, ``slots`` at a time, and the rollout stays bit-identical
to resetting every sub-env from its own key on every step (issue 17).

No layout is shared or reused: each finished sub-env gets the reset of its own fresh key, so a
long run's episode starts follow the generator's distribution whatever the bursts of episode
ends; the MiniGrid test checks both the identity and the distribution of the starts it saw."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mtrl_bench.envs.minigrid_jax.env import MiniGridJax
from mtrl_bench.envs.traffic import signal, signal_jax
from mtrl_bench.jax_env import reset_slots, stack_params
from mtrl_bench.jax_vector import env_keys, reset_one, step_one, vector_step
from mtrl_bench.registry import get_suite


def _rollouts(env, params, batch: int, steps: int, slots: int, actions, start=lambda s: s):
    """The same rollout through ``vector_step(slots=slots)`` and ``vmap(step_one)``."""
    keys, _, state = jax.vmap(partial(reset_one, env))(env_keys(3, batch), params)
    state = start(state)

    def run(step):
        def one(c, k):
            out = step(*c, actions(k, batch), params)
            return (out.keys, out.state), (out._replace(keys=None), out.state)

        return jax.lax.scan(one, (keys, state), jax.random.split(jax.random.key(5), steps))[1]

    fast = jax.jit(lambda: run(partial(vector_step, env, slots=slots)))()
    plain = jax.jit(lambda: run(jax.vmap(partial(step_one, env))))()
    return fast, plain


@pytest.mark.slow  # ~30 s of CPU, mostly compiling; test_jax_vector checks exactness by default
def test_minigrid_optimistic_resets_are_exact_and_unbiased():
    """LavaGapS7 with turns and forward only (lava ends many episodes), 48 sub-envs, 4 slots:
    steps with 1-4 and with more than 4 episode ends both occur (one round, several rounds), and
    every transition equals the reset-every-sub-env reference. The gap cell of the episodes
    started in the run is uniform over minigrid's 3 x 5 choices (chi-square)."""
    task = next(t for t in get_suite("minigrid/mt7-v1").tasks if t.name == "MiniGrid-LavaGapS7-v0")
    env = MiniGridJax([task])
    params = stack_params(env, [task] * 48)
    fast, plain = _rollouts(env, params, 48, 250, 4,
                            lambda k, b: jax.random.randint(k, (b,), 0, 3))  # fmt: skip
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    out, state = fast
    done = np.asarray(out.terminated | out.truncated)
    ends = done.sum(1)
    assert ((ends >= 1) & (ends <= 4)).any() and (ends > 4).any()
    # the lava column and its gap row of every episode started in the run
    grid = np.asarray(state.grid)[done]  # [resets, x, y, 3]
    lava = grid[..., 0] == 9
    gx = lava.any(2).argmax(1)
    gy = np.array([np.flatnonzero(~lava[i, x, 1:6])[0] + 1 for i, x in enumerate(gx)])
    assert len(gx) > 300 and set(gx) <= {2, 3, 4} and set(gy) <= {1, 2, 3, 4, 5}
    counts = np.bincount((gx - 2) * 5 + gy - 1, minlength=15)
    assert stats.chisquare(counts).pvalue > 1e-3, counts


def test_signal_control_optimistic_resets_and_yellow_skip():
    """The CTM through ``vector_step`` (8 sub-envs, 2 slots, short episodes) equals its
    reset-every-step reference; a decision keeping the phase simulates GREEN_S seconds, one
    changing it GREEN_S + YELLOW_S."""
    env = signal_jax.SignalJax()
    suite = signal_jax.INFLOW
    params = stack_params(env, [suite.tasks[i % len(suite.tasks)] for i in range(8)])
    left = jnp.array([2, 2, 2, 2, 2, 5, 8, 8])  # decisions before the horizon: 5 end together
    start = lambda st: st._replace(t=signal.HORIZON_S - signal.GREEN_S * left)  # noqa: E731
    actions = lambda k, b: jnp.zeros(b, jnp.int32)  # noqa: E731  (phase kept: GREEN_S each)
    fast, plain = _rollouts(env, params, 8, 12, 2, actions, start)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.asarray(fast[0].truncated).sum(1).tolist()[:8] == [0, 5, 0, 0, 1, 0, 0, 2]
    state = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 8), params)[1]
    one = jax.jit(env.step_env)
    p = jax.tree.map(lambda x: x[0], params)
    st = jax.tree.map(lambda x: x[0], state)
    _, st, *_ = one(jax.random.key(1), st, 2, p)
    for action, seconds in [(2, signal.GREEN_S), (3, signal.GREEN_S + signal.YELLOW_S)]:
        t0 = int(st.t)
        _, st, *_ = one(jax.random.key(1), st, action, p)
        assert int(st.t) - t0 == seconds


def test_default_slots_grow_with_the_batch():
    assert [reset_slots(b) for b in (1, 3, 64, 4096, 16384)] == [1, 1, 4, 32, 64]
