"""Transfer PPO: the trainer of the ``transfer`` protocol's matrices, registered as the agents
``ppo`` (no context) and ``ppo-context`` (the normalised context appended to the observation).

PPO (Schulman et al. 2017) with stable-baselines3's ``PPO("MlpPolicy")`` defaults, as a pure
JAX trainer for the contextual JAX suites: what MBTL (Cho et al., "Model-Based Transfer Learning
for Contextual Reinforcement Learning", NeurIPS 2024) trains on every source context (its
``control-tasks/train.py``: SB3 PPO, default hyperparameters). Not MOORE's multi-task PPO
(``agents/mtppo.py``); both build on the same core, ``agents/ppo_core.py``: ``ppo_core.gae``
(truncation bootstrapped into the reward, so ``terminated = dones``), ``ppo_core.ppo_loss`` with
its value and entropy terms (one network pair, one optimiser), advantages normalised per
minibatch (``ppo_core.normalize``), ``ppo_core.minibatch_epochs`` with one flat permutation per
epoch.

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
(``mtrl_bench.transfer``, through ``jax_trainer``, this agent's ``AgentSpec.jax_trainer``).

As registered agents (``mtrl train --agent ppo``, JAX suites only), one policy trains on all the
``train`` tasks together (one env slot per task, ``multitask_config``) as one program; its
checkpoint is the final parameters (a killed run trains again from the start). The policy acts
greedily with ``deterministic`` and samples otherwise.

Presets: ``sb3`` (= ``default``: the defaults above, one env), ``fast`` (8 envs x 256 steps,
minibatch 256, 4 epochs: the same 2048 samples per update and algorithm, 4x fewer gradient
steps and 8 envs stepping together; a cheaper variant -- the transfer matrices in
``experiments/transfer_control.py`` use ``sb3`` itself, vmapped over 60 runs), ``ci`` (tiny).

Deviations, with reasons:
- Multi-task runs over N contexts use N env slots with n_steps = 2048 // N per slot (at least
  16), i.e. about the same samples per update; SB3 would need N envs in a vector env the same way.
- When the rollout is not a multiple of the minibatch size (multi-task runs over N contexts),
  the leftover samples of each epoch are dropped (``keep_last=False``); SB3 takes a last, smaller
  minibatch. Kept as the committed transfer results were computed.
- Episode returns for the learning curve are the mean over episodes finished in each update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtrl_bench.agents import ppo_core
from mtrl_bench.agents.checkpoint import load_tree, save_tree, saved_config
from mtrl_bench.errors import UsageError
from mtrl_bench.jax_env import JaxEnv, stack_params
from mtrl_bench.jax_vector import suite_env
from mtrl_bench.results import RunDir
from mtrl_bench.transfer import contexts
from mtrl_bench.types import AgentSpec, Suite


@dataclass(frozen=True)
class Config:
    num_envs: int = 1
    """Env slots stepped together."""
    n_steps: int = 2048
    """Rollout length per env slot and update."""
    batch_size: int = 64
    """Minibatch size."""
    epochs: int = 10
    """Passes over each rollout."""
    lr: float = 3e-4
    """Adam learning rate (actor and critic share one optimiser, as in SB3)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda."""
    clip: float = 0.2
    """Clipping range of the probability ratio."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clipping."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor and critic MLPs (SB3's default)."""
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


class ActionDist:
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
    pol = ActionDist(env.action_space)
    obs_dim = int(np.prod(env.observation_space.shape))
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                     optax.adam(config.lr, eps=1e-5))  # fmt: skip
    step = jax.vmap(env.step)

    def loss_fn(params, batch):
        inp, action, old_logp, adv, ret = batch
        out = _mlp(params["pi"], inp)
        return ppo_core.ppo_loss(
            pol.log_prob(params, out, action), old_logp, ppo_core.normalize(adv),
            pol.entropy(params, out), clip=config.clip, ent_coef=config.ent_coef,
            values=_mlp(params["v"], inp)[..., 0], targets=ret, vf_coef=config.vf_coef)  # fmt: skip

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
            inp, action, logp, value, reward, done, finished = rows  # (S, E, ...)
            last_v = _mlp(params["v"], policy_input(config, obs, context))[..., 0]
            next_v = jnp.concatenate([value[1:], last_v[None]])
            # truncation is already bootstrapped into ``reward``: every done ends the trace
            adv = ppo_core.gae(reward, value, next_v, done, done, config.gamma, config.gae_lambda)
            data = jax.tree.map(lambda x: x.reshape(config.rollout, *x.shape[2:]),
                                (inp, action, logp, adv, adv + value))  # fmt: skip

            def minibatch(carry, idx):
                params, opt_state = carry
                batch = jax.tree.map(lambda x: x[idx], data)
                loss, grads = jax.value_and_grad(loss_fn)(params, batch)
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss

            key, k_ep = jax.random.split(key)
            (params, opt_state), _ = ppo_core.minibatch_epochs(
                minibatch, (params, opt_state), k_ep, epochs=config.epochs, size=config.rollout,
                batch_size=config.batch_size, keep_last=False)  # fmt: skip
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
    pol = ActionDist(env.action_space)

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


# ---------------------------------------------------------------------------------------------
# The registered agents: the transfer protocol's hook and the runner's train / load.


