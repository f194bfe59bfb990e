"""DPT (Decision-Pretrained Transformer) and T2MIR-DPT: predict the optimal action in context.

Papers: Lee et al., "Supervised Pretraining Can Learn In-Context Reinforcement Learning", NeurIPS
2023 (DPT); T2MIR (token- and task-wise MoE for in-context RL; Wu et al., NeurIPS 2025), whose
T2MIR-DPT is this model with ``agents/t2mir.py``'s MoE as the last block's FFN (``Config.moe``).
Reference code: ``jon--lee/decision-pretrained-transformer`` and ``NJU-RL/T2MIR``
(``T2MIR-DPT/algorithms/policy.py``, ``gpt2moe_model.py``).

- Input: a query state, then a context of transitions (s, a, r, s') of one task, one token each
  (DPT's: the transition's fields concatenated and embedded by one linear map; the query is the
  same map over (s, 0, 0, 0)), plus learned position embeddings; the causal transformer of
  ``agents/icl_transformer.py``.
- Target: the optimal action for the query state (the env's ``optimal_action`` oracle for the
  task's goal), predicted at every position (after the query and the first j transitions) and
  all regressed to the same label: cross-entropy for discrete actions, MSE on tanh outputs for
  continuous ones.
- Training samples: per row a task, ``episodes`` random episodes of its learning history
  (``agents/icl_data.py``) as context (T2MIR-DPT: one episode, ``prompt_horizon`` = episode
  length), and a query state drawn from the same task's history.
- T2MIR-DPT: + balance loss + lambda x contrastive loss (queries: the gate's raw logits averaged
  over the context tokens, the query token left out, as the reference), paired batch halves, EMA
  target gate.
- In context: the harness's context of ``context_steps = episodes x H`` steps; the query is the
  current observation; the action is sampled from the prediction at the last position (greedy
  with ``deterministic``).
- Checkpoint selection: the last parameters.

Presets: ``paper`` = T2MIR-DPT's MuJoCo backbone (4 layers, 4 heads, hidden 128, batch 128, lr
3e-4, 1e5 steps, 10k warm-up; token / task expert widths 1536 / 2048, w_bal 0.01, lambda 0.01;
DarkRoom-DPT: 2e5 steps and lambda 0.001 in ``paper-darkroom``); ``ci``: tiny. ``cpu`` differs
from ``paper`` in: steps 2000 (not 1e5), batch 32 (128), warm-up 200 (10k), 2 layers (4), hidden
64 (128), a context of 4 episodes (1: T2MIR-DPT's ``prompt_horizon``) and, for T2MIR-DPT, expert
widths 384 / 768 (1536 / 2048); heads, lr, dropout, optimiser and the MoE's weights as ``paper``.
Measured (``experiments/in_context_darkroom.py``, ``results/in_context/``, table in
docs/suites/in_context.md; one seed): on ``darkroom/dpt-v1`` with the ``default`` histories this
preset's held-out return rises over the 30 in-context episodes, well above a random policy, in
a few minutes of one CPU core; with a 1-episode context on the flatter 3e-4 PPO histories it
stayed flat at the random policy's level. Why 4 episodes: the ``in_context`` harness keeps only
the most recent episodes that fit in the context, so one episode forgets a goal found earlier,
and a single 20-step history episode shows the goal's reward in few training rows.

Deviations, with reasons: T2MIR-DPT embeds (s, a, r) as three tokens after GPT-2's query token;
we keep DPT's one token per transition (3x shorter sequences on CPU; the MoE sees one token per
transition); the backbone is ``icl_transformer``'s block instead of GPT-2's; query states come
from the learning history rather than a separate query set.
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
    steps: int = 100_000
    """Gradient steps."""
    batch_size: int = 128
    """Samples per batch (B/2 tasks twice with ``moe``)."""
    lr: float = 3e-4
    """Peak AdamW learning rate."""
    warmup: int = 10_000
    """Linear warm-up steps (capped at steps / 10)."""
    layers: int = 4
    """Transformer blocks."""
    heads: int = 4
    """Attention heads."""
    d: int = 128
    """Hidden width."""
    dropout: float = 0.05
    """Dropout everywhere."""
    episodes: int = 1
    """Episodes of context (T2MIR-DPT: one)."""
    moe: MoEConfig | None = None
    """T2MIR's MoE in the last block (None: plain DPT)."""


