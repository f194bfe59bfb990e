"""CAMRL's per-task base learners (``agents/camrl.py`` is the algorithm; read it first): one PPO
or SAC learner for a single task, with a hook for CAMRL's weight-reconstruction regulariser.

CAMRL shares no parameters, so a learner here is a single-task agent; ``camrl.py`` stacks one
per task on a leading axis and ``vmap``s these functions over it (independent iterations) or
indexes one task at a time (curriculum iterations). Each base exposes:

- ``init(key) -> state`` of one task; ``actor_params(state)``; ``last_layer(actor_params)``;
- ``act(actor_params, obs (n, ...), key, deterministic) -> actions (n, ...)`` in [-1, 1] for SAC;
- ``train(state, data, key, target, coef) -> (state, loss, metrics)``: one iteration's training
  of this task on ``data``; the actor loss gets ``coef * ||w - target||^2`` (``target``: the
  B-weighted earlier tasks' actor parameters, a tree like ``w``; ``coef`` 0 in independent
  iterations). ``loss`` is the task's policy loss without the regulariser (the code's ``rloss``).

PPO: MOORE's MiniGrid settings as ``mtppo.py`` runs them, for one task (MOORE's single-task
network: the CNN with tanh and one head, ``nets.MultiTaskNet(kind="mtppo")`` with one task); GAE,
normalised advantages, one full-batch critic step, then ``epochs`` of minibatches of
``minibatch``. SAC: ``mtsac.py``'s update for one task (twin critics, soft targets, learned
temperature, critic -> actor -> temperature, global-norm clipping), Meta-World+'s initialisers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mtrl_bench.agents import nets, ppo_core


def sq_dist(params: Any, target: Any) -> jax.Array:
    """``||w - target||^2`` summed over every parameter tensor."""
    pairs = zip(jax.tree.leaves(params), jax.tree.leaves(target), strict=True)
    return sum(((p - q) ** 2).sum() for p, q in pairs)


class Base(NamedTuple):
    init: Any
    actor_params: Any
    last_layer: Any
    act: Any
    train: Any


# --- PPO (MiniGrid and other discrete suites)


class PPOState(NamedTuple):
    actor: Any
    critic: Any
    actor_opt: Any
    critic_opt: Any


def ppo_base(config: Any, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int) -> Base:
    common = dict(kind="mtppo", n_experts=1, num_tasks=1, num_train_tasks=1, hidden=config.hidden,
                  mlp_widths=tuple(config.mlp_widths), flatten=config.encoder == "mlp")  # fmt: skip
    actor_net = nets.MultiTaskNet(out=n_actions, **common)
    critic_net = nets.MultiTaskNet(out=1, **common)
    zero = jnp.zeros(1, jnp.int32)
    actor_opt, critic_opt = optax.adam(config.lr_actor), optax.adam(config.lr_critic)

    def logits(p, obs):  # (n, ...) -> (n, A)
        return actor_net.apply(p, obs[None], zero)[0]

    def value(p, obs):
        return critic_net.apply(p, obs[None], zero)[0, :, 0]

    def init(key):
        ka, kc = jax.random.split(key)
        dummy = jnp.zeros((1, 1, *obs_shape), obs_dtype)
        a, c = actor_net.init(ka, dummy, zero), critic_net.init(kc, dummy, zero)
        return PPOState(a, c, actor_opt.init(a), critic_opt.init(c))

    def act(params, obs, key, deterministic):
        lg = logits(params, obs)
        return jnp.where(deterministic, jnp.argmax(lg, -1), jax.random.categorical(key, lg))

    def train(state: PPOState, batch, key, target, coef):
        """``batch``: this task's rollout, ``rollout.Batch`` of ``(epp, S, ...)`` arrays."""
        epp, steps = batch.rewards.shape
        flat = lambda x: x.reshape(epp * steps, *x.shape[2:])  # noqa: E731
        v_of = lambda p, o: value(p, flat(o)).reshape(epp, steps)  # noqa: E731
        values, next_values = v_of(state.critic, batch.obs), v_of(state.critic, batch.next_obs)
        args = (batch.rewards, values, next_values, batch.terminated, batch.dones)
        adv = ppo_core.gae(*(x.T for x in args), config.gamma, config.gae_lambda).T
        targets, adv = flat(adv + values), ppo_core.normalize(flat(adv))
        obs, actions = flat(batch.obs), flat(batch.actions)
        logp_all = jax.nn.log_softmax(logits(state.actor, obs))
        old_logp = ppo_core.categorical_log_prob(logp_all, actions)
        # critic: one full-batch step (mushroom's batch_size=0), before the policy
        value_loss, grads = jax.value_and_grad(
            lambda p: ppo_core.value_loss(value(p, obs), targets))(state.critic)  # fmt: skip
        upd, c_opt = critic_opt.update(grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, upd)

        def minibatch(carry, idx):
            params, opt_state = carry

            def loss_fn(p):
                lp = jax.nn.log_softmax(logits(p, obs[idx]))
                ppo = ppo_core.ppo_loss(ppo_core.categorical_log_prob(lp, actions[idx]),
                                        old_logp[idx], adv[idx], ppo_core.categorical_entropy(lp),
                                        clip=config.clip, ent_coef=config.ent_coef)  # fmt: skip
                return ppo + coef * sq_dist(p, target), ppo

            (_, ppo), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            upd, opt_state = actor_opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state), ppo

        (actor, a_opt), losses = ppo_core.minibatch_epochs(
            minibatch, (state.actor, state.actor_opt), key, epochs=config.epochs,
            size=epp * steps, batch_size=config.minibatch, keep_last=True)  # fmt: skip
        metrics = {"value_loss": value_loss,
                   "entropy": ppo_core.categorical_entropy(logp_all).mean()}  # fmt: skip
        return PPOState(actor, critic, a_opt, c_opt), losses.mean(), metrics

    return Base(init, lambda s: s.actor, lambda p: p["params"]["head_w2"], act, train)


