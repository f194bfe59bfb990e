"""Multi-task SAC family for Meta-World: MTSAC, MT-MH-SAC, MoE-SAC, MOORE-SAC, PCGrad-SAC.

Papers: SAC (Haarnoja et al., 2018); MTSAC ("Meta-World", Yu et al., CoRL 2019); MOORE (Hendawy
et al., ICLR 2024); PCGrad (Yu et al., NeurIPS 2020); Meta-World+ (McLean et al., 2025).
Reference code (facts, not copied): ``rainx0r/metaworld-algorithms`` (Meta-World+'s JAX code:
``rl/algorithms/mtsac.py``, ``rl/networks.py``, ``nn/moore.py``, ``examples/multi_task/*``) and
``AhmedMagdyHendawy/MOORE`` (``mtsac.py``, ``networks_sac.py``, ``run/metaworld/*.sh``).

The algorithm (one gradient update per vector step, all tasks stepped together):

- **Per-task replay**: ``batch_per_task`` (128) transitions of every task per update (1280 on
  MT10), from per-task ring buffers (``replay.py``).
- **Per-task temperature**: one log alpha per task, initial alpha 1, target entropy -|A|, loss
  ``-log alpha_c (log pi + target)`` with log pi detached, Adam ``lr_alpha``.
- **Twin critics** (two independent networks, two targets): ``y = r + gamma (1 - terminated)
  (min_i Q'_i(s', a') - alpha_c log pi(a'|s'))``, ``a' ~ pi(s')``; truncation bootstraps
  (``terminated`` only; the final observation comes from ``info["final_obs"]``). Loss: the mean
  squared error over both critics. Soft targets, tau 0.005, after every critic step.
- **Actor**: tanh-squashed Gaussian, mean and log std from one network (log std clipped to
  [-10, 2]); loss ``alpha_c log pi(a|s) - min_i Q_i(s, a)``; log-prob correction
  ``log(1 - tanh(u)^2 + 1e-6)`` (MOORE's).
- **Order** (Meta-World+): critic, actor (with the updated critic), temperature.

Variant -> code (agent id = ``Config.network`` [+ ``Config.pcgrad``]; the rest is shared):

- every variant: ``build`` (``sample``, ``q_values``, ``update``: critic, actor, temperature),
  ``replay.TaskReplay``, ``_fit`` (the training loop, checkpoints), ``SACPolicy`` (acting);
- mtsac = ``nets.SACNet(kind="mtsac")``: one MLP (``trunk<i>``, ``out``) on obs + one-hot;
- mtmh-sac = ``nets.SACNet(kind="mh")``: the same trunk, one head per task (``head_w``);
- moe-sac = ``nets.SACNet(kind="moe")``: k MLP experts (``experts_w<i>``) on the state (actor)
  or state + action (critics), linear last layer, ``task_weights`` mixing, tanh, per-task heads;
- moore-sac = ``nets.SACNet(kind="moore")``: moe + ``nets.gram_schmidt`` before the mixing;
- pcgrad-sac = ``nets.SACNet(kind="mh")`` + ``Config.pcgrad``: ``nets.task_grad`` ->
  ``nets.pcgrad`` on the per-task actor and critic losses (Meta-World+'s ``pcgrad_mt10.py``);
- few-shot (``adapt``): ``build(frozen=True)`` -> ``_optimizer`` zeroes the experts' updates.

Widths 400 x 3, ReLU; k = 4 experts up to 10 tasks, else 6 (MOORE); actor, critics unshared.

Presets: ``paper`` (= ``default``): Meta-World+ (4000 vector steps of uniform random actions
first; max grad norm 1.0; buffer 1e5 per task; lr 3e-4, alpha lr 1e-4). ``moore``: MOORE's MTSAC
(no random warm start, critic updates from 1500 transitions per task, actor and alpha from 3000,
no clipping, buffer 1e6 per task), for ``-h150`` suites and stochastic evaluation (Meta-World+
evaluates the mean: ``deterministic_eval``). ``ci``: tiny widths and warm-ups.

Held-out tasks: a test task named like a training task (MT suites: unseen goals) shares its slot
(one-hot, head, task weights, alpha), so ``zero_shot`` measures goal generalisation; other test
tasks (ML10 / ML45) get untrained slots of their own until ``few_shot`` adapts them.

Exact resume: a checkpoint (every ``checkpoint_every`` vector steps) holds networks, optimisers,
temperatures, JAX key, replay buffer, numpy RNG state and counters; the training envs are reset
with a seed from (seed, chunk) at every chunk start, resumed or not, so both give identical
parameters (tested); a multiple of the episode length cuts no episode.

Deviations, with reasons: Meta-World+'s initialisers (He-uniform, heads U(+-1e-3) actor /
U(+-3e-3) critic) also for MOORE, whose code uses Xavier-uniform (one init keeps the comparison
about architecture); ``few_shot`` fine-tunes on the held-out split with a fresh buffer and
optimisers, experts frozen for ``moe`` / ``moore`` (MOORE's recipe); Gram-Schmidt eps 1e-8.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from mtrl_bench import make_env, make_single_env
from mtrl_bench.agents import nets
from mtrl_bench.agents import rollout as ro
from mtrl_bench.agents.checkpoint import load_tree, save_tree, saved_config
from mtrl_bench.agents.replay import TaskReplay
from mtrl_bench.errors import UsageError
from mtrl_bench.results import RunDir, atomic_write_bytes
from mtrl_bench.types import EVAL_SEED_OFFSET, AgentSpec, Suite


@dataclass(frozen=True)
class Config:
    network: nets.SACKind = "mtsac"
    """``mtsac`` | ``mh`` | ``moe`` | ``moore`` (module docstring)."""
    n_experts: int = 0
    """Experts of ``moe`` / ``moore``; 0: MOORE's k, 4 for <= 10 training tasks, else 6."""
    pcgrad: bool = False
    """Combine per-task actor and critic gradients with PCGrad."""
    widths: tuple[int, ...] = (400, 400, 400)
    """Hidden widths of the actor and critic MLPs (Meta-World+: three layers of 400)."""
    batch_per_task: int = 128
    """Replay minibatch per task; the update's batch is this x number of tasks."""
    buffer_per_task: int = 100_000
    """Replay capacity per task (transitions)."""
    envs_per_task: int = 1
    """Parallel envs per task (one vector step = one env step in each)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak factor of the target critics."""
    lr_actor: float = 3e-4
    """Adam learning rate of the actor."""
    lr_critic: float = 3e-4
    """Adam learning rate of the twin critics."""
    lr_alpha: float = 1e-4
    """Adam learning rate of the per-task log temperature."""
    initial_alpha: float = 1.0
    """Initial entropy temperature of every task."""
    max_grad_norm: float = 1.0
    """Global-norm clipping of actor and critic gradients; 0: none (MOORE)."""
    log_std_min: float = -10.0
    """Lower clamp of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clamp of the actor's log standard deviation."""
    random_steps: int = 4000
    """Vector steps with uniform random actions before the policy acts."""
    learning_starts: int = 4000
    """Vector steps before critic updates begin (one update per vector step after)."""
    actor_starts: int = 4000
    """Vector steps before actor and temperature updates begin."""
    gs_eps: float = 1e-8
    """Gram-Schmidt epsilon of ``moore`` (see nets.py)."""
    checkpoint_every: int = 5000
    """Vector steps between checkpoints and metric rows (a multiple of the episode length)."""


