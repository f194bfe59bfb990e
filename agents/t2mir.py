"""T2MIR's mixture-of-experts layer: token- and task-wise MoEs in parallel (the last block's FFN).

Paper: T2MIR, token- and task-wise mixture of experts for in-context RL (Wu, Liu, Li, Hu, Dong,
Chen, Wang; NeurIPS 2025). Reference code: ``NJU-RL/T2MIR`` (``T2MIR-*/algorithms/moe.py``,
``gpt2moe_model.py``: the gate, the experts, ``contrastive_loss``). The base models that use this
layer are ``agents/ad.py`` (T2MIR-AD) and ``agents/dpt.py`` (T2MIR-DPT), through the transformer of
``agents/icl_transformer.py``, which puts ``T2MIRFFN`` in the last block only.

- ``T2MIRFFN``: two MoEs side by side, each mapping d -> d/2; their outputs are concatenated
  (never summed or averaged) and form the block's FFN output.
- Experts: expert i is Linear(d -> h) -> GELU -> dropout -> Linear(h -> d/2) with
  ``h = expert_dim / E`` (``expert_dim`` is the total hidden width of one MoE).
- Router ("mlp" gate): Linear(d -> E, no bias) -> tanh -> Linear(E -> E, no bias).
- ``TokenMoE`` (E = 6, k = 2): noisy top-k gating, ``logits = g(x) + eps * (softplus(W_n x) +
  0.01)`` in training, ``W_n`` zero-initialised; softmax over the k selected logits; the balance
  loss ``w_bal * (CV^2(importance) + CV^2(load))`` with Shazeer et al.'s differentiable load
  (the probability under the noise that each expert is in the top k).
- ``TaskMoE`` (E = 8, k = 2): the same experts and gate, no noise, no balance loss, routed per
  token. Its router is trained by a contrastive loss: the batch holds B/2 tasks twice (rows i and
  i + B/2: two context windows of one task); queries are the online gate's output averaged over a
  sequence's tokens (softmax of the logits for AD, raw logits for DPT: ``contrastive_softmax``),
  keys the same from an EMA target gate (``ema_update``, tau 0.005), detached; logits
  ``Q_first W K_second^T`` with a learned bilinear W (randn init), row max subtracted; the loss is
  the symmetric cross-entropy (first half against second, and second against first), weighted
  lambda = 0.01 by the trainer.

Deviations from the reference code, with reasons:

- Experts are computed densely (every expert on every token, then weighted by the top-k scores,
  which are zero outside the top k): the same output as the reference's sorted dispatch, with
  static shapes for ``jit``; at E <= 12 and these widths it costs little on CPU.
- Kaiming-uniform init of torch's ``nn.Linear`` is replaced by flax's default (LeCun normal)
  for the experts; the router keeps no bias as in the reference.
- ``CV^2`` uses the unbiased variance, as ``torch.Tensor.var`` does.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

TARGET = "router_target"
"""Name of the EMA target gate's parameters inside ``TaskMoE`` (``ema_update`` finds them)."""


def cv_squared(x: jax.Array) -> jax.Array:
    """Squared coefficient of variation ``Var(x) / (mean(x)^2 + 1e-10)`` (unbiased variance)."""
    if x.shape[0] == 1:
        return jnp.zeros((), x.dtype)
    return jnp.var(x, ddof=1) / (jnp.mean(x) ** 2 + 1e-10)


def top_k_scores(logits: jax.Array, k: int) -> jax.Array:
    """``(N, E)`` scores: softmax over each row's k largest logits, zero elsewhere."""
    top, idx = jax.lax.top_k(logits, k)
    soft = jax.nn.softmax(top, axis=-1)
    rows = jnp.arange(logits.shape[0])[:, None]
    return jnp.zeros_like(logits).at[rows, idx].set(soft)


def noisy_load(clean: jax.Array, noisy: jax.Array, noise_std: jax.Array, k: int) -> jax.Array:
    """Shazeer et al. (2017)'s differentiable load: for each expert, the summed probability
    (under fresh noise) that it is in the top k, given the other experts' noisy logits."""
    top, _ = jax.lax.top_k(noisy, k + 1)
    threshold_in, threshold_out = top[:, k : k + 1], top[:, k - 1 : k]
    is_in = noisy > threshold_in
    cdf = jax.scipy.stats.norm.cdf
    prob = jnp.where(is_in, cdf((clean - threshold_in) / noise_std),
                     cdf((clean - threshold_out) / noise_std))  # fmt: skip
    return prob.sum(0)


