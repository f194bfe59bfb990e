"""AD (Algorithm Distillation) and T2MIR-AD: in-context RL from learning histories.

Papers: Laskin et al., "In-context Reinforcement Learning with Algorithm Distillation", ICLR 2023;
T2MIR (token- and task-wise MoE for in-context RL; Wu et al., NeurIPS 2025), whose T2MIR-AD is
this model with ``agents/t2mir.py``'s MoE as the last block's FFN (``Config.moe``). Reference
code: ``NJU-RL/T2MIR`` (``T2MIR-AD/algorithms/policy.py``, ``datasets.py``, ``configs/*.yaml``).

- Data: ``agents/icl_data.py``'s learning histories. Each task's episodes are sorted by return,
  ascending (stable, so ties keep learning order), as T2MIR-AD's dataset does to imitate a
  learning history; a training sequence is ``episodes`` (4) episodes of one task at sorted random
  indices, so returns rise along it.
- Tokens: three per step, (s_t, a_t, r_t), each embedded by its own 2-layer MLP (leaky ReLU) to
  ``d``, plus a learned embedding of the within-episode timestep shared by the step's tokens.
  The causal transformer (``agents/icl_transformer.py``) predicts a_t at s_t's token: cross-entropy
  for discrete actions, MSE on tanh outputs for continuous ones, at every step of the sequence.
- T2MIR-AD: + ``w_bal``-weighted balance loss + lambda x contrastive loss; the batch is B/2 tasks
  twice (rows i and i + B/2 are two independent sequences of one task: ``sample_batch``), and the
  target gate follows the online one by EMA after every optimiser step.
- In context (``mtrl_bench.in_context``): the harness keeps the context (episodes re-sorted by
  return after each one, then the current one) of ``context_steps = episodes x H - 1`` steps; the
  policy appends the query state and acts from the prediction at its token (sampled; greedy with
  ``deterministic``).
- Checkpoint selection: the last parameters (it never looks at held-out tasks).

Presets (``PRESETS``): ``paper`` = T2MIR-AD's DarkRoom config (batch 128, 4 layers, 8 heads,
hidden 64, lr 3e-4, 3e5 steps, 10k warm-up; task MoE 12 experts, expert widths 768 / 1536) and
``paper-point-robot`` (batch 32, 3 layers, hidden 128, 1e5 steps, widths 1536 / 2048); ``cpu``: 4k
steps, batch 32, 2 layers, 4 heads, hidden 64, expert widths 384 / 768, warm-up 400 (a budget this
machine trains in minutes per model); ``ci``: tiny.

In-context learning on held-out goals: not reached yet at CPU budgets. What was tried (one seed
each, on the 5 x 5 / 10-step toy room of ``tests/test_icl_agents.py`` with 20 train and 5
held-out goals; 1500 steps, batch 32, 2 layers, hidden 32, lr 1e-3; curves over 8 in-context
episodes x 4 trials): PPO histories at lr 1e-2 without entropy (fast-converging) with a
3-episode context -- training goals improve in context, held-out goals stay flat near the
random policy; PPO at lr 3e-3 with entropy 0.01 (histories that improve gradually) and a
4-episode context -- the same; that setting on a 7 x 7 / 12-step room with 44 train goals --
the same (held-out at the random policy's level, training goals rising). The training loss
stayed at ~1.2 nats in all three, and at 1.16 after 1500 steps with lr 3e-3, hidden 64, 4
heads (that run was stopped at 10 min wall, unevaluated): part of it is the histories' own
action noise (PPO's sampled actions), so the loss alone does not say underfitting; DPT
(``agents/dpt.py``), whose target is the oracle's action, does generalise at these budgets.
Untried: far more train goals and steps, AD^epsilon-style noise-annealed histories (Zisman et
al. 2023), subsampled histories across many more PPO updates.

Deviations, with reasons: the backbone is ``icl_transformer``'s plain pre-norm block (no
NormFormer or sigma-reparam layers), so AD and DPT share one backbone; embeddings are 2-layer MLPs
straight to ``d`` (T2MIR-AD goes through a ``tstep_dim`` then projects); the warm-up is capped at
a tenth of the steps (for the short ``cpu`` / ``ci`` budgets); dropout 0.05 everywhere as the
released configs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtrl_bench.agents import t2mir
from mtrl_bench.agents.icl_transformer import MoEConfig, Transformer, optimizer
from mtrl_bench.in_context import Context


@dataclass(frozen=True)
class Config:
    steps: int = 300_000
    """Gradient steps."""
    batch_size: int = 128
    """Sequences per batch (B/2 tasks twice with ``moe``)."""
    lr: float = 3e-4
    """Peak AdamW learning rate."""
    warmup: int = 10_000
    """Linear warm-up steps (capped at steps / 10)."""
    layers: int = 4
    """Transformer blocks."""
    heads: int = 8
    """Attention heads."""
    d: int = 64
    """Hidden width."""
    dropout: float = 0.05
    """Dropout everywhere."""
    episodes: int = 4
    """Episodes per training sequence (and in the evaluation context)."""
    moe: MoEConfig | None = None
    """T2MIR's MoE in the last block (None: plain AD)."""