def multitask_config(config: Config, n: int) -> Config:
    """The config of one run over ``n`` contexts (MBTL's multi-task baseline): one env slot per
    context, ``n_steps`` scaled so an update has about the preset's samples (at least 16)."""
    return replace(config, num_envs=n, n_steps=max(16, config.rollout // n))


def run_config(config: Config, contexts: int) -> Config:
    """One context: the preset's env slots all on it; more: ``multitask_config``."""
    return config if contexts == 1 else multitask_config(config, contexts)


def jax_trainer(config: Config, env: JaxEnv, steps: int, contexts: int, max_steps: int):
    """``AgentSpec.jax_trainer``: ``(train, evaluate)`` for runs of ``steps`` env steps on
    ``contexts`` contexts. ``train(key, env_params, context)`` takes the contexts' env params
    (leading axis ``contexts``) and normalised values ``(contexts,)``, assigns them round-robin
    to the env slots of ``run_config`` and returns ``(params, episode return per update)``;
    ``evaluate`` is ``make_evaluate``'s."""
    cfg = run_config(config, contexts)
    inner = make_train(cfg, env, num_updates(cfg, steps))
    slot = np.arange(cfg.num_envs) % contexts

    def train(key: jax.Array, env_params: Any, context: jax.Array):
        return inner(key, jax.tree.map(lambda x: x[slot], env_params), context[slot])

    return train, make_evaluate(cfg, env, max_steps)


def _jax_env(suite: Suite) -> JaxEnv:
    if suite.backend != "jax":
        raise UsageError(f"ppo / ppo-context train on JAX suites only (e.g. control-jax/...), "
                         f"got {suite.id}")  # fmt: skip
    return suite_env(suite)


class TrainedPolicy:
    """The harness ``Policy`` of a trained agent: greedy with ``deterministic``, else sampled."""

    def __init__(self, config: Config, suite: Suite, params: Any) -> None:
        self.config, self.params = config, params
        self._context = jnp.asarray(contexts(suite)[2])
        dist = ActionDist(_jax_env(suite).action_space)

        def act(params, obs, context, key, deterministic):
            out = _mlp(params["pi"], policy_input(config, obs, context))
            action = jnp.where(deterministic, dist.greedy(out), dist.sample(params, out, key)[0])
            return dist.to_env(action)

        self._act = jax.jit(act)

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        # Keys come from numpy's global RNG, which ``evaluate`` seeds: same seed, same episodes.
        key = jax.random.key(np.random.randint(2**31))
        context = self._context[jnp.asarray(task_ids)]
        return np.asarray(self._act(self.params, jnp.asarray(obs), context, key, deterministic))

    def reset(self, mask: np.ndarray) -> None:
        pass  # feedforward


def _template(config: Config, env: JaxEnv) -> Any:
    obs_dim = int(np.prod(env.observation_space.shape))
    return init_params(config, jax.random.PRNGKey(0), obs_dim, env.action_space)


def train(config: Config, suite: Suite, seed: int, run_dir: RunDir, steps: int,
          progress: bool) -> TrainedPolicy:  # fmt: skip
    """One policy on all ``train`` tasks (one env slot each) for ``steps`` env steps."""
    env, tasks = _jax_env(suite), list(suite.splits["train"])
    if (hit := load_tree(run_dir.ckpt_dir, _template(config, env))) is not None:
        return TrainedPolicy(config, suite, hit[0])  # trained: the checkpoint is the end state
    max_steps = max(t.max_episode_steps for t in suite.tasks)
    fn, _ = jax_trainer(config, env, steps, len(tasks), max_steps)
    norm = contexts(suite)[2][tasks]
    params, curve = jax.jit(fn)(jax.random.PRNGKey(seed),
                                stack_params(env, [suite.tasks[i] for i in tasks]),
                                jnp.asarray(norm))  # fmt: skip
    rollout = run_config(config, len(tasks)).rollout
    for i, ret in enumerate(np.asarray(curve, float)):  # NaN: no episode ended in that update
        mean = None if np.isnan(ret) else float(ret)
        row = {"split": "train", "updates": i + 1, "env_steps": (i + 1) * rollout}
        run_dir.append_metrics({**row, "episode_return": mean})
    save_tree(run_dir.ckpt_dir, params, {"updates": len(curve)})
    return TrainedPolicy(config, suite, params)


def load(path: Path, suite: Suite) -> TrainedPolicy:
    """The trained policy of the run directory ``path`` (its ``ckpt/``)."""
    config = Config(**saved_config(path, suite.id, ("hidden",))["agent_config"])
    if (hit := load_tree(Path(path) / "ckpt", _template(config, _jax_env(suite)))) is None:
        raise UsageError(f"no checkpoint in {Path(path) / 'ckpt'}")
    return TrainedPolicy(config, suite, hit[0])


def _spec(agent_id: str, context_obs: bool, description: str) -> AgentSpec:
    presets = {name: replace(c, context_obs=context_obs) for name, c in PRESETS.items()}
    return AgentSpec(agent_id, Config, presets, train, load, description, backends=("jax",),
                     jax_trainer=jax_trainer)  # fmt: skip


PPO = _spec("ppo", False, "SB3's PPO defaults in JAX, no context: the transfer-matrix trainer "
            "(JAX suites)")  # fmt: skip
PPO_CONTEXT = _spec("ppo-context", True, "SB3's PPO defaults in JAX, normalised context in the "
                    "observation (JAX suites)")  # fmt: skip
