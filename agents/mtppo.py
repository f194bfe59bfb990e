"""Multi-task PPO on MiniGrid, MOORE's family: MTPPO, MoE, MOORE, and their PCGrad variants.

Papers: MOORE, Hendawy, Peters & D'Eramo, "Multi-Task Reinforcement Learning with Mixture of
Orthogonal Experts", ICLR 2024; PCGrad, Yu et al., NeurIPS 2020; PPO, Schulman et al., 2017.
Reference code (facts, not copied): ``AhmedMagdyHendawy/MOORE``, ``.../mtppo.py``,
``mtppo_pcgrad.py``, ``run_minigrid_ppo_mt.py``, ``run/minigrid/*``. Networks: ``nets.py``.

Variant -> code (agent id = ``Config.network`` [+ ``Config.pcgrad``]; the rest is shared):

- every variant: ``build`` (``update``: ``gae`` -> ``ppo_core.gae``, the critic's full-batch
  step on ``ppo_core.value_loss``, ``ppo_core.minibatch_epochs`` over ``_policy_losses`` ->
  ``ppo_core.ppo_loss``), rollouts ``rollout.jax_rollout`` / ``rollout.python_rollout``,
  ``make_chunk`` / ``_fit`` (training loop, checkpoints), ``PPOPolicy`` (acting);
  ``agents/ppo_core.py`` holds GAE, the clipped loss and the epoch loop;
- mtppo = ``nets.MultiTaskNet(kind="mtppo")``: one ``nets.CNNExperts`` (``nets.MLPExperts`` on
  vectors) trunk with ``last_tanh``, per-task heads (``head_w1`` ... ``head_b2``);
- moe = ``nets.MultiTaskNet(kind="moe")``: k experts, ``task_weights`` mixing, tanh, heads;
- moore = ``nets.MultiTaskNet(kind="moore")``: moe + ``nets.gram_schmidt`` (``nets._safe_norm``)
  before the mixing;
- mtppo-pcgrad / moe-pcgrad = ``Config.pcgrad``: ``nets.task_grad`` -> ``nets.pcgrad``
  (``nets.is_head``: per-task heads summed, not averaged);
- few-shot (``adapt``): ``build(frozen=True)`` -> ``_optimizer`` zeroes the experts' updates.

The algorithm, as the reference code runs it (every update):

1. Roll out ``steps_per_task`` = 2000 steps on each training task (one env per task), sampling
   the Boltzmann (softmax, beta = 1) policy.
2. GAE (gamma 0.99, lambda 0.95) per env trajectory with the current critic: ``absorbing =
   terminated``, so truncation bootstraps from V(final obs). Advantages are normalised *per task*
   (population std + 1e-8). Value targets: advantage + V(s).
3. Critic: one epoch with mushroom's ``batch_size=0``, i.e. **one** full-batch Adam step on the
   MSE (lr 1e-3), before the policy update.
4. Policy: 8 epochs of minibatches of 256 x n_tasks: clipped surrogate (0.2) minus 0.01 x the
   mean entropy, Adam lr 1e-3, betas (0.9, 0.999), no gradient clipping; actor and critic are
   separate networks with separate optimisers.
5. PCGrad variants: the per-task losses of each minibatch (policy) and of the full batch
   (critic) are combined with ``nets.pcgrad``.

``network``: ``mtppo`` (one CNN + tanh, per-task heads: MOORE's ``MiniGridPPOMHNetwork``), ``moe``
(k experts, task-linear mixing, tanh, per-task heads), ``moore`` (``moe`` + Gram-Schmidt).
``n_experts = 0`` picks MOORE's k for the suite: (n_tasks + 1) // 2, i.e. 2 / 3 / 4 on MT3 / 5 / 7.

Deviations, with reasons:

- **Reward.** MOORE's MiniGrid wrapper sets ``max_steps = inf`` and applies the horizon itself,
  which makes the upstream reward ``1 - 0.9 * steps / max_steps`` equal to 1 on every success.
  We train on the suite's reward (upstream, time-discounted), the one every agent here sees.
- **Minibatches are stratified**: each has exactly 256 samples of every task (mushroom shuffles
  the whole dataset, so a minibatch holds 256 per task only on average). Same expected
  gradient; it makes per-task heads one batched matmul and PCGrad's per-task losses exact.
  As in mushroom, the last minibatch of an epoch is smaller (2000 = 7 x 256 + 208).
- **Per-task networks for held-out tasks**: the networks have a head (and task weights) for
  every task of the suite; held-out ones are untrained until ``few_shot`` adapts them.
- **Optional ``envs_per_task``** (default 1, the paper's) keeps the per-task batch size.

Two paths, one algorithm: on JAX suites a whole chunk of updates (rollout + update) is one
jitted ``lax.scan`` (``make_train``), seeds can be ``vmap``ped, and checkpoints hold the env
state too, so a resumed run equals an uninterrupted one. On CPU suites the same jitted policy
step and update run under a Python rollout loop over the suite's vector env; a resume restarts
the envs (fresh reset), so it is not bit-identical there. Both paths split keys identically, and
on a JAX suite they give the same parameters (tested).

Performance (issue 17; timings in docs/performance.md): the update's three forward passes over
the whole rollout (V(s), V(s'), old log-probabilities) run in minibatch-sized chunks
(``nets.apply_chunked``), bitwise the same values with the activations in cache. The critic's
full-batch gradient step is left whole (chunking it would change the summation order).

``few_shot`` (MOORE's transfer runs, TL3->5 / TL5->7): the trained agent's experts (for MTPPO its
CNN trunk) are frozen; only the task weights and heads of the held-out tasks train, with fresh
Adam states, for the protocol's budget. Evaluation samples the policy (MOORE's protocol).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from mtrl_bench import make_env, make_single_env
from mtrl_bench.agents import nets, ppo_core
from mtrl_bench.agents import rollout as ro
from mtrl_bench.agents.checkpoint import load_tree, save_tree, saved_config
from mtrl_bench.errors import UsageError
from mtrl_bench.results import RunDir
from mtrl_bench.types import AgentSpec, Suite


@dataclass(frozen=True)
class Config:
    network: nets.Kind = "moore"
    """``mtppo`` | ``moe`` | ``moore`` (module docstring)."""
    n_experts: int = 0
    """Experts of ``moe`` / ``moore``; 0: MOORE's choice, (n_train_tasks + 1) // 2."""
    pcgrad: bool = False
    """Combine per-task gradients with PCGrad (actor and critic)."""
    steps_per_task: int = 2000
    """Env steps per task between updates (MOORE: 2000)."""
    envs_per_task: int = 1
    """Parallel envs per task (MOORE: 1); each runs steps_per_task / envs_per_task steps."""
    epochs: int = 8
    """Policy epochs per update."""
    minibatch_per_task: int = 256
    """Policy minibatch = this x number of tasks (MOORE: 256)."""
    clip: float = 0.2
    """PPO's clipping range of the probability ratio (MOORE: 0.2)."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus in the actor loss (MOORE: 0.01)."""
    lr_actor: float = 1e-3
    """Adam learning rate of the actor (MOORE trains actor and critic with separate optimisers)."""
    lr_critic: float = 1e-3
    """Adam learning rate of the critic."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda (bias / variance of the advantage estimate)."""
    hidden: int = 128
    """Hidden width of each per-task head."""
    mlp_widths: tuple[int, ...] = (64, 64)
    """Expert MLP widths on vector observations (grids use MOORE's CNN)."""
    encoder: Literal["auto", "mlp"] = "auto"
    """``auto``: CNN on grids, MLP on vectors; ``mlp``: MLP on the flattened observation."""
    gs_eps: float = 1e-8
    """Gram-Schmidt epsilon (MOORE has none; see nets.py)."""
    checkpoint_every: int = 10
    """Updates between checkpoints and metric rows."""