_MOE = MoEConfig(token_expert_dim=1536, task_expert_dim=2048, balance_weight=0.01,
                 contrastive_softmax=False)  # fmt: skip
PRESETS = {
    "paper": Config(),
    "paper-darkroom": Config(steps=200_000),
    "cpu": Config(steps=2_000, batch_size=32, warmup=200, layers=2, heads=4, d=64, episodes=4),
    "ci": Config(steps=300, batch_size=16, lr=1e-3, warmup=30, layers=1, heads=2, d=32,
                 dropout=0.0),  # fmt: skip
}
MOE_PRESETS = {
    "paper": _MOE,
    "paper-darkroom": replace(_MOE, contrastive_weight=0.001),
    "cpu": replace(_MOE, token_expert_dim=384, task_expert_dim=768),
    "ci": replace(_MOE, token_expert_dim=48, task_expert_dim=64),
}


def t2mir_config(preset: str, **moe: Any) -> Config:
    """T2MIR-DPT's config for ``preset`` (``moe`` overrides, e.g. ``task=False``)."""
    return replace(PRESETS[preset], moe=replace(MOE_PRESETS[preset], **moe))


class DPTModel(nn.Module):
    config: Config
    act_dim: int
    discrete: bool
    context: int

    @nn.compact
    def __call__(self, query, obs, actions, rewards, next_obs, valid, train: bool):
        """``query`` (B, o), context ``(B, L, ...)`` -> (outputs at the L + 1 positions, aux)."""
        b, n = obs.shape[0], obs.shape[1]
        acts = jax.nn.one_hot(actions, self.act_dim) if self.discrete else actions
        steps = jnp.concatenate([obs.reshape(b, n, -1), acts, rewards[..., None],
                                 next_obs.reshape(b, n, -1)], -1)  # fmt: skip
        first = jnp.concatenate([query.reshape(b, 1, -1),
                                 jnp.zeros((b, 1, steps.shape[-1] - obs[0, 0].size))], -1)
        embed = nn.Dense(self.config.d, name="embed")
        x = embed(jnp.concatenate([first, steps], 1))
        x = x + nn.Embed(self.context + 1, self.config.d, name="position")(jnp.arange(n + 1))
        full = jnp.concatenate([jnp.ones((b, 1), bool), valid], 1)
        loss_mask = jnp.concatenate([jnp.zeros((b, 1), bool), valid], 1)
        h, aux = Transformer(self.config.layers, self.config.d, self.config.heads,
                             self.config.dropout, self.config.moe, name="transformer")(
            x, full, loss_mask, train)  # fmt: skip
        out = nn.Dense(self.act_dim, name="head")(h)
        return (out if self.discrete else jnp.tanh(out)), aux