# --- SAC (Meta-World and other continuous suites)


class MLP(nn.Module):
    """Meta-World+'s MLP: He-uniform hidden layers with ReLU, zero biases, U(+-head_scale) head."""

    widths: tuple[int, ...]
    out: int
    head_scale: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.widths):
            x = nn.relu(nn.Dense(width, kernel_init=nn.initializers.he_uniform(), name=f"h{i}")(x))
        return nn.Dense(self.out, kernel_init=nets.symmetric_uniform(self.head_scale),
                        name="last")(x)  # fmt: skip


class SACState(NamedTuple):
    actor: Any
    critic: Any  # twin critics stacked on a leading axis
    target: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any


def sac_base(config: Any, obs_dim: int, act_dim: int) -> Base:
    widths = tuple(config.widths)
    actor_net, critic_net = MLP(widths, 2 * act_dim, 1e-3), MLP(widths, 1, 3e-3)

    clip = config.max_grad_norm
    opt = optax.chain(optax.clip_by_global_norm(clip), optax.adam(config.sac_lr)) if clip \
        else optax.adam(config.sac_lr)
    actor_opt, critic_opt, alpha_opt = opt, opt, optax.adam(config.sac_lr_alpha)
    target_entropy = -float(act_dim)

    def init(key):
        ka, kc = jax.random.split(key)
        a = actor_net.init(ka, jnp.zeros((1, obs_dim)))
        c = jax.vmap(lambda k: critic_net.init(k, jnp.zeros((1, obs_dim + act_dim))))(
            jax.random.split(kc))  # fmt: skip
        log_alpha = jnp.log(jnp.float32(config.initial_alpha))
        return SACState(a, c, c, log_alpha, actor_opt.init(a), critic_opt.init(c),
                        alpha_opt.init(log_alpha))  # fmt: skip

    def sample(params, obs, key):
        mean, log_std = jnp.split(actor_net.apply(params, obs), 2, axis=-1)
        std = jnp.exp(jnp.clip(log_std, config.log_std_min, config.log_std_max))
        u = mean + std * jax.random.normal(key, mean.shape)
        a = jnp.tanh(u)
        logp = jax.scipy.stats.norm.logpdf(u, mean, std) - jnp.log(1 - a**2 + 1e-6)
        return a, logp.sum(-1), jnp.tanh(mean)

    def q_values(params, obs, actions):  # (2, n)
        x = jnp.concatenate([obs, actions], -1)
        return jax.vmap(lambda p: critic_net.apply(p, x)[..., 0])(params)

    def act(params, obs, key, deterministic):
        a, _, mode = sample(params, obs, key)
        return jnp.where(deterministic, mode, a)

    def one_update(state: SACState, batch, key, target, coef):
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        next_a, next_logp, _ = sample(state.actor, batch["next_obs"], k_next)
        next_q = q_values(state.target, batch["next_obs"], next_a).min(0)
        y = jax.lax.stop_gradient(batch["rewards"] + config.gamma * (1 - batch["terminated"]) * (
            next_q - alpha * next_logp))  # fmt: skip
        q_loss, grads = jax.value_and_grad(
            lambda p: ((q_values(p, batch["obs"], batch["actions"]) - y) ** 2).mean())(state.critic)
        upd, c_opt = critic_opt.update(grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, upd)
        tgt = optax.incremental_update(critic, state.target, config.tau)

        def actor_loss(p):
            a, logp, _ = sample(p, batch["obs"], k_pi)
            pi = (alpha * logp - q_values(critic, batch["obs"], a).min(0)).mean()
            return pi + coef * sq_dist(p, target), (pi, logp)

        (_, (pi, logp)), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
        upd, a_opt = actor_opt.update(grads, state.actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, upd)
        logp = jax.lax.stop_gradient(logp)
        g_alpha = jax.grad(lambda la: -la * (logp.mean() + target_entropy))(state.log_alpha)
        upd, al_opt = alpha_opt.update(g_alpha, state.alpha_opt)
        log_alpha = optax.apply_updates(state.log_alpha, upd)
        new = SACState(actor, critic, tgt, log_alpha, a_opt, c_opt, al_opt)
        return new, (pi, q_loss, alpha)

    def train(state: SACState, batches, key, target, coef):
        """``batches``: this task's replay batches, ``(updates, n, ...)``; one update each."""
        n = batches["rewards"].shape[0]

        def body(s, x):
            batch, k = x
            return one_update(s, batch, k, target, coef)

        state, (pi, q_loss, alpha) = jax.lax.scan(body, state, (batches, jax.random.split(key, n)))
        return state, pi.mean(), {"critic_loss": q_loss.mean(), "alpha": alpha[-1]}

    return Base(init, lambda s: s.actor, lambda p: p["params"]["last"]["kernel"], act, train)