def _presets(network: nets.Kind, pcgrad: bool = False) -> dict[str, Config]:
    paper = Config(network=network, pcgrad=pcgrad)
    ci = replace(paper, steps_per_task=64, minibatch_per_task=32, epochs=2, checkpoint_every=2)
    return {"default": paper, "paper": paper, "ci": ci}


class Learner(NamedTuple):
    actor: Any
    critic: Any
    actor_opt: Any
    critic_opt: Any
    key: jax.Array
    updates: jax.Array


class Algo(NamedTuple):
    """The pure functions of one (config, suite) pair; see ``build``."""

    config: Config
    actor: nets.MultiTaskNet
    critic: nets.MultiTaskNet
    task_ids: np.ndarray  # (T,) training tasks, one group per task
    init: Any
    policy_step: Any
    update: Any


def n_experts(config: Config, suite: Suite) -> int:
    return config.n_experts or (len(suite.splits["train"]) + 1) // 2


def _networks(config: Config, suite: Suite, conv=nets.conv2x2) -> tuple[nets.MultiTaskNet, ...]:
    n_actions = int(make_single_env(suite, suite.splits["train"][0]).action_space.n)
    common = dict(kind=config.network, n_experts=n_experts(config, suite),
                  num_tasks=suite.num_tasks, num_train_tasks=len(suite.splits["train"]),
                  hidden=config.hidden, eps=config.gs_eps, mlp_widths=tuple(config.mlp_widths),
                  flatten=config.encoder == "mlp", conv=conv)  # fmt: skip
    return nets.MultiTaskNet(out=n_actions, **common), nets.MultiTaskNet(out=1, **common)