def _presets(network: nets.SACKind, pcgrad: bool = False) -> dict[str, Config]:
    paper = Config(network=network, pcgrad=pcgrad)
    moore = replace(paper, max_grad_norm=0.0, random_steps=0, learning_starts=1500,
                    actor_starts=3000, buffer_per_task=1_000_000)  # fmt: skip
    ci = replace(paper, widths=(64, 64), batch_per_task=32, buffer_per_task=20_000,
                 random_steps=200, learning_starts=200, actor_starts=200, initial_alpha=0.1,
                 lr_alpha=1e-3, lr_actor=1e-3, lr_critic=1e-3,
                 checkpoint_every=400)  # fmt: skip
    return {"default": paper, "paper": paper, "moore": moore, "ci": ci}


class Learner(NamedTuple):
    actor: Any
    critic: Any  # two critics, parameters stacked on a leading axis
    target: Any
    log_alpha: jax.Array  # (num_slots,)
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: jax.Array
    steps: jax.Array  # vector steps taken
    updates: jax.Array


class Algo(NamedTuple):
    config: Config
    slots: np.ndarray  # suite task index -> network slot
    task_ids: np.ndarray  # tasks of the training split (one group each)
    low: np.ndarray
    high: np.ndarray
    init: Any
    policy_step: Any
    act: Any
    update: Any


