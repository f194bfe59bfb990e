"""The PPO core both JAX PPO trainers share: GAE, the clipped loss, the minibatch-epoch loop.

Papers: PPO, Schulman et al., "Proximal Policy Optimization Algorithms", 2017; GAE, Schulman
et al., "High-Dimensional Continuous Control Using Generalized Advantage Estimation", ICLR 2016.

Users, each with its own docstring on what it takes from here and why:

- ``agents/mtppo.py``, MOORE's multi-task family (MTPPO, MoE, MOORE, PCGrad variants):
  separate actor and critic, advantages normalised per task, stratified minibatches
  (``strata``) with mushroom's last, smaller minibatch (``keep_last``), no value term in the
  policy loss (its critic takes one full-batch step of ``value_loss`` instead).
- ``agents/transfer_ppo.py``, SB3's PPO for transfer matrices: one loss with value and entropy
  terms, advantages normalised per minibatch, a flat permutation per epoch.

Everything here is a pure function of arrays, so it runs inside the trainers' ``jit`` /
``lax.scan`` / ``vmap`` programs unchanged. Where the two trainers differ, the difference is a
parameter here, not a second copy of the algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def gae(rewards, values, next_values, terminated, dones, gamma: float, gae_lambda: float):
    """Generalised advantage estimates; every array ``(S, ...)`` with time on axis 0.

    ``next_values``: V of the observation after each step (after the last step of an episode,
    its final observation; a trainer that bootstraps truncation into the reward passes
    anything there and ``terminated = dones``). ``terminated`` drops the bootstrap (a true end),
    ``dones`` (terminated or truncated) cuts the trace, so no advantage flows across episodes.
    """
    deltas = rewards + gamma * next_values * (1 - terminated) - values
    keep = gamma * gae_lambda * (1 - dones)

    def back(adv, x):
        delta, k = x
        adv = delta + k * adv
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(deltas[0]), (deltas, keep), reverse=True)
    return adv


def normalize(adv: jax.Array, axis: int | None = None) -> jax.Array:
    """Zero mean, unit (population) std along ``axis`` (all of it: ``None``), + 1e-8."""
    return (adv - adv.mean(axis, keepdims=True)) / (adv.std(axis, keepdims=True) + 1e-8)


def categorical_log_prob(logp_all: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a) from the log-softmax ``logp_all`` ``(..., n_actions)``."""
    return jnp.take_along_axis(logp_all, actions[..., None], -1)[..., 0]


def categorical_entropy(logp_all: jax.Array) -> jax.Array:
    return -(jnp.exp(logp_all) * logp_all).sum(-1)


def value_loss(values: jax.Array, targets: jax.Array, axis: int | None = None) -> jax.Array:
    """Mean squared error of the critic (no value clipping: neither MOORE nor SB3 by default)."""
    return ((values - targets) ** 2).mean(axis)


def ppo_loss(logp, old_logp, adv, entropy, *, clip: float, ent_coef: float, values=None,
             targets=None, vf_coef: float = 0.5, axis: int | None = None) -> jax.Array:  # fmt: skip
    """PPO's clipped loss: -E[min(r A, clip(r, 1 - clip, 1 + clip) A)] with r = pi / pi_old
    (``exp(logp - old_logp)``), + ``vf_coef`` x ``value_loss(values, targets)`` when ``values``
    is given (one network pair, one optimiser), - ``ent_coef`` x the mean ``entropy``.
    Means over ``axis`` (``None``: all), so per-group losses are one call (PCGrad's per task)."""
    ratio = jnp.exp(logp - old_logp)
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip, 1 + clip) * adv)
    loss = -surrogate.mean(axis)
    if values is not None:
        loss = loss + vf_coef * value_loss(values, targets, axis)
    return loss - ent_coef * entropy.mean(axis)


Step = Callable[[Any, jax.Array], tuple[Any, jax.Array]]


def minibatch_epochs(step: Step, carry: Any, key: jax.Array, *, epochs: int, size: int,
                     batch_size: int, strata: int | None = None,
                     keep_last: bool = True) -> tuple[Any, jax.Array]:  # fmt: skip
    """``epochs`` shuffled passes over ``size`` samples in minibatches of ``batch_size``.

    ``step(carry, idx) -> (carry, loss)`` takes one gradient step on the samples ``idx``:
    ``(batch_size,)`` indices into the sample axis; with ``strata`` = G, ``(G, batch_size)``:
    each of G strata (data ``(G, size, ...)``, samples on axis 1) is permuted on its own, so every
    minibatch holds ``batch_size`` samples of each stratum. The ``size % batch_size`` samples
    left at the end of a pass form a last, smaller minibatch with ``keep_last`` (mushroom's
    loop); otherwise they are dropped (and with fewer samples than ``batch_size``, one minibatch
    holds them all). Each epoch splits its own key. Returns ``(carry, mean loss per epoch)``.
    """
    n_full, rest = divmod(size, batch_size)
    if not keep_last:
        n_full, rest = max(1, n_full), 0

    def epoch(carry, k):
        if strata is None:
            perm = jax.random.permutation(k, size)[None]
        else:
            perm = jax.vmap(lambda k: jax.random.permutation(k, size))(jax.random.split(k, strata))
        losses = jnp.zeros(0)
        if n_full:
            full = perm[:, : n_full * batch_size].reshape(len(perm), n_full, -1).transpose(1, 0, 2)
            carry, losses = jax.lax.scan(step, carry, full if strata is not None else full[:, 0])
        if rest:
            last = perm[:, n_full * batch_size :]
            carry, loss = step(carry, last if strata is not None else last[0])
            losses = jnp.append(losses, loss)
        return carry, losses.mean()

    return jax.lax.scan(epoch, carry, jax.random.split(key, epochs))