def _optimizer(lr: float, params: Any, frozen: bool) -> optax.GradientTransformation:
    """Adam; with ``frozen`` the experts get no update (``few_shot``)."""
    adam = optax.adam(lr, b1=0.9, b2=0.999)
    if not frozen:
        return adam
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if "experts" in jax.tree_util.keystr(path) else "train", params
    )
    return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)


def gae(config: Config, values, next_values, batch: ro.Batch) -> jax.Array:
    """Per-trajectory GAE as mushroom computes it (``ppo_core.gae``); ``(E, S)`` arrays, time on
    axis 1. ``absorbing = terminated``: truncation bootstraps from V(final obs)."""
    args = (batch.rewards, values, next_values, batch.terminated, batch.dones)
    return ppo_core.gae(*(x.T for x in args), config.gamma, config.gae_lambda).T


def _policy_losses(config, actor, params, obs, task_ids, actions, adv, old_logp):
    """Per-task PPO losses (T,) of a stratified minibatch ``(T, n, ...)`` (no value term)."""
    logp_all = jax.nn.log_softmax(actor.apply(params, obs, task_ids))
    logp = ppo_core.categorical_log_prob(logp_all, actions)
    entropy = ppo_core.categorical_entropy(logp_all)
    return ppo_core.ppo_loss(logp, old_logp, adv, entropy, clip=config.clip,
                             ent_coef=config.ent_coef, axis=1)  # fmt: skip