class Router(nn.Module):
    num_experts: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = jnp.tanh(nn.Dense(self.num_experts, use_bias=False, name="in")(x))
        return nn.Dense(self.num_experts, use_bias=False, name="out")(h)


class Experts(nn.Module):
    num_experts: int
    expert_dim: int  # total hidden width; each expert gets expert_dim // num_experts
    out: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, scores: jax.Array, train: bool) -> jax.Array:
        """``x`` (N, d), ``scores`` (N, E) -> ``sum_i scores_i * expert_i(x)`` (N, out)."""
        e, h, d = self.num_experts, self.expert_dim // self.num_experts, x.shape[-1]
        init = nn.initializers.lecun_normal(batch_axis=(0,))
        w_up = self.param("w_up", init, (e, d, h))
        b_up = self.param("b_up", nn.initializers.zeros, (e, h))
        w_down = self.param("w_down", init, (e, h, self.out))
        b_down = self.param("b_down", nn.initializers.zeros, (e, self.out))
        up = nn.gelu(jnp.einsum("nd,edh->neh", x, w_up) + b_up)
        up = nn.Dropout(self.dropout, deterministic=not train)(up)
        out = jnp.einsum("neh,eho->neo", up, w_down) + b_down
        return jnp.einsum("ne,neo->no", scores, out)


class TokenMoE(nn.Module):
    """Token-wise MoE: noisy top-k routing per token plus the balance loss (module docstring)."""

    out: int
    num_experts: int = 6
    k: int = 2
    expert_dim: int = 768
    balance_weight: float = 0.1
    dropout: float = 0.05

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        clean = Router(self.num_experts, name="router")(x)
        w_noise = nn.Dense(self.num_experts, use_bias=False, kernel_init=nn.initializers.zeros,
                           name="noise")  # fmt: skip
        noise_std = jax.nn.softplus(w_noise(x)) + 0.01
        if train and self.k < self.num_experts:
            eps = jax.random.normal(self.make_rng("noise"), clean.shape)
            logits = clean + eps * noise_std
            load = noisy_load(clean, logits, noise_std, self.k)
        else:
            logits = clean
            load = (top_k_scores(clean, self.k) > 0).sum(0).astype(clean.dtype)
        scores = top_k_scores(logits, self.k)
        importance = scores.sum(0)
        balance = self.balance_weight * (cv_squared(importance) + cv_squared(load))
        y = Experts(self.num_experts, self.expert_dim, self.out, self.dropout, name="experts")(
            x, scores, train)
        return y.reshape(*shape, self.out), {"balance_loss": balance, "token_scores": scores}


class TaskMoE(nn.Module):
    """Task-wise MoE: top-k routing per token, the router trained by ``contrastive_loss`` on
    queries from the online gate and keys from the EMA target gate (module docstring)."""

    out: int
    num_experts: int = 8
    k: int = 2
    expert_dim: int = 1536
    contrastive_softmax: bool = True
    dropout: float = 0.05

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, train: bool):
        """``x`` (B, T, d), ``mask`` (B, T): the tokens a sequence's query / key averages."""
        b, t, d = x.shape
        flat = x.reshape(-1, d)
        logits = Router(self.num_experts, name="router")(flat)
        # the target gate sees the same input, detached, and is never trained by gradients
        target = jax.lax.stop_gradient(
            Router(self.num_experts, name=TARGET)(jax.lax.stop_gradient(flat)))
        scores = top_k_scores(logits, self.k)
        y = Experts(self.num_experts, self.expert_dim, self.out, self.dropout, name="experts")(
            flat, scores, train)
        w = self.param("W", nn.initializers.normal(1.0), (self.num_experts, self.num_experts))
        rep = (lambda z: jax.nn.softmax(z, -1)) if self.contrastive_softmax else (lambda z: z)
        m = mask.astype(x.dtype)[..., None]
        denom = jnp.maximum(m.sum(1), 1.0)
        q = (rep(logits).reshape(b, t, -1) * m).sum(1) / denom
        key = (rep(target).reshape(b, t, -1) * m).sum(1) / denom
        aux = {"contrastive_loss": contrastive_loss(q, key, w), "task_scores": scores,
               "task_query": q}  # fmt: skip
        return y.reshape(b, t, self.out), aux