_T2MIR_DARKROOM = MoEConfig(token_expert_dim=768, task_expert_dim=1536, task_experts=12)
PRESETS = {
    "paper": Config(),
    "paper-point-robot": Config(steps=100_000, batch_size=32, layers=3, d=128),
    "cpu": Config(steps=4_000, batch_size=32, warmup=400, layers=2, heads=4, d=64),
    "ci": Config(steps=300, batch_size=16, lr=1e-3, warmup=30, layers=1, heads=2, d=32,
                 dropout=0.0),  # fmt: skip
}
MOE_PRESETS = {
    "paper": _T2MIR_DARKROOM,
    "paper-point-robot": MoEConfig(token_expert_dim=1536, task_expert_dim=2048),
    "cpu": MoEConfig(token_expert_dim=384, task_expert_dim=768),
    "ci": MoEConfig(token_expert_dim=48, task_expert_dim=64),
}


def t2mir_config(preset: str, **moe: Any) -> Config:
    """T2MIR-AD's config for ``preset`` (``moe`` overrides, e.g. ``task=False`` for ablations)."""
    return replace(PRESETS[preset], moe=replace(MOE_PRESETS[preset], **moe))


class ADModel(nn.Module):
    config: Config
    act_dim: int
    discrete: bool
    horizon: int

    @nn.compact
    def __call__(self, obs, actions, rewards, timestep, valid, train: bool):
        """``(B, S, ...)`` steps -> (action outputs at each state token (B, S, A), aux)."""
        d, b, s = self.config.d, obs.shape[0], obs.shape[1]

        def embed(x, name):
            h = nn.leaky_relu(nn.Dense(2 * d, name=f"{name}_1")(x))
            return nn.Dense(d, name=f"{name}_2")(h)

        acts = jax.nn.one_hot(actions, self.act_dim) if self.discrete else actions
        pos = nn.Embed(self.horizon, d, name="timestep")(timestep)
        tokens = jnp.stack([embed(obs.reshape(b, s, -1), "obs") + pos, embed(acts, "act") + pos,
                            embed(rewards[..., None], "rew") + pos], 2)  # fmt: skip
        valid3 = jnp.repeat(valid, 3, axis=1)
        h, aux = Transformer(self.config.layers, d, self.config.heads, self.config.dropout,
                             self.config.moe, name="transformer")(
            tokens.reshape(b, 3 * s, d), valid3, valid3, train)  # fmt: skip
        out = nn.Dense(self.act_dim, name="head")(h[:, 0::3])
        return (out if self.discrete else jnp.tanh(out)), aux


def sort_by_return(data: dict) -> dict:
    """Each task's episodes sorted by return, ascending (stable: ties keep learning order)."""
    order = np.argsort(data["returns"], axis=1, kind="stable")
    take = lambda x: np.take_along_axis(x, order.reshape(*order.shape, *[1] * (x.ndim - 2)), 1)  # noqa: E731
    return {k: take(data[k]) for k in ("obs", "actions", "rewards", "returns")}


