"""CAMRL's mathematical parts (``agents/camrl.py`` is the algorithm; read it first): the smooth
rank, Frank-Wolfe on the transfer row, the mode indicator, running term statistics with
uncertainty weighting, and the composite loss of one row of B.

Everything is a pure function of arrays, so it runs inside CAMRL's jitted iteration. Equations
from Huang et al., "Curriculum-based Asymmetric Multi-task Reinforcement Learning", TPAMI 2023
(supplement section 7.3); constants from its reference code (``huanghanchi/CAMRL``,
``CAMRL.py``: ``pss``, ``losst``, ``optimize``, the indicator ``indexV``), written here from
their description, not copied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

N_TERMS = 5  # task loss, weight reconstruction, prior rank, loss rank, similarity rank


def soft_rank(x: jax.Array, points: jax.Array, slope: float = 200.0,
              shift: float = 0.01) -> jax.Array:  # fmt: skip
    """Smooth descending rank of each ``x_j`` among ``points``:
    ``|P| - sum_p (tanh(slope (x_j - shift - p)) / 2 + 1/2)``; as ``slope`` grows it counts the
    points ``>= x_j - shift``, i.e. ``hard_rank(x)`` for values further apart than ``shift``."""
    steps = 0.5 * jnp.tanh(slope * (x[:, None] - shift - points[None, :])) + 0.5
    return points.shape[-1] - steps.sum(-1)


def hard_rank(x: jax.Array) -> jax.Array:
    """Descending rank, 1 = largest; ties share the worse rank (the code's
    ``1 + T - rankdata(x, 'min')`` = ``#{i: x_i >= x_j}``)."""
    return (x[None, :] >= x[:, None]).sum(-1).astype(jnp.float32)


def frank_wolfe(f: Callable[[jax.Array], jax.Array], x0: jax.Array, radius: float, iters: int,
                free: jax.Array | None = None, upper: float = 100.0) -> jax.Array:  # fmt: skip
    """``iters`` steps of vanilla Frank-Wolfe on the L-inf ball of ``radius`` (linear
    minimisation oracle ``-radius sign(grad)``, step ``2 / (k + 2)``), each followed by a clamp to
    ``[0, upper]`` (the reference code's non-negativity). ``free``: the entries it may move (the
    others, B's diagonal, stay). From a point in ``[0, radius]`` it stays in ``[0, radius]``."""
    free = jnp.ones_like(x0, bool) if free is None else free

    def step(k, x):
        s = -radius * jnp.sign(jax.grad(f)(x))
        moved = jnp.clip(x + 2.0 / (k + 2.0) * (s - x), 0.0, upper)
        return jnp.where(free, moved, x)

    return jax.lax.fori_loop(0, iters, step, x0)


def update_row(transfer: jax.Array, t: jax.Array, f: Callable[[jax.Array], jax.Array],
               radius: float, iters: int) -> jax.Array:  # fmt: skip
    """B with row ``t`` (its off-diagonal entries) moved by ``frank_wolfe`` on ``f(row)``; every
    other entry, and B_tt, unchanged (the asymmetric update of source task t)."""
    row = frank_wolfe(f, transfer[t], radius, iters, jnp.arange(transfer.shape[0]) != t)
    return transfer.at[t].set(row)


def mode_probability(losses: jax.Array, z: jax.Array, iteration: jax.Array, n_sigma: float = 2.0,
                     tau: float = 1000.0, z_scale: float = 40.0) -> jax.Array:  # fmt: skip
    """Probability of a curriculum MTRL iteration: a third each of the share of tasks whose loss
    lies beyond ``n_sigma`` standard deviations of the tasks' mean, ``exp(-iteration / tau)`` and
    ``exp(-mean(z) / z_scale)`` with ``z`` the losses z-scored by each task's history. Clipped
    to [0, 1] (the last term exceeds 1 when losses fall below their history's mean)."""
    mu, sd = losses.mean(), losses.std()
    outliers = ((losses < mu - n_sigma * sd) | (losses > mu + n_sigma * sd)).mean()
    p = (outliers + jnp.exp(-iteration / tau) + jnp.exp(-z.mean() / z_scale)) / 3
    return jnp.clip(p, 0.0, 1.0)


class Running(NamedTuple):
    """Count, mean and sum of squared deviations (Welford) of a stream of vectors: the whole
    history's population std in constant memory (the code keeps every value in lists)."""

    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def running(shape: tuple[int, ...]) -> Running:
    zeros = jnp.zeros(shape, jnp.float32)
    return Running(jnp.zeros((), jnp.float32), zeros, zeros)


def running_add(r: Running, x: jax.Array, keep: jax.Array | bool = True) -> Running:
    """Add one observation ``x`` (if ``keep``)."""
    count = r.count + 1
    delta = x - r.mean
    mean = r.mean + delta / count
    new = Running(count, mean, r.m2 + delta * (x - mean))
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, r)


