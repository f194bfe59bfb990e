"""PPO (Schulman et al. 2017) with stable-baselines3's ``PPO("MlpPolicy")`` defaults, as a pure
JAX trainer for the contextual JAX suites: what MBTL trains on every source context (MBTL
``control-tasks/train.py``: SB3 PPO, default hyperparameters; methods.md §5.4).

SB3 defaults reproduced (``stable_baselines3/ppo/ppo.py``, ``common/policies.py``): separate
actor and critic MLPs (64, 64) with tanh, orthogonal initialisation (gain sqrt(2) hidden, 0.01
policy output, 1 value output, zero biases), state-independent log-std initialised at 0 for Box
actions (actions sampled unclipped, clipped to the action bounds only when sent to the env,
log-probabilities of the unclipped sample), n_steps 2048 per env, batch 64, 10 epochs, Adam
lr 3e-4 (eps 1e-5), gamma 0.99, GAE lambda 0.95, clip 0.2, no value clipping, entropy 0.0,
value coefficient 0.5, global grad-norm clip 0.5, advantages normalised per minibatch, and the
time-limit bootstrap (a truncated step's reward gets + gamma V(final obs), as SB3 does). The
policy acts greedily in evaluation (argmax / mean), as ``deterministic=True``.

Training is one jitted pure function, ``make_train(config, env, num_updates)`` ->
``train(key, env_params, context)``: ``env_params`` has one context per env slot (leading axis
``num_envs``), so a single-source run repeats one context and the multi-task baseline assigns the
contexts round-robin to the slots; ``context`` is the per-slot normalised context value that
``context_obs`` appends to the observation (the "with context" multi-task baseline). ``jax.vmap``
over (key, env_params, context) trains many sources and seeds in one program
(``mtrl_bench.transfer``).

Presets: ``sb3`` (= ``default``: the defaults above, one env), ``fast`` (8 envs x 256 steps,
minibatch 256, 4 epochs: the same 2048 samples per update and algorithm, 4x fewer gradient
steps and 8 envs stepping together; a cheaper variant -- the transfer matrices in
``experiments/transfer_control.py`` use ``sb3`` itself, vmapped over 60 runs), ``ci`` (tiny).

Deviations, with reasons:
- Multi-task runs over N contexts use N env slots with n_steps = 2048 // N per slot (at least
  16), i.e. about the same samples per update; SB3 would need N envs in a vector env the same way.
- Episode returns for the learning curve are the mean over episodes finished in each update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtrl_bench.jax_env import JaxEnv


@dataclass(frozen=True)
class Config:
    num_envs: int = 1
    """Env slots stepped together."""
    n_steps: int = 2048
    """Rollout length per env slot and update."""
    batch_size: int = 64
    """Minibatch size."""
    epochs: int = 10
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    context_obs: bool = False
    """Append the normalised context value to the observation."""

    @property
    def rollout(self) -> int:
        return self.num_envs * self.n_steps


PRESETS = {
    "sb3": Config(),
    "default": Config(),
    "fast": Config(num_envs=8, n_steps=256, batch_size=256, epochs=4),
    "ci": Config(num_envs=4, n_steps=64, batch_size=64, epochs=4),
}


def _dense(key: jax.Array, fan_in: int, fan_out: int, gain: float) -> dict[str, jax.Array]:
    w = jax.nn.initializers.orthogonal(gain)(key, (fan_in, fan_out), jnp.float32)
    return {"w": w, "b": jnp.zeros(fan_out, jnp.float32)}


def _mlp_init(key: jax.Array, sizes: tuple[int, ...], out_gain: float) -> list[dict[str, Any]]:
    keys = jax.random.split(key, len(sizes) - 1)
    gains = [math.sqrt(2)] * (len(sizes) - 2) + [out_gain]
    layers = zip(list(keys), sizes[:-1], sizes[1:], gains, strict=True)
    return [_dense(k, a, b, g) for k, a, b, g in layers]


def _mlp(layers: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in layers[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


def init_params(config: Config, key: jax.Array, obs_dim: int, space: gym.Space) -> dict[str, Any]:
    k_pi, k_v = jax.random.split(key)
    out = int(space.n) if isinstance(space, gym.spaces.Discrete) else int(np.prod(space.shape))
    sizes = (obs_dim + int(config.context_obs), *config.hidden)
    params = {"pi": _mlp_init(k_pi, (*sizes, out), 0.01), "v": _mlp_init(k_v, (*sizes, 1), 1.0)}
    if not isinstance(space, gym.spaces.Discrete):
        params["log_std"] = jnp.zeros(out, jnp.float32)
    return params


class Policy:
    """Distribution helpers for the action space (categorical or diagonal Gaussian)."""

    def __init__(self, space: gym.Space) -> None:
        self.discrete = isinstance(space, gym.spaces.Discrete)
        if not self.discrete:
            self.low = jnp.asarray(space.low, jnp.float32)
            self.high = jnp.asarray(space.high, jnp.float32)

    def sample(self, params, out: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.discrete:
            action = jax.random.categorical(key, out)
        else:
            action = out + jnp.exp(params["log_std"]) * jax.random.normal(key, out.shape)
        return action, self.log_prob(params, out, action)

    def log_prob(self, params, out: jax.Array, action: jax.Array) -> jax.Array:
        if self.discrete:
            return jnp.take_along_axis(jax.nn.log_softmax(out), action[..., None], -1)[..., 0]
        log_std = params["log_std"]
        z = (action - out) / jnp.exp(log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)

    def entropy(self, params, out: jax.Array) -> jax.Array:
        if self.discrete:
            logp = jax.nn.log_softmax(out)
            return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
        ent = jnp.sum(params["log_std"] + 0.5 * math.log(2 * math.pi * math.e))
        return jnp.broadcast_to(ent, out.shape[:-1])

    def greedy(self, out: jax.Array) -> jax.Array:
        return jnp.argmax(out, axis=-1) if self.discrete else out

    def to_env(self, action: jax.Array) -> jax.Array:
        return action if self.discrete else jnp.clip(action, self.low, self.high)


def policy_input(config: Config, obs: jax.Array, context: jax.Array) -> jax.Array:
    obs = obs.reshape(*obs.shape[: obs.ndim - 1], -1).astype(jnp.float32)
    return jnp.concatenate([obs, context[..., None]], -1) if config.context_obs else obs


def make_train(config: Config, env: JaxEnv, num_updates: int):
    """``train(key, env_params, context) -> (params, episode_returns per update)``."""
    pol = Policy(env.action_space)
    obs_dim = int(np.prod(env.observation_space.shape))
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                     optax.adam(config.lr, eps=1e-5))  # fmt: skip
    n_mb = max(1, config.rollout // config.batch_size)
    step = jax.vmap(env.step)

    def loss_fn(params, batch):
        inp, action, old_logp, adv, ret = batch
        out = _mlp(params["pi"], inp)
        ratio = jnp.exp(pol.log_prob(params, out, action) - old_logp)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - config.clip, 1 + config.clip) * adv)
        value = _mlp(params["v"], inp)[..., 0]
        ent = pol.entropy(params, out).mean()
        return pg.mean() + config.vf_coef * ((ret - value) ** 2).mean() - config.ent_coef * ent

    def train(key: jax.Array, env_params: Any, context: jax.Array):
        k_init, k_reset, key = jax.random.split(key, 3)
        params = init_params(config, k_init, obs_dim, env.action_space)
        opt_state = tx.init(params)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_reset, config.num_envs),
                                             env_params)  # fmt: skip
        zeros = jnp.zeros(config.num_envs, jnp.float32)

        def env_step(carry, _):
            params, obs, env_state, ep_ret, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            inp = policy_input(config, obs, context)
            out, value = _mlp(params["pi"], inp), _mlp(params["v"], inp)[..., 0]
            action, logp = pol.sample(params, out, k_act)
            keys = jax.random.split(k_env, config.num_envs)
            obs2, env_state, reward, term, trunc, info = step(keys, env_state, pol.to_env(action),
                                                              env_params)  # fmt: skip
            final_v = _mlp(params["v"], policy_input(config, info["final_obs"], context))[..., 0]
            reward = reward.astype(jnp.float32)
            boot = reward + config.gamma * final_v * (trunc & ~term)  # SB3's time-limit bootstrap
            done = term | trunc
            ep_ret = ep_ret + reward
            row = (inp, action, logp, value, boot, done, jnp.where(done, ep_ret, 0.0))
            return (params, obs2, env_state, jnp.where(done, 0.0, ep_ret), key), row

        def update(carry, _):
            params, opt_state, obs, env_state, ep_ret, key = carry
            (_, obs, env_state, ep_ret, key), rows = jax.lax.scan(
                env_step, (params, obs, env_state, ep_ret, key), None, config.n_steps
            )
            inp, action, logp, value, reward, done, finished = rows
            last_v = _mlp(params["v"], policy_input(config, obs, context))[..., 0]

            def gae(next_adv_v, t):
                next_adv, next_v = next_adv_v
                nonterminal = 1.0 - done[t]
                delta = reward[t] + config.gamma * next_v * nonterminal - value[t]
                adv = delta + config.gamma * config.gae_lambda * nonterminal * next_adv
                return (adv, value[t]), adv

            _, adv = jax.lax.scan(gae, (zeros, last_v), jnp.arange(config.n_steps), reverse=True)
            data = jax.tree.map(lambda x: x.reshape(config.rollout, *x.shape[2:]),
                                (inp, action, logp, adv, adv + value))  # fmt: skip

            def epoch(carry, k):
                params, opt_state = carry
                perm = jax.random.permutation(k, config.rollout)[: n_mb * config.batch_size]
                mbs = jax.tree.map(lambda x: x[perm].reshape(n_mb, -1, *x.shape[1:]), data)

                def minibatch(carry, batch):
                    params, opt_state = carry
                    grads = jax.grad(loss_fn)(params, batch)
                    updates, opt_state = tx.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), None

                return jax.lax.scan(minibatch, (params, opt_state), mbs)[0], None

            key, k_ep = jax.random.split(key)
            (params, opt_state), _ = jax.lax.scan(
                epoch, (params, opt_state), jax.random.split(k_ep, config.epochs)
            )
            n_done = done.sum()
            mean_ret = jnp.where(n_done > 0, finished.sum() / jnp.maximum(n_done, 1), jnp.nan)
            return (params, opt_state, obs, env_state, ep_ret, key), mean_ret

        carry = (params, opt_state, obs, env_state, zeros, key)
        (params, *_), returns = jax.lax.scan(update, carry, None, num_updates)
        return params, returns

    return train


def make_evaluate(config: Config, env: JaxEnv, max_steps: int):
    """``evaluate(params, env_params, context, key) -> (return, success)`` of one greedy
    episode (the env's first); ``jax.vmap`` over targets and episodes."""
    pol = Policy(env.action_space)

    def evaluate(params, env_params, context, key):
        k_reset, key = jax.random.split(key)
        obs, state = env.reset(k_reset, env_params)

        def one(carry, k):
            obs, state, alive, ret, success = carry
            action = pol.to_env(pol.greedy(_mlp(params["pi"], policy_input(config, obs, context))))
            obs, state, reward, term, trunc, info = env.step(k, state, action, env_params)
            ret = ret + jnp.where(alive, reward, 0.0)
            success = success | (alive & info["success"])
            return (obs, state, alive & ~(term | trunc), ret, success), None

        init = (obs, state, jnp.bool_(True), jnp.float32(0.0), jnp.bool_(False))
        (_, _, _, ret, success), _ = jax.lax.scan(one, init, jax.random.split(key, max_steps))
        return ret, success

    return evaluate


def num_updates(config: Config, steps: int) -> int:
    """Updates for a budget of ``steps`` env steps (at least one)."""
    return max(1, steps // config.rollout)