def task_slots(suite: Suite) -> np.ndarray:
    """Slot of every suite task: training tasks 0..T-1; a task with a training task's name
    shares its slot; any other task gets a new one."""
    train = suite.splits["train"]
    by_name = {suite.tasks[i].name: s for s, i in enumerate(train)}
    slots, extra = np.zeros(suite.num_tasks, np.int32), len(train)
    for task in suite.tasks:
        if task.index in train:
            slots[task.index] = train.index(task.index)
        elif task.name in by_name:
            slots[task.index] = by_name[task.name]
        else:
            slots[task.index], extra = extra, extra + 1
    return slots


def _optimizer(lr: float, clip: float, params: Any, frozen: bool) -> optax.GradientTransformation:
    opt = optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr)) if clip else optax.adam(lr)
    if not frozen:
        return opt
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if "experts" in jax.tree_util.keystr(path) else "train", params
    )
    return optax.multi_transform({"train": opt, "frozen": optax.set_to_zero()}, labels)


def build(config: Config, suite: Suite, *, split: str = "train", frozen: bool = False) -> Algo:
    if config.network not in ("mtsac", "mh", "moe", "moore"):
        raise UsageError(f"network must be mtsac, mh, moe or moore, got {config.network!r}")
    env = make_single_env(suite, suite.splits[split][0])
    space, obs_space = env.action_space, env.observation_space
    env.close()
    if not isinstance(space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise UsageError(f"the SAC agents need a Box action space and vector observations; "
                         f"{suite.id} has {space} and observations {obs_space.shape}")  # fmt: skip
    slots = task_slots(suite)
    task_ids = np.array(suite.splits[split])
    n_train = len(suite.splits["train"])
    k = config.n_experts or (4 if n_train <= 10 else 6)
    common = dict(kind=config.network, n_experts=k, num_slots=int(slots.max()) + 1,
                  widths=tuple(config.widths), eps=config.gs_eps)  # fmt: skip
    act_dim, obs_dim = int(np.prod(space.shape)), int(obs_space.shape[0])
    actor = nets.SACNet(out=2 * act_dim, head_scale=1e-3, **common)
    critic = nets.SACNet(out=1, head_scale=3e-3, **common)
    group_slots = jnp.asarray(slots[task_ids])
    target_entropy = -float(act_dim)

    def init(key: jax.Array) -> Learner:
        k_a, k_c, key = jax.random.split(key, 3)
        obs = jnp.zeros((len(task_ids), 1, obs_dim))
        a = actor.init(k_a, obs, group_slots)
        c = jax.vmap(lambda kk: critic.init(kk, jnp.zeros((len(task_ids), 1, obs_dim + act_dim)),
                                            group_slots))(jax.random.split(k_c))  # fmt: skip
        log_alpha = jnp.full(common["num_slots"], np.log(config.initial_alpha), jnp.float32)
        a_opt = _optimizer(config.lr_actor, config.max_grad_norm, a, frozen).init(a)
        c_opt = _optimizer(config.lr_critic, config.max_grad_norm, c, frozen).init(c)
        alpha_opt = optax.adam(config.lr_alpha).init(log_alpha)
        return Learner(a, c, c, log_alpha, a_opt, c_opt, alpha_opt, key, jnp.int32(0),
                       jnp.int32(0))  # fmt: skip

    def dist(params, obs, gslots):
        mean, log_std = jnp.split(actor.apply(params, obs, gslots), 2, axis=-1)
        return mean, jnp.exp(jnp.clip(log_std, config.log_std_min, config.log_std_max))

    def sample(params, obs, gslots, key):
        """Squashed Gaussian sample ``(G, n, A)`` in [-1, 1] and its log-prob ``(G, n)``."""
        mean, std = dist(params, obs, gslots)
        u = mean + std * jax.random.normal(key, mean.shape)
        a = jnp.tanh(u)
        logp = jax.scipy.stats.norm.logpdf(u, mean, std) - jnp.log(1 - a**2 + 1e-6)
        return a, logp.sum(-1)

    def q_values(params, obs, actions, gslots):  # (2, G, n)
        x = jnp.concatenate([obs, actions], -1)
        return jnp.stack([critic.apply(nets.twin(params, i), x, gslots)[..., 0] for i in (0, 1)])

    def act(params, obs, task_slots_, key, deterministic):
        """Actions in [-1, 1] for a flat batch ``(B, D)`` with one slot per row."""
        obs, gslots = obs[:, None], task_slots_
        a, _ = sample(params, obs, gslots, key)
        return jnp.where(deterministic, jnp.tanh(dist(params, obs, gslots)[0]), a)[:, 0]

    env_slots = jnp.asarray(np.repeat(slots[task_ids], config.envs_per_task))

    def policy_step(params, obs, key):
        key, sub = jax.random.split(key)
        return key, act(params, obs, env_slots, sub, False)

    def update(learner: Learner, batch: dict[str, jax.Array], train_actor: bool):
        key, k_next, k_pi, k_pc1, k_pc2 = jax.random.split(learner.key, 5)
        alpha = jnp.exp(learner.log_alpha[group_slots])[:, None]  # (T, 1)
        obs, actions = batch["obs"], batch["actions"]
        next_a, next_logp = sample(learner.actor, batch["next_obs"], group_slots, k_next)
        next_q = q_values(learner.target, batch["next_obs"], next_a, group_slots).min(0)
        y = batch["rewards"] + config.gamma * (1 - batch["terminated"]) * (
            next_q - alpha * next_logp
        )
        y = jax.lax.stop_gradient(y)

        def critic_loss(p):  # per task (T,)
            return ((q_values(p, obs, actions, group_slots) - y) ** 2).mean((0, 2))

        opt_c = _optimizer(config.lr_critic, config.max_grad_norm, learner.critic, frozen)
        q_loss, grads = nets.task_grad(critic_loss, learner.critic, config.pcgrad, k_pc1)
        upd, critic_opt = opt_c.update(grads, learner.critic_opt, learner.critic)
        critic_params = optax.apply_updates(learner.critic, upd)
        target = optax.incremental_update(critic_params, learner.target, config.tau)
        metrics = {"critic_loss": q_loss, "alpha": alpha.mean()}
        new = learner._replace(critic=critic_params, target=target, critic_opt=critic_opt,
                               key=key, updates=learner.updates + 1)  # fmt: skip
        if not train_actor:
            return new, metrics

        def actor_loss(p):
            a, logp = sample(p, obs, group_slots, k_pi)
            q = q_values(critic_params, obs, a, group_slots).min(0)
            return (alpha * logp - q).mean(1), logp

        opt_a = _optimizer(config.lr_actor, config.max_grad_norm, learner.actor, frozen)
        pi_loss, grads = nets.task_grad(lambda p: actor_loss(p)[0], learner.actor, config.pcgrad,
                                        k_pc2)  # fmt: skip
        upd, actor_opt = opt_a.update(grads, learner.actor_opt, learner.actor)
        actor_params = optax.apply_updates(learner.actor, upd)
        logp = jax.lax.stop_gradient(actor_loss(learner.actor)[1])

        def alpha_loss(log_alpha):
            return -(log_alpha[group_slots] * (logp.mean(1) + target_entropy)).sum()

        upd, alpha_opt = optax.adam(config.lr_alpha).update(
            jax.grad(alpha_loss)(learner.log_alpha), learner.alpha_opt
        )
        metrics |= {"actor_loss": pi_loss, "entropy": -logp.mean()}
        log_alpha = optax.apply_updates(learner.log_alpha, upd)
        new = new._replace(actor=actor_params, actor_opt=actor_opt, alpha_opt=alpha_opt,
                           log_alpha=log_alpha)  # fmt: skip
        return new, metrics

    return Algo(config, slots, task_ids, np.asarray(space.low, np.float32),
                np.asarray(space.high, np.float32), init, policy_step, act, update)  # fmt: skip


# --- Training: a Python loop over the suite's vector env (Meta-World is CPU MuJoCo).

def to_env(algo: Algo, actions: np.ndarray) -> np.ndarray:
    """Squashed actions in [-1, 1] -> the env's action box."""
    return algo.low + (actions + 1) * (algo.high - algo.low) / 2


def _chunk_seed(seed: int, chunk: int) -> int:
    """Base seed of the training envs in chunk ``chunk`` (disjoint from evaluation seeds)."""
    return (seed * 1_000_003 + chunk) % EVAL_SEED_OFFSET


def _save(ckpt: Path, learner: Learner, replay: TaskReplay, rng: np.random.Generator) -> None:
    """Replay first under its step count, then the learner with ``state.json`` last; the replay
    files of older checkpoints are removed after. A kill leaves a consistent pair."""
    steps = int(learner.steps)
    ckpt.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **replay.state())
    atomic_write_bytes(ckpt / f"replay-{steps}.npz", buf.getvalue())
    save_tree(ckpt, learner, {"steps": steps, "rng": rng.bit_generator.state})
    for old in ckpt.glob("replay-*.npz"):
        if old.name != f"replay-{steps}.npz":
            old.unlink()


