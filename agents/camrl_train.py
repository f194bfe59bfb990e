"""CAMRL's training loops (``agents/camrl.py`` is the algorithm; read it first).

PPO (``fit_ppo``): on JAX suites a chunk of iterations (rollout + ``Algo.iterate``) is one jitted
``lax.scan`` and checkpoints hold the env state, so a resumed run equals an uninterrupted one; on
CPU suites a Python rollout loop (``rollout.python_rollout``) feeds the same jitted ``iterate``,
and the envs restart every chunk with a seed from (seed, chunk), so a resume is exact there too
(each chunk's unfinished episodes are dropped from the statistics). SAC (``fit_sac``): a Python
loop over the suite's vector env with per-task replay, as ``mtsac._fit``: ``epoch_steps`` vector
steps, then one ``iterate`` on ``epoch_steps`` replay batches per task; envs restart every chunk
in the same way, and checkpoints hold replay and numpy RNG, so a resume is exact.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mtrl_bench import make_env
from mtrl_bench.agents import rollout as ro
from mtrl_bench.agents.checkpoint import load_tree, save_tree
from mtrl_bench.agents.replay import TaskReplay
from mtrl_bench.errors import UsageError
from mtrl_bench.results import RunDir, atomic_write_bytes
from mtrl_bench.types import EVAL_SEED_OFFSET, Suite

Algo = State = Any  # camrl.Algo / camrl.State (camrl imports this module)


def _chunk_seed(seed: int, chunk: int) -> int:
    """Base seed of the training envs in chunk ``chunk`` (disjoint from evaluation seeds)."""
    return (seed * 1_000_003 + chunk) % EVAL_SEED_OFFSET


def _group(x: Any, t: int) -> Any:  # (E, ...) task-major -> (T, E / T, ...)
    return x.reshape(t, x.shape[0] // t, *x.shape[1:])


def make_chunk(algo: Algo, suite: Suite):
    """``(start, run)`` on a JAX suite, as ``mtppo.make_chunk``: ``run(state, env, n)`` is ``n``
    iterations (rollout + ``iterate``) as one ``lax.scan``; both pure."""
    t, epp = len(algo.active), algo.config.envs_per_task
    env = ro.jax_suite_env(suite, np.repeat(algo.task_ids, epp))
    steps = algo.config.steps_per_task // epp

    def start(agent_key: jax.Array, keys: jax.Array):
        return algo.init(agent_key), ro.jax_reset(env, keys)

    def run(state: State, carry, n: int):
        def one(c, _):
            state, carry = c
            actors = algo.actors(state.tasks)
            key, carry, batch, stats = ro.jax_rollout(env, algo.policy_step, actors, state.key,
                                                   carry, steps)  # fmt: skip
            state, metrics = algo.iterate(state._replace(key=key),
                                          jax.tree.map(lambda x: _group(x, t), batch))
            return (state, carry), (metrics, stats)

        return jax.lax.scan(one, (state, carry), None, n)

    return start, run


def _log(run_dir: RunDir, split: str, state: State, rows: Any, stats: Any, t: int, n_steps: int,
         seconds: float, env_steps: int) -> None:  # fmt: skip
    rows = jax.tree.map(np.asarray, rows)
    run_dir.append_metrics({
        "split": split, "updates": int(state.iteration), "env_steps": env_steps,
        "fps": round(n_steps / seconds, 1), **ro.episode_metrics(stats, t),
        **{k: float(v[-1]) for k, v in rows.items() if k != "curriculum"},
        "curriculum_share": float(rows["curriculum"].mean()) if len(rows["curriculum"]) else 0.0,
        "curriculum_iters": int(state.curriculum_iters),
        "transfer": np.asarray(state.transfer).round(4).tolist(),
    })  # fmt: skip


def fit_ppo(algo: Algo, suite: Suite, state: State, seed: int, run_dir: RunDir, ckpt: Path,
             steps: int, progress: bool, split: str) -> State:  # fmt: skip
    config, t, epp = algo.config, len(algo.active), algo.config.envs_per_task
    if config.steps_per_task % epp:
        raise UsageError(f"steps_per_task {config.steps_per_task} is not a multiple of "
                         f"envs_per_task {epp}")  # fmt: skip
    per_iter = config.steps_per_task * t
    total, on_jax = max(1, -(-steps // per_iter)), suite.backend == "jax"
    if on_jax:
        start, run = make_chunk(algo, suite)
        env = jax.jit(start)(state.key, ro.run_keys(seed, t * epp)[1])[1]
        run = jax.jit(run, static_argnums=2)
    else:
        venv = make_env(suite, split, envs_per_task=epp, seed=seed)
        env = {}
        policy_step, iterate, actors = map(jax.jit, (algo.policy_step, algo.iterate, algo.actors))
    if (hit := load_tree(ckpt, (state, env) if on_jax else state)) is not None:
        state, env = hit[0] if on_jax else (hit[0], env)
    done = int(state.iteration)
    bar = tqdm(total=total * per_iter, initial=min(done, total) * per_iter,
               desc=f"camrl {suite.id} {split}", disable=not progress)  # fmt: skip
    while done < total:
        n, t0 = min(config.checkpoint_every, total - done), time.perf_counter()
        if on_jax:
            (state, env), (rows, stats) = run(state, env, n)
            stats = np.asarray(stats).sum(0)
        else:
            stats, out = 0, []
            env = ro.python_reset(venv, seed=_chunk_seed(seed, done // config.checkpoint_every))
            for _ in range(n):
                key, batch, s = ro.python_rollout(venv, policy_step, actors(state.tasks), state.key,
                                                  env, config.steps_per_task // epp)  # fmt: skip
                data = jax.tree.map(lambda x: _group(jnp.asarray(x), t), batch)
                state, m = iterate(state._replace(key=key), data)
                stats, out = stats + s, out + [m]
            rows = jax.tree.map(lambda *x: jnp.stack(x), *out)
        done = int(state.iteration)
        save_tree(ckpt, (state, env) if on_jax else state, {"updates": done})
        _log(run_dir, split, state, rows, stats, t, n * per_iter, time.perf_counter() - t0,
             done * per_iter)  # fmt: skip
        bar.update(n * per_iter)
    bar.close()
    if not on_jax:
        venv.close()
    return state


def fit_sac(algo: Algo, suite: Suite, state: State, seed: int, run_dir: RunDir, ckpt: Path,
             steps: int, progress: bool, split: str) -> State:  # fmt: skip
    """As ``mtsac._fit``: the envs restart at every chunk with a seed from (seed, chunk) and
    checkpoints hold the replay and numpy RNG, so a resumed run equals an uninterrupted one."""
    config, t, epp = algo.config, len(algo.active), algo.config.envs_per_task
    venv = make_env(suite, split, envs_per_task=epp, seed=seed)
    n_envs, act_dim = venv.num_envs, len(algo.low)
    task_pos, per_chunk = np.repeat(np.arange(t), epp), config.checkpoint_every * config.epoch_steps
    total = -(-max(1, -(-steps // n_envs)) // config.epoch_steps) * config.epoch_steps
    replay = TaskReplay(t, config.buffer_per_task, venv.single_observation_space.shape[0], act_dim)
    rng = np.random.default_rng(seed)
    if (hit := load_tree(ckpt, state)) is not None:
        state, meta = hit
        with np.load(ckpt / f"replay-{meta['steps']}.npz", allow_pickle=False) as data:
            replay.load_state({k: data[k] for k in data.files})
        rng.bit_generator.state = meta["rng"]
    policy_step, iterate, actors = map(jax.jit, (algo.policy_step, algo.iterate, algo.actors))
    done = int(state.steps)
    bar = tqdm(total=total * n_envs, initial=min(done, total) * n_envs,
               desc=f"camrl {suite.id} {split}", disable=not progress)  # fmt: skip
    while done < total:
        t0, chunk = time.perf_counter(), min(per_chunk - done % per_chunk, total - done)
        obs, _ = venv.reset(seed=_chunk_seed(seed, done // per_chunk))
        ep_return, ep_success, stats, out = np.zeros(n_envs), np.zeros(n_envs, bool), 0, []
        for _ in range(chunk // config.epoch_steps):
            params, key = actors(state.tasks), state.key
            for _ in range(config.epoch_steps):
                if done < config.random_steps:
                    actions = rng.uniform(-1.0, 1.0, (n_envs, act_dim)).astype(np.float32)
                else:
                    key, actions = policy_step(params, jnp.asarray(obs, jnp.float32), key)
                    actions = np.asarray(actions)
                next_obs, rewards, terminated, truncated, info = venv.step(
                    algo.low + (actions + 1) * (algo.high - algo.low) / 2)
                dones = terminated | truncated
                final = next_obs.copy()
                for i in np.flatnonzero(dones):
                    final[i] = info["final_obs"][i]
                replay.add(task_pos, obs=obs, actions=actions, rewards=rewards, next_obs=final,
                           terminated=terminated)  # fmt: skip
                ep_return, ep_success, row = ro.episode_stats(ep_return, ep_success, rewards,
                                                              dones, info["success"], xp=np)
                stats, obs, done = stats + row, next_obs, done + 1
            state = state._replace(key=key, steps=jnp.int32(done))
            if done >= config.learning_starts:
                batches = [replay.sample(rng, config.batch_per_task)
                           for _ in range(config.epoch_steps)]  # fmt: skip
                data = {k: np.stack([b[k] for b in batches], 1) for k in batches[0]}
                state, m = iterate(state, data)
                out.append(m)
        _save_sac(ckpt, state, replay, rng)
        rows = jax.tree.map(lambda *x: jnp.stack(x), *out) if out else {"curriculum": []}
        _log(run_dir, split, state, rows, stats, t, chunk * n_envs, time.perf_counter() - t0,
             done * n_envs)  # fmt: skip
        bar.update(chunk * n_envs)
    bar.close()
    venv.close()
    return state


def _save_sac(ckpt: Path, state: State, replay: TaskReplay, rng: np.random.Generator) -> None:
    """Replay first (named by step count), then the state, ``state.json`` last (mtsac's order)."""
    steps = int(state.steps)
    ckpt.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **replay.state())
    atomic_write_bytes(ckpt / f"replay-{steps}.npz", buf.getvalue())
    save_tree(ckpt, state, {"steps": steps, "rng": rng.bit_generator.state})
    for old in ckpt.glob("replay-*.npz"):
        if old.name != f"replay-{steps}.npz":
            old.unlink()


def fit(algo: Algo, *args: Any) -> State:
    """Train ``algo``'s split to the budget (``fit_sac`` on continuous suites, else ``fit_ppo``)."""
    return (fit_sac if algo.sac else fit_ppo)(algo, *args)