def build(config: Config, suite: Suite, *, split: str = "train", frozen: bool = False,
          conv=nets.conv2x2) -> Algo:  # fmt: skip
    """The jit-ready functions for training on ``split`` (``few_shot``: ``test``, frozen)."""
    if config.network not in ("mtppo", "moe", "moore"):
        raise UsageError(f"network must be mtppo, moe or moore, got {config.network!r}")
    if config.encoder not in ("auto", "mlp"):
        raise UsageError(f"encoder must be auto or mlp, got {config.encoder!r}")
    task_ids = np.array(suite.splits[split])
    t, epp = len(task_ids), config.envs_per_task
    if config.steps_per_task % epp:
        raise UsageError(f"steps_per_task {config.steps_per_task} is not a multiple of "
                         f"envs_per_task {epp}")  # fmt: skip
    actor, critic = _networks(config, suite, conv)
    obs_space = make_single_env(suite, int(task_ids[0])).observation_space
    tids = jnp.asarray(task_ids)
    n, mb = config.steps_per_task, config.minibatch_per_task

    def init(key: jax.Array) -> Learner:
        k_actor, k_critic, key = jax.random.split(key, 3)
        dummy = jnp.zeros((t, 1, *obs_space.shape), obs_space.dtype)
        a, c = actor.init(k_actor, dummy, tids), critic.init(k_critic, dummy, tids)
        a_opt = _optimizer(config.lr_actor, a, frozen).init(a)
        c_opt = _optimizer(config.lr_critic, c, frozen).init(c)
        return Learner(a, c, a_opt, c_opt, key, jnp.int32(0))

    def policy_step(actor_params, obs, key):
        """Sample actions for the ``E`` envs (task-major): ``(key, actions)``."""
        key, sub = jax.random.split(key)
        logits = actor.apply(actor_params, obs.reshape(t, epp, *obs_space.shape), tids)
        return key, jax.random.categorical(sub, logits.reshape(t * epp, -1)).astype(jnp.int32)

    def group(x):  # (E, S, ...) -> (T, epp * S, ...)
        return x.reshape(t, epp * x.shape[1], *x.shape[2:])

    def update(learner: Learner, batch: ro.Batch) -> tuple[Learner, dict[str, jax.Array]]:
        key, k_perm, k_pc = jax.random.split(learner.key, 3)

        def v_of(p, o):  # V of (E, S, ...) observations; forward passes in minibatch chunks
            return nets.apply_chunked(critic, p, group(o), tids, mb)[..., 0].reshape(o.shape[:2])

        values, next_values = v_of(learner.critic, batch.obs), v_of(learner.critic, batch.next_obs)
        adv = group(gae(config, values, next_values, batch))
        targets = adv + group(values)
        adv = ppo_core.normalize(adv, axis=1)  # per task
        obs, actions = group(batch.obs), group(batch.actions)
        logp_all = jax.nn.log_softmax(nets.apply_chunked(actor, learner.actor, obs, tids, mb))
        old_logp = ppo_core.categorical_log_prob(logp_all, actions)

        # Critic: one full-batch step (mushroom batch_size=0), before the policy.
        def critic_loss(p):
            return ppo_core.value_loss(critic.apply(p, obs, tids)[..., 0], targets, axis=1)

        k_pc, sub = jax.random.split(k_pc)
        value_loss, grads = nets.task_grad(critic_loss, learner.critic, config.pcgrad, sub)
        c_opt = _optimizer(config.lr_critic, learner.critic, frozen)
        upd, critic_opt = c_opt.update(grads, learner.critic_opt, learner.critic)
        critic_params = optax.apply_updates(learner.critic, upd)

        a_opt = _optimizer(config.lr_actor, learner.actor, frozen)

        def minibatch(carry, idx):
            params, opt_state, key = carry
            key, sub = jax.random.split(key)
            take = lambda x: jnp.take_along_axis(  # noqa: E731
                x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1
            )
            args = (take(obs), tids, take(actions), take(adv), take(old_logp))

            def loss_fn(p):
                return _policy_losses(config, actor, p, *args)

            loss, grads = nets.task_grad(loss_fn, params, config.pcgrad, sub)
            upd, opt_state = a_opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state, key), loss

        # Stratified minibatches (a permutation per task, ``mb`` samples of each task) and
        # mushroom's last, smaller minibatch.
        carry, losses = ppo_core.minibatch_epochs(
            minibatch, (learner.actor, learner.actor_opt, k_pc), k_perm, epochs=config.epochs,
            size=epp * n, batch_size=mb, strata=t, keep_last=True)  # fmt: skip
        actor_params, actor_opt, _ = carry
        entropy = ppo_core.categorical_entropy(logp_all).mean()
        metrics = {"policy_loss": losses.mean(), "value_loss": value_loss,
                   "entropy": entropy}  # fmt: skip
        new = Learner(actor_params, critic_params, actor_opt, critic_opt, key, learner.updates + 1)
        return new, metrics

    return Algo(config, actor, critic, task_ids, init, policy_step, update)


# ---------------------------------------------------------------------------------------------
# Training: one jitted scan per chunk of updates on JAX suites, a Python loop on CPU suites.