def running_std(r: Running) -> jax.Array:
    return jnp.sqrt(r.m2 / jnp.maximum(r.count, 1.0))


def uncertainty_weighted(terms: jax.Array, history: Running, on: jax.Array,
                         eps: float = 1e-8) -> jax.Array:  # fmt: skip
    """``sum_m terms_m / sigma_m^2 + log prod_m sigma_m`` over the terms switched ``on``, with
    ``sigma_m`` the std of term m's recorded history (Kendall et al.'s weighting as CAMRL's code
    does it); the plain sum of the terms until two values are recorded."""
    sigma = running_std(history)
    weighted = jnp.where(on, terms / (sigma**2 + eps) + jnp.log(sigma + eps), 0.0).sum()
    return jnp.where(history.count >= 2, weighted, jnp.where(on, terms, 0.0).sum())


class RowContext(NamedTuple):
    """What the composite loss of one row ``b = B_t`` needs besides ``b`` and ``t``."""

    transfer: jax.Array  # B (T, T)
    losses: jax.Array  # current task losses (T,)
    gram: jax.Array  # W W^T of the flattened policy weights (T, T)
    placed: jax.Array  # tasks already in the order (T,) bool
    remaining: jax.Array  # tasks not yet in the order (T,) bool
    prior_rank: jax.Array  # (T, T): row t, the prior's rank of every task for source t
    sim_rank: jax.Array  # (T, T): row t, the last-layer-similarity rank of every task


def composite_terms(row: jax.Array, t: jax.Array, ctx: RowContext, mu: float, slope: float,
                    shift: float) -> jax.Array:  # fmt: skip
    """The five terms (N_TERMS,) of f(b_t) (supplement 7.3) for source task ``t`` at the current
    position of the order, ``row`` = B_t (its diagonal entry included):

    0. ``(1 + mu sum_{j != t} B_tj) L_t``;
    1. ``sum_{s in U \\ t} || w_s - sum_{j placed} B_js w_j - B_ts w_t ||^2``, from the Gram
       matrix (exact; no (T, P) residuals are formed);
    2.-4. ``|| r - softrank(B_t) ||^2`` for r the prior ranking, the loss ranks (descending,
       +1 on t's own loss) and the last-layer similarity ranks (+100 on self).
    """
    n = row.shape[0]
    own = jax.nn.one_hot(t, n, dtype=row.dtype)
    term0 = (1 + mu * (row * (1 - own)).sum()) * ctx.losses[t]
    c = ctx.transfer * ctx.placed[:, None]  # C_js = B_js for placed j
    g = ctx.gram
    # residual_s = w_s - sum_j C_js w_j - b_s w_t, squared norm expanded in inner products
    cgc = jnp.einsum("js,jk,ks->s", c, g, c)
    sq = jnp.diag(g) - 2 * jnp.einsum("js,js->s", c, g) + cgc
    cross = g[:, t] - c.T @ g[:, t]  # <w_s - sum_j C_js w_j, w_t>
    resid = sq - 2 * row * cross + row**2 * g[t, t]
    term1 = jnp.where(ctx.remaining & (own == 0), resid, 0.0).sum()
    y = soft_rank(row, row, slope, shift)
    loss_rank = hard_rank(ctx.losses + own)
    ranks = jnp.stack([ctx.prior_rank[t], loss_rank, ctx.sim_rank[t]])
    return jnp.concatenate([jnp.stack([term0, term1]), ((ranks - y) ** 2).sum(-1)])