def sample_batch(key: jax.Array, data: dict, batch_size: int, episodes: int, paired: bool):
    """``batch_size`` sequences of ``episodes`` episodes (sorted random indices) of random tasks.
    ``paired``: B/2 tasks, each twice (rows i and i + B/2; T2MIR's contrastive batch)."""
    num_tasks, num_eps, horizon = data["rewards"].shape
    k_task, k_ep = jax.random.split(key)
    if paired:
        half = jax.random.randint(k_task, (batch_size // 2,), 0, num_tasks)
        tasks = jnp.concatenate([half, half])
    else:
        tasks = jax.random.randint(k_task, (batch_size,), 0, num_tasks)
    noise = jax.random.uniform(k_ep, (batch_size, num_eps))
    eps = jnp.sort(jnp.argsort(noise, axis=1)[:, :episodes], axis=1)

    def seq(x):
        y = x[tasks[:, None], eps]  # (B, episodes, H, ...)
        return y.reshape(batch_size, episodes * horizon, *y.shape[3:])

    timestep = jnp.tile(jnp.arange(horizon, dtype=jnp.int32), (batch_size, episodes))
    return tasks, seq(data["obs"]), seq(data["actions"]), seq(data["rewards"]), timestep


def make_train(config: Config, data: dict, act_dim: int, discrete: bool):
    """``(init, train_chunk)``: ``init(key) -> state``; ``train_chunk(state, n) -> (state,
    mean losses)`` runs ``n`` gradient steps (one jitted ``lax.scan``)."""
    horizon = data["rewards"].shape[2]
    model = ADModel(config, act_dim, discrete, horizon)
    tx = optimizer(config.lr, config.steps, config.warmup)
    moe = config.moe
    arrays = {k: jnp.asarray(v) for k, v in data.items()}

    def loss_fn(params, batch, key):
        _, obs, actions, rewards, timestep = batch
        valid = jnp.ones(rewards.shape, bool)
        k_noise, k_drop = jax.random.split(key)
        out, aux = model.apply({"params": params}, obs, actions, rewards, timestep, valid, True,
                               rngs={"noise": k_noise, "dropout": k_drop})  # fmt: skip
        if discrete:
            pred = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), actions[..., None], -1))
        else:
            pred = jnp.mean((out - actions) ** 2)
        total = pred + aux["balance_loss"]
        if moe is not None:
            total = total + moe.contrastive_weight * aux["contrastive_loss"]
        return total, jnp.stack([pred, aux["balance_loss"], aux["contrastive_loss"]])

    def init(key: jax.Array):
        k_params, k_batch, key = jax.random.split(key, 3)
        batch = sample_batch(k_batch, arrays, 2, config.episodes, True)
        rngs = {"params": k_params, "noise": k_params, "dropout": k_params}
        valid = jnp.ones(batch[3].shape, bool)
        params = model.init(rngs, *batch[1:], valid, False)["params"]
        params = t2mir.init_target(params)
        return params, tx.init(params), key

    def step(state, _):
        params, opt_state, key = state
        key, k_batch, k_loss = jax.random.split(key, 3)
        batch = sample_batch(k_batch, arrays, config.batch_size, config.episodes, moe is not None)
        grads, losses = jax.grad(loss_fn, has_aux=True)(params, batch, k_loss)
        updates, opt_state = tx.update(grads, opt_state, params)
        new = optax.apply_updates(params, updates)
        new = t2mir.ema_update(new, params, moe.tau) if moe is not None else new
        return (new, opt_state, key), losses

    @partial(jax.jit, static_argnums=1)
    def train_chunk(state, n: int):
        state, losses = jax.lax.scan(step, state, None, n)
        return state, losses.mean(0)

    return init, train_chunk, model


def train(config: Config, data: dict, seed: int, act_dim: int, discrete: bool,
          chunk: int = 100, log: Any = None) -> tuple[Any, ADModel]:  # fmt: skip
    """Train on ``data`` (``icl_data`` arrays) for ``config.steps``; returns the last params.
    ``log(step, {"loss": ..., "balance": ..., "contrastive": ...})`` after each chunk."""
    init, train_chunk, model = make_train(config, sort_by_return(data), act_dim, discrete)
    state = init(jax.random.key(seed))
    done = 0
    while done < config.steps:
        n = min(chunk, config.steps - done)
        state, losses = train_chunk(state, n)
        done += n
        if log is not None:
            names = ("loss", "balance", "contrastive")
            log(done, dict(zip(names, map(float, losses), strict=True)))
    return state[0], model


class ADPolicy:
    """The ``in_context`` policy of trained AD / T2MIR-AD parameters."""

    def __init__(self, model: ADModel, params: Any, seed: int = 0) -> None:
        self.model, self.params = model, params
        self.context_steps = model.config.episodes * model.horizon - 1
        self._key = jax.random.key(seed)

        def act(params, ctx_obs, ctx_act, ctx_rew, ctx_t, length, q_obs, q_t, key, greedy):
            b, steps = ctx_rew.shape
            obs = jnp.concatenate([ctx_obs, q_obs[:, None]], 1).astype(jnp.float32)
            pad_act = jnp.zeros((b, 1, *ctx_act.shape[2:]), ctx_act.dtype)
            acts = jnp.concatenate([ctx_act, pad_act], 1)
            rews = jnp.concatenate([ctx_rew, jnp.zeros((b, 1), ctx_rew.dtype)], 1)
            ts = jnp.concatenate([ctx_t, q_t[:, None]], 1)
            valid = jnp.arange(steps + 1)[None] >= (steps - length)[:, None]
            out, _ = model.apply({"params": params}, obs, acts, rews, ts, valid, False)
            last = out[:, -1]
            if not model.discrete:
                return last
            return jnp.where(greedy, jnp.argmax(last, -1), jax.random.categorical(key, last))

        self._act = jax.jit(act)

    def act_in_context(self, context: Context, task_ids: np.ndarray, *,
                       deterministic: bool = False) -> np.ndarray:  # fmt: skip
        self._key, key = jax.random.split(self._key)
        acts = context.actions if self.model.discrete else context.actions.astype(np.float32)
        ts = np.minimum(context.timestep, self.model.horizon - 1)
        q_t = np.minimum(context.query_timestep, self.model.horizon - 1)
        return np.asarray(self._act(self.params, context.obs, acts, context.rewards, ts,
                                    context.length, context.query_obs, q_t, key,
                                    deterministic))  # fmt: skip