def contrastive_loss(q: jax.Array, k: jax.Array, w: jax.Array) -> jax.Array:
    """T2MIR's bilinear InfoNCE over paired halves: rows i and i + B/2 are the same task.
    ``0.5 CE(Q1 W K2^T, diag) + 0.5 CE(Q2 W K1^T, diag)`` (row max subtracted first)."""
    half = q.shape[0] // 2
    labels = jnp.arange(half)

    def ce(qa, kb):
        logits = qa @ w @ kb.T
        logits = logits - jax.lax.stop_gradient(logits.max(1, keepdims=True))
        return -jnp.mean(jax.nn.log_softmax(logits, 1)[labels, labels])

    return 0.5 * ce(q[:half], k[half : 2 * half]) + 0.5 * ce(q[half : 2 * half], k[:half])


class T2MIRFFN(nn.Module):
    """The T2MIR block's FFN: ``concat(TokenMoE(x), TaskMoE(x))``, each d/2 wide.
    ``token`` / ``task`` False replaces that half by a plain FFN (the ablations)."""

    token_expert_dim: int = 768
    task_expert_dim: int = 1536
    task_experts: int = 8
    balance_weight: float = 0.1
    contrastive_softmax: bool = True
    dropout: float = 0.05
    token: bool = True
    task: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, train: bool):
        d = x.shape[-1]
        half = d // 2
        zero = jnp.zeros(())
        aux: dict[str, Any] = {"balance_loss": zero, "contrastive_loss": zero}
        if self.token:
            y_token, a = TokenMoE(half, expert_dim=self.token_expert_dim,
                                  balance_weight=self.balance_weight, dropout=self.dropout,
                                  name="token_moe")(x, train)  # fmt: skip
            aux.update(a)
        else:
            y_token = _ffn(x, half, self.token_expert_dim, self.dropout, train, "token_ffn")
        if self.task:
            y_task, a = TaskMoE(d - half, num_experts=self.task_experts,
                                expert_dim=self.task_expert_dim,
                                contrastive_softmax=self.contrastive_softmax,
                                dropout=self.dropout, name="task_moe")(x, mask, train)  # fmt: skip
            aux.update(a)
        else:
            y_task = _ffn(x, d - half, self.task_expert_dim, self.dropout, train, "task_ffn")
        return jnp.concatenate([y_token, y_task], -1), aux


def _ffn(x, out, hidden, dropout, train, name):
    """A plain FFN half (ablations): Linear -> GELU -> dropout -> Linear."""
    h = nn.gelu(nn.Dense(hidden, name=f"{name}_up")(x))
    h = nn.Dropout(dropout, deterministic=not train)(h)
    return nn.Dense(out, name=f"{name}_down")(h)


def _keys(path: tuple) -> tuple:
    return tuple(getattr(p, "key", getattr(p, "idx", None)) for p in path)


def _online(path: tuple) -> tuple:
    """The key path of the online gate whose target gate sits at ``path``."""
    return tuple("router" if k == TARGET else k for k in _keys(path))


def _flat(params: Any) -> dict[tuple, jax.Array]:
    return {_keys(p): v for p, v in jax.tree_util.tree_leaves_with_path(params)}


def init_target(params: Any) -> Any:
    """Copy every online gate onto its target gate (the reference's hard update at init)."""
    flat = _flat(params)
    return jax.tree_util.tree_map_with_path(
        lambda p, v: flat[_online(p)] if TARGET in _keys(p) else v, params)


def ema_update(params: Any, old_params: Any, tau: float) -> Any:
    """After an optimiser step: every target gate <- tau * online (after the step) + (1 - tau) *
    target (before it), so the optimiser's updates and weight decay never reach the target."""
    new, old = _flat(params), _flat(old_params)
    return jax.tree_util.tree_map_with_path(
        lambda p, v: tau * new[_online(p)] + (1 - tau) * old[_keys(p)] if TARGET in _keys(p)
        else v, params)  # fmt: skip