def make_chunk(algo: Algo, suite: Suite, split: str = "train"):
    """``(start, run)`` on a JAX suite: ``start(agent_key, env_keys) -> (Learner, EnvCarry)``;
    ``run(learner, env, n)`` = ``n`` updates (rollout + update) as one ``lax.scan``, returning
    ``((learner, env), (metrics, stats))``. Both are pure: ``jax.vmap`` them over seeds."""
    epp = algo.config.envs_per_task
    env = ro.jax_suite_env(suite, np.repeat(algo.task_ids, epp))
    steps = algo.config.steps_per_task // epp

    def start(agent_key: jax.Array, keys: jax.Array):
        return algo.init(agent_key), ro.jax_reset(env, keys)

    def run(learner: Learner, carry, n: int):
        def one(c, _):
            learner, carry = c
            key, carry, batch, stats = ro.jax_rollout(env, algo.policy_step, learner.actor,
                                                   learner.key, carry, steps)  # fmt: skip
            learner, metrics = algo.update(learner._replace(key=key), batch)
            return (learner, carry), (metrics, stats)

        return jax.lax.scan(one, (learner, carry), None, n)

    return start, run


def make_train(config: Config, suite: Suite, num_updates: int):
    """``train(agent_key, env_keys)``: a whole run as one pure function of its keys
    (``rollout.run_keys(seed, num_envs)``); ``jax.jit(jax.vmap(train))`` trains seeds together."""
    start, run = make_chunk(build(config, suite), suite)
    return lambda agent_key, keys: run(*start(agent_key, keys), num_updates)