def _fit(algo: Algo, suite: Suite, learner: Learner, seed: int, run_dir: RunDir, ckpt: Path,
         steps: int, progress: bool, split: str) -> Learner:  # fmt: skip
    config, t, epp = algo.config, len(algo.task_ids), algo.config.envs_per_task
    venv = make_env(suite, split, envs_per_task=epp, seed=seed)
    n_envs, act_dim = venv.num_envs, len(algo.low)
    task_pos = np.repeat(np.arange(t), epp)
    total = max(1, -(-steps // n_envs))
    replay = TaskReplay(t, config.buffer_per_task, venv.single_observation_space.shape[0], act_dim)
    rng = np.random.default_rng(seed)
    if (hit := load_tree(ckpt, learner)) is not None:
        learner, meta = hit
        with np.load(ckpt / f"replay-{meta['steps']}.npz", allow_pickle=False) as data:
            replay.load_state({k: data[k] for k in data.files})
        rng.bit_generator.state = meta["rng"]
    policy_step, update = jax.jit(algo.policy_step), jax.jit(algo.update, static_argnums=2)
    done = int(learner.steps)
    bar = tqdm(total=total * n_envs, initial=min(done, total) * n_envs,
               desc=f"{config.network} {suite.id} {split}", disable=not progress)  # fmt: skip
    while done < total:
        t0 = time.perf_counter()
        chunk = min(config.checkpoint_every - done % config.checkpoint_every, total - done)
        obs, _ = venv.reset(seed=_chunk_seed(seed, done // config.checkpoint_every))
        ep_return, ep_success, stats = np.zeros(n_envs), np.zeros(n_envs, bool), 0
        key, metrics = learner.key, {}
        for _ in range(chunk):
            if done < config.random_steps:
                actions = rng.uniform(-1.0, 1.0, (n_envs, act_dim)).astype(np.float32)
            else:
                key, actions = policy_step(learner.actor, jnp.asarray(obs, jnp.float32), key)
                actions = np.asarray(actions)
            next_obs, rewards, terminated, truncated, info = venv.step(to_env(algo, actions))
            dones = terminated | truncated
            final = next_obs.copy()
            for i in np.flatnonzero(dones):
                final[i] = info["final_obs"][i]
            replay.add(task_pos, obs=obs, actions=actions, rewards=rewards, next_obs=final,
                       terminated=terminated)  # fmt: skip
            ep_return, ep_success, row = ro.episode_stats(ep_return, ep_success, rewards, dones,
                                                          info["success"], xp=np)  # fmt: skip
            stats, obs, done = stats + row, next_obs, done + 1
            learner = learner._replace(key=key, steps=jnp.int32(done))
            if done > config.learning_starts:
                batch = replay.sample(rng, config.batch_per_task)
                learner, metrics = update(learner, batch, done > config.actor_starts)
                key = learner.key
        _save(ckpt, learner, replay, rng)
        run_dir.append_metrics({
            "split": split, "updates": int(learner.updates), "env_steps": done * n_envs,
            "fps": round(chunk * n_envs / (time.perf_counter() - t0), 1),
            **ro.episode_metrics(stats, t), **{k: float(v) for k, v in metrics.items()},
        })  # fmt: skip
        bar.update(chunk * n_envs)
    bar.close()
    venv.close()
    return learner


class SACPolicy:
    """The harness ``Policy``: samples by default, the squashed mean with ``deterministic``."""

    def __init__(self, algo: Algo, learner: Learner) -> None:
        self.algo, self.learner = algo, learner
        self._act = jax.jit(algo.act)
        self._slots = jnp.asarray(algo.slots)

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        key = jax.random.key(np.random.randint(2**31))  # numpy's global RNG: ``evaluate`` seeds it
        a = self._act(self.learner.actor, jnp.asarray(obs, jnp.float32),
                      self._slots[jnp.asarray(task_ids)], key, deterministic)  # fmt: skip
        return to_env(self.algo, np.asarray(a))

    def reset(self, mask: np.ndarray) -> None:
        pass


def train(config: Config, suite: Suite, seed: int, run_dir: RunDir, steps: int,
          progress: bool) -> SACPolicy:  # fmt: skip
    algo = build(config, suite)
    learner = _fit(algo, suite, algo.init(jax.random.key(seed)), seed, run_dir, run_dir.ckpt_dir,
                   steps, progress, "train")  # fmt: skip
    return SACPolicy(algo, learner)


def adapt(policy: SACPolicy, suite: Suite, split: str, steps: int, seed: int, run_dir: RunDir,
          progress: bool) -> SACPolicy:  # fmt: skip
    """``few_shot``: fine-tune on ``split`` (fresh buffer and optimisers; experts frozen)."""
    config = policy.algo.config
    algo = build(config, suite, split=split, frozen=config.network in ("moe", "moore"))
    fresh = algo.init(jax.random.fold_in(jax.random.key(seed), 1))
    old = policy.learner
    learner = fresh._replace(actor=old.actor, critic=old.critic, target=old.target,
                             log_alpha=old.log_alpha)  # fmt: skip
    learner = _fit(algo, suite, learner, seed, run_dir, run_dir.ckpt_dir / f"few_shot_{split}",
                   steps, progress, split)  # fmt: skip
    return SACPolicy(build(config, suite), learner)


def load(path: Path, suite: Suite) -> SACPolicy:
    saved = saved_config(path, suite.id, ("widths",))
    config = Config(**saved["agent_config"])
    algo = build(config, suite)
    hit = load_tree(Path(path) / "ckpt", algo.init(jax.random.key(saved["seed"])))
    if hit is None:
        raise UsageError(f"no checkpoint in {Path(path) / 'ckpt'}")
    return SACPolicy(algo, hit[0])


def _spec(agent_id: str, network: nets.SACKind, pcgrad: bool, description: str) -> AgentSpec:
    return AgentSpec(agent_id, Config, _presets(network, pcgrad), train, load, description,
                     adapt=adapt, action_spaces=("continuous",))  # fmt: skip


MTSAC = _spec("mtsac", "mtsac", False, "MTSAC: one MLP on obs + one-hot, per-task alpha (JAX)")
MTMHSAC = _spec("mtmh-sac", "mh", False, "MT-MH-SAC: shared trunk, per-task heads (JAX)")
MOESAC = _spec("moe-sac", "moe", False, "MoE-SAC: k MLP experts, task-linear mixing (JAX)")
MOORESAC = _spec("moore-sac", "moore", False, "MOORE-SAC: Gram-Schmidt-orthogonal experts (JAX)")
PCGRADSAC = _spec("pcgrad-sac", "mh", True, "PCGrad on MT-MH-SAC, as Meta-World+ (JAX)")