def sample_batch(key: jax.Array, data: dict, goals: Any, oracle, batch_size: int,
                 episodes: int, paired: bool):  # fmt: skip
    """Contexts of ``episodes`` random episodes per row, a query state of the same task and its
    optimal action. ``paired``: B/2 tasks twice (rows i and i + B/2)."""
    num_tasks, num_eps, horizon = data["rewards"].shape
    k_task, k_ep, k_q = jax.random.split(key, 3)
    if paired:
        half = jax.random.randint(k_task, (batch_size // 2,), 0, num_tasks)
        tasks = jnp.concatenate([half, half])
    else:
        tasks = jax.random.randint(k_task, (batch_size,), 0, num_tasks)
    eps = jax.random.randint(k_ep, (batch_size, episodes), 0, num_eps)

    def seq(x):
        y = x[tasks[:, None], eps]
        return y.reshape(batch_size, episodes * horizon, *y.shape[3:])

    q_ep, q_t = jax.random.randint(k_q, (2, batch_size), 0, jnp.array([[num_eps], [horizon]]))
    query = data["obs"][tasks, q_ep, q_t]
    label = jax.vmap(oracle)(jax.tree.map(lambda g: g[tasks], goals), query)
    return (tasks, query, seq(data["obs"]), seq(data["actions"]), seq(data["rewards"]),
            seq(data["next_obs"]), label)  # fmt: skip


def make_train(config: Config, data: dict, goals: Any, oracle, act_dim: int, discrete: bool):
    """``(init, train_chunk, model)`` as ``agents/ad.py``'s; ``goals``: the tasks' env params
    (leading axis = the data's tasks), ``oracle(params, obs)``: the optimal action."""
    horizon = data["rewards"].shape[2]
    model = DPTModel(config, act_dim, discrete, config.episodes * horizon)
    tx = optimizer(config.lr, config.steps, config.warmup)
    moe = config.moe
    arrays = {k: jnp.asarray(data[k]) for k in ("obs", "actions", "rewards", "next_obs")}

    def loss_fn(params, batch, key):
        _, query, obs, actions, rewards, next_obs, label = batch
        valid = jnp.ones(rewards.shape, bool)
        k_noise, k_drop = jax.random.split(key)
        out, aux = model.apply({"params": params}, query, obs, actions, rewards, next_obs, valid,
                               True, rngs={"noise": k_noise, "dropout": k_drop})  # fmt: skip
        if discrete:
            logp = jax.nn.log_softmax(out)
            pred = -jnp.mean(jnp.take_along_axis(logp, label[:, None, None], -1))
        else:
            pred = jnp.mean((out - label[:, None]) ** 2)
        total = pred + aux["balance_loss"]
        if moe is not None:
            total = total + moe.contrastive_weight * aux["contrastive_loss"]
        return total, jnp.stack([pred, aux["balance_loss"], aux["contrastive_loss"]])

    def batch(key, size, paired):
        return sample_batch(key, arrays, goals, oracle, size, config.episodes, paired)

    def init(key: jax.Array):
        k_params, k_batch, key = jax.random.split(key, 3)
        b = batch(k_batch, 2, True)
        rngs = {"params": k_params, "noise": k_params, "dropout": k_params}
        params = model.init(rngs, *b[1:6], jnp.ones(b[4].shape, bool), False)["params"]
        params = t2mir.init_target(params)
        return params, tx.init(params), key

    def step(state, _):
        params, opt_state, key = state
        key, k_batch, k_loss = jax.random.split(key, 3)
        grads, losses = jax.grad(loss_fn, has_aux=True)(
            params, batch(k_batch, config.batch_size, moe is not None), k_loss)
        updates, opt_state = tx.update(grads, opt_state, params)
        new = optax.apply_updates(params, updates)
        new = t2mir.ema_update(new, params, moe.tau) if moe is not None else new
        return (new, opt_state, key), losses

    @partial(jax.jit, static_argnums=1)
    def train_chunk(state, n: int):
        state, losses = jax.lax.scan(step, state, None, n)
        return state, losses.mean(0)

    return init, train_chunk, model


def train(config: Config, data: dict, goals: Any, oracle, seed: int, act_dim: int,
          discrete: bool, chunk: int = 100, log: Any = None) -> tuple[Any, DPTModel]:  # fmt: skip
    """Train for ``config.steps``; returns the last params (see ``agents/ad.py:train``)."""
    init, train_chunk, model = make_train(config, data, goals, oracle, act_dim, discrete)
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


class DPTPolicy:
    """The ``in_context`` policy of trained DPT / T2MIR-DPT parameters."""

    def __init__(self, model: DPTModel, params: Any, seed: int = 0) -> None:
        self.model, self.params = model, params
        self.context_steps = model.context
        self._key = jax.random.key(seed)

        def act(params, ctx: dict, key, greedy):
            steps = ctx["rewards"].shape[1]
            valid = jnp.arange(steps)[None] >= (steps - ctx["length"])[:, None]
            out, _ = model.apply({"params": params}, ctx["query"].astype(jnp.float32),
                                 ctx["obs"].astype(jnp.float32), ctx["actions"], ctx["rewards"],
                                 ctx["next_obs"].astype(jnp.float32), valid, False)  # fmt: skip
            last = out[:, -1]
            if not model.discrete:
                return last
            return jnp.where(greedy, jnp.argmax(last, -1), jax.random.categorical(key, last))

        self._act = jax.jit(act)

    def act_in_context(self, context: Context, task_ids: np.ndarray, *,
                       deterministic: bool = False) -> np.ndarray:  # fmt: skip
        self._key, key = jax.random.split(self._key)
        acts = context.actions if self.model.discrete else context.actions.astype(np.float32)
        ctx = {"query": context.query_obs, "obs": context.obs, "actions": acts,
               "rewards": context.rewards, "next_obs": context.next_obs,
               "length": context.length}  # fmt: skip
        return np.asarray(self._act(self.params, ctx, key, deterministic))