def _fit(algo: Algo, suite: Suite, learner: Learner, seed: int, run_dir: RunDir, ckpt: Path,
         steps: int, progress: bool, split: str) -> Learner:  # fmt: skip
    """Train ``learner`` on ``split`` to ``steps`` env steps (whole updates), resuming from and
    checkpointing to ``ckpt`` every ``checkpoint_every`` updates."""
    config, t, epp = algo.config, len(algo.task_ids), algo.config.envs_per_task
    per_update = config.steps_per_task * t
    total, on_jax = max(1, -(-steps // per_update)), suite.backend == "jax"
    if on_jax:
        start, run = make_chunk(algo, suite, split)
        env = jax.jit(start)(learner.key, ro.run_keys(seed, t * epp)[1])[1]
        run = jax.jit(run, static_argnums=2)
    else:
        venv = make_env(suite, split, envs_per_task=epp, seed=seed)
        env = ro.python_reset(venv)
        policy_step, update = jax.jit(algo.policy_step), jax.jit(algo.update)
    if (hit := load_tree(ckpt, (learner, env) if on_jax else learner)) is not None:
        learner, env = hit[0] if on_jax else (hit[0], env)  # CPU envs restart (docstring)
    done = int(learner.updates)
    bar = tqdm(total=total * per_update, initial=min(done, total) * per_update,
               desc=f"{config.network} {suite.id} {split}", disable=not progress)  # fmt: skip
    while done < total:
        n, t0 = min(config.checkpoint_every, total - done), time.perf_counter()
        if on_jax:
            (learner, env), (metrics, stats) = run(learner, env, n)
            metrics, stats = jax.tree.map(lambda x: x[-1], metrics), np.asarray(stats).sum(0)
        else:
            stats = 0
            for _ in range(n):
                key, batch, s = ro.python_rollout(venv, policy_step, learner.actor, learner.key,
                                                  env, config.steps_per_task // epp)  # fmt: skip
                learner, metrics = update(learner._replace(key=key), batch)
                stats = stats + s
        done = int(learner.updates)
        save_tree(ckpt, (learner, env) if on_jax else learner, {"updates": done})
        fps = n * per_update / (time.perf_counter() - t0)
        run_dir.append_metrics({
            "split": split, "updates": done, "env_steps": done * per_update, "fps": round(fps, 1),
            **ro.episode_metrics(stats, t), **{k: float(np.asarray(v)) for k, v in metrics.items()},
        })  # fmt: skip
        bar.update(n * per_update)
    bar.close()
    if not on_jax:
        venv.close()
    return learner


class PPOPolicy:
    """The harness ``Policy`` of a trained agent; samples by default (MOORE's evaluation)."""

    def __init__(self, config: Config, suite: Suite, learner: Learner) -> None:
        self.config, self.suite, self.learner = config, suite, learner
        actor = _networks(config, suite)[0]
        self._dtype = make_single_env(suite, suite.splits["train"][0]).observation_space.dtype

        def act(params, obs, task_ids, key, deterministic):
            logits = actor.apply(params, obs[:, None], task_ids)[:, 0]
            return jnp.where(deterministic, jnp.argmax(logits, -1),
                             jax.random.categorical(key, logits))  # fmt: skip

        self._act = jax.jit(act)

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        # Keys come from numpy's global RNG, which ``evaluate`` seeds: same seed, same episodes.
        key = jax.random.key(np.random.randint(2**31))
        actions = self._act(self.learner.actor, jnp.asarray(obs, self._dtype),
                            jnp.asarray(task_ids), key, deterministic)  # fmt: skip
        return np.asarray(actions)

    def reset(self, mask: np.ndarray) -> None:
        pass  # feedforward


def train(config: Config, suite: Suite, seed: int, run_dir: RunDir, steps: int,
          progress: bool) -> PPOPolicy:  # fmt: skip
    """Train on the suite's ``train`` split for ``steps`` env steps (all tasks together)."""
    algo = build(config, suite)
    learner = algo.init(jax.random.key(seed))
    learner = _fit(algo, suite, learner, seed, run_dir, run_dir.ckpt_dir, steps, progress, "train")
    return PPOPolicy(config, suite, learner)


def adapt(policy: PPOPolicy, suite: Suite, split: str, steps: int, seed: int, run_dir: RunDir,
          progress: bool) -> PPOPolicy:  # fmt: skip
    """``few_shot``: frozen experts; the ``split`` tasks' weights and heads train (docstring)."""
    algo = build(policy.config, suite, split=split, frozen=True)
    fresh = algo.init(jax.random.fold_in(jax.random.key(seed), 1))  # fresh Adam states, new key
    learner = fresh._replace(actor=policy.learner.actor, critic=policy.learner.critic)
    ckpt = run_dir.ckpt_dir / f"few_shot_{split}"
    learner = _fit(algo, suite, learner, seed, run_dir, ckpt, steps, progress, split)
    return PPOPolicy(policy.config, suite, learner)


def load(path: Path, suite: Suite) -> PPOPolicy:
    """The trained policy of the run directory ``path`` (its ``ckpt/``)."""
    saved = saved_config(path, suite.id, ("mlp_widths",))
    config = Config(**saved["agent_config"])
    algo = build(config, suite)
    learner = algo.init(jax.random.key(saved["seed"]))
    template: Any = learner
    if suite.backend == "jax":
        n = len(algo.task_ids) * config.envs_per_task
        template = jax.eval_shape(make_chunk(algo, suite)[0], learner.key, ro.run_keys(0, n)[1])
    if (hit := load_tree(Path(path) / "ckpt", template)) is None:
        raise UsageError(f"no checkpoint in {Path(path) / 'ckpt'}")
    return PPOPolicy(config, suite, hit[0][0] if suite.backend == "jax" else hit[0])


def _spec(agent_id: str, network: nets.Kind, pcgrad: bool, description: str) -> AgentSpec:
    return AgentSpec(agent_id, Config, _presets(network, pcgrad), train, load, description,
                     adapt=adapt, action_spaces=("discrete",))  # fmt: skip


MTPPO = _spec("mtppo", "mtppo", False, "MOORE's MTPPO: shared CNN, per-task heads (JAX)")
MOE = _spec("moe", "moe", False, "MOORE's MoE: k CNN experts, task-linear mixing (JAX)")
MOORE = _spec("moore", "moore", False, "MOORE: Gram-Schmidt-orthogonal experts (JAX)")
MTPPO_PCGRAD = _spec("mtppo-pcgrad", "mtppo", True, "MTPPO + PCGrad (JAX)")
MOE_PCGRAD = _spec("moe-pcgrad", "moe", True, "MoE + PCGrad, as in MOORE's runs (JAX)")
