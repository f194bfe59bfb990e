"""The ``transfer`` protocol (v1): source x target context transfer matrices (MBTL, Cho et al.,
NeurIPS 2024; docs/agents/transfer-mbtl.md).

Train a policy on one source context, then evaluate it zero-shot on every target context of the
suite (all its tasks, the ``all`` split): one row of the matrix J(source, target), normalised
with each target task's ``score_bounds`` (MBTL's per-domain bounds on the contextual suites).
On a JAX suite the whole computation is vmapped: a chunk of sources x all seeds trains as one
jitted program (the agent's ``AgentSpec.jax_trainer``), and each trained policy is evaluated on
all targets x episodes in one vmapped call. Keys: training run (source s, seed k) uses
``fold_in(PRNGKey(k), s)``, so a row does not depend on the chunking; evaluation uses
``PRNGKey(EVAL_SEED_OFFSET + k)`` folded with the source, disjoint from training.

Files (``out/<suite with / as __>/<agent>/``): ``config.json`` (the resolved config; a rerun
with a different one is refused), ``partial/chunk<i>.npz`` (finished chunks: a killed run
resumes at the next chunk), then one ``seed<k>/transfer.json`` per seed (``kind:
transfer_matrix``: ``returns``, ``scores``, ``success`` as sources x targets lists, context
values, provenance) -- the input of ``agents/mbtl.py``. ``multitask_row`` trains one policy over
all contexts (MBTL's multi-task baseline; ``ppo-context`` also sees the normalised context) and
writes ``kind: multitask_row`` files with its ``steps``.

Agents: any registered agent with a ``jax_trainer``, looked up by id in the registry: ``ppo``
and ``ppo-context`` (``agents/transfer_ppo.py``, SB3's PPO defaults).
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mtrl_bench.errors import UsageError, require_positive
from mtrl_bench.registry import get_agent, get_suite
from mtrl_bench.results import (
    atomic_write_bytes,
    atomic_write_json,
    config_hash,
    now,
    provenance,
)
from mtrl_bench.types import EVAL_SEED_OFFSET, AgentSpec, Suite

PROTOCOL, VERSION = "transfer", 1
#: Runs per vmapped training program. jaxlib 0.10.2's CPU client never finished the PPO
#: training program vmapped over 75 runs here (no thread computing, the caller blocked; 64 and
#: fewer always finished), so larger batches are refused rather than left to hang.
MAX_RUNS = 64


@dataclass(frozen=True)
class TransferConfig:
    suite: str
    """A JAX contextual suite, e.g. ``control-jax/cartpole-masscart-v1``."""
    agent: str = "ppo"
    preset: str = "sb3"
    steps: int = 100_000
    """Training env steps per source (per run)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    episodes: int = 4
    """Greedy evaluation episodes per (policy, target)."""
    chunk: int = 20
    """Sources trained together (x seeds) in one vmapped program; chunk x seeds <= MAX_RUNS."""
    tasks: tuple[int, ...] = ()
    """The context grid: these task indices as sources and targets (empty: every task)."""


def _trainer(agent: str) -> AgentSpec:
    """The registered agent ``agent``; it must have a ``jax_trainer``."""
    try:
        spec = get_agent(agent)
    except UsageError as err:
        raise UsageError(f"unknown transfer agent {agent!r} ({err})") from None
    if spec.jax_trainer is None:
        raise UsageError(f"unknown transfer agent {agent!r}: it has no jax_trainer (e.g. ppo "
                         "and ppo-context have one)")  # fmt: skip
    return spec


def _setup(cfg: TransferConfig) -> tuple[Suite, Any, AgentSpec, Any]:
    """The suite, its ``JaxEnv``, the agent and its preset config, all validated."""
    from mtrl_bench.jax_vector import suite_env

    suite = get_suite(cfg.suite)
    if suite.backend != "jax":
        raise UsageError(f"transfer needs a JAX suite (e.g. control-jax/...), got {suite.id}")
    spec = _trainer(cfg.agent)
    if cfg.preset not in spec.presets:
        raise UsageError(f"unknown preset {cfg.preset!r}; allowed: {', '.join(spec.presets)}")
    for name in ("steps", "episodes", "chunk"):
        require_positive(name, getattr(cfg, name))
    if cfg.chunk * len(cfg.seeds) > MAX_RUNS:
        raise UsageError(f"chunk x seeds = {cfg.chunk * len(cfg.seeds)} runs in one program; at "
                         f"most {MAX_RUNS} (MAX_RUNS in mtrl_bench/transfer.py)")  # fmt: skip
    if not cfg.seeds or min(cfg.seeds) < 0 or len(set(cfg.seeds)) != len(cfg.seeds):
        raise UsageError(f"seeds must be distinct non-negative integers, got {list(cfg.seeds)}")
    n = len(suite.tasks)
    if any(i not in range(n) for i in cfg.tasks) or len(set(cfg.tasks)) != len(cfg.tasks):
        raise UsageError(f"tasks must be distinct task indices 0..{n - 1}, got {list(cfg.tasks)}")
    return suite, suite_env(suite), spec, spec.presets[cfg.preset]


def grid(cfg: TransferConfig, suite: Suite) -> list[int]:
    return list(cfg.tasks) or list(range(len(suite.tasks)))


def contexts(suite: Suite) -> tuple[str, np.ndarray, np.ndarray]:
    """Context name, raw values and values normalised to [0, 1] over the suite's tasks (the task
    index where a suite's tasks carry no ``value``)."""
    raw = np.array([dict(t.kwargs).get("value", t.index) for t in suite.tasks], dtype=float)
    span = raw.max() - raw.min()
    norm = (raw - raw.min()) / span if span > 0 else np.zeros_like(raw)
    return str(suite.options.get("context", "index")), raw, norm.astype(np.float32)


def _programs(cfg: TransferConfig, suite: Suite, env: Any, spec: AgentSpec, pcfg: Any,
              n_contexts: int):  # fmt: skip
    """The jitted training (runs vmapped) and evaluation (runs x targets x episodes) programs
    of runs on ``n_contexts`` contexts each (1: a source)."""
    import jax

    max_steps = max(t.max_episode_steps for t in suite.tasks)
    assert spec.jax_trainer is not None  # _trainer checked it
    train, evaluate = spec.jax_trainer(pcfg, env, cfg.steps, n_contexts, max_steps)
    train = jax.jit(jax.vmap(train))
    per_episode = jax.vmap(evaluate, in_axes=(None, None, None, 0))
    per_target = jax.vmap(per_episode, in_axes=(None, 0, 0, 0))
    evaluate = jax.jit(jax.vmap(per_target, in_axes=(0, None, None, 0)))
    return train, evaluate


def _normalise(suite: Suite, targets: list[int], returns: np.ndarray) -> np.ndarray:
    lo, hi = np.array([suite.tasks[i].score_bounds for i in targets], dtype=float).T
    return (returns - lo) / (hi - lo)


def _train_eval(cfg: TransferConfig, suite: Suite, env: Any, programs: Any,
                run_params: list[Any], run_ctx: np.ndarray, runs: list[tuple[int, int]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Train one run per ``(key id, seed)`` in ``runs`` (on the contexts with env params
    ``run_params[i]`` and normalised values ``run_ctx[i]``), evaluate each on every target:
    returns, success (runs, targets) and the training curves (runs, updates)."""
    import jax
    import jax.numpy as jnp

    from mtrl_bench.jax_env import stack_params

    train, evaluate = programs
    # Inputs are built before the long programs run, and each is waited for (no eager op is
    # dispatched while a long computation is in flight).
    targets = grid(cfg, suite)
    _, _, ctx = contexts(suite)
    n, e = len(targets), cfg.episodes
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), i) for i, s in runs])
    eval_keys = jnp.stack([
        jax.random.split(jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED_OFFSET + s), i), n * e)
        .reshape(n, e, -1) for i, s in runs])  # fmt: skip
    env_params = jax.tree.map(lambda *xs: jnp.stack(xs), *run_params)
    target_params = stack_params(env, [suite.tasks[i] for i in targets])
    inputs = (keys, eval_keys, env_params, target_params, jnp.asarray(run_ctx),
              jnp.asarray(ctx[targets]))  # fmt: skip
    keys, eval_keys, env_params, target_params, run_ctx, target_ctx = jax.block_until_ready(inputs)
    params, curves = jax.block_until_ready(train(keys, env_params, run_ctx))
    ret, success = jax.block_until_ready(evaluate(params, target_params, target_ctx, eval_keys))
    ret, success = np.asarray(ret, float).mean(-1), np.asarray(success, float).mean(-1)
    return ret, success, np.asarray(curves, float)


def _source(env: Any, suite: Suite, source: int) -> tuple[Any, np.ndarray]:
    """The env params (leading axis 1) and normalised context ``(1,)`` of one source's run."""
    from mtrl_bench.jax_env import stack_params

    return stack_params(env, [suite.tasks[source]]), contexts(suite)[2][[source]]


def _record(cfg: TransferConfig, suite: Suite, seed: int, kind: str, sources: list[int],
            returns: np.ndarray, success: np.ndarray, **extra: Any) -> dict[str, Any]:  # fmt: skip
    name, raw, _ = contexts(suite)
    targets = grid(cfg, suite)
    return {
        "schema": 1, "kind": kind, "protocol": PROTOCOL, "protocol_version": VERSION,
        "suite": suite.id, "agent": cfg.agent, "preset": cfg.preset,
        "config_hash": config_hash(asdict(cfg)), "seed": seed, "steps_per_source": cfg.steps,
        "episodes": cfg.episodes, "sources": sources, "targets": targets,
        "context_name": name, "context_values": raw[targets].tolist(),
        "returns": returns.tolist(), "scores": _normalise(suite, targets, returns).tolist(),
        "success": success.tolist(), "suite_options": dict(suite.options), **extra,
        **provenance(), "time": now(),
    }  # fmt: skip


def _run_dir(out: Path, cfg: TransferConfig, agent: str) -> Path:
    return out / cfg.suite.replace("/", "__") / agent


def _check_config(run_dir: Path, config: dict[str, Any]) -> None:
    path = run_dir / "config.json"
    saved = json.loads(path.read_text()) if path.exists() else None
    if saved is not None and saved != config:
        raise UsageError(f"{run_dir} holds a transfer run with a different config; use another "
                         f"--out or delete it (saved {saved}, asked {config})")  # fmt: skip


def _chunk(cfg: TransferConfig, chunk: list[int], part: Path) -> None:
    """Train and evaluate one chunk of sources x seeds; write its ``partial`` file."""
    suite, env, spec, pcfg = _setup(cfg)
    runs = [(x, s) for x in chunk for s in cfg.seeds]
    sources = [_source(env, suite, x) for x, _ in runs]
    ret, success, curves = _train_eval(cfg, suite, env, _programs(cfg, suite, env, spec, pcfg, 1),
                                       [p for p, _ in sources], np.stack([c for _, c in sources]),
                                       runs)  # fmt: skip
    buf = io.BytesIO()
    np.savez(buf, returns=ret, success=success, curves=curves)
    atomic_write_bytes(part, buf.getvalue())


def _isolated(fn: Any, *args: Any, timeout_s: float | None = None, tries: int = 3) -> None:
    """``fn(*args)`` in a fresh spawned process. jaxlib 0.10.2 on this CPU sometimes never
    finishes the vmapped training program (the caller blocked in ``block_until_ready``, no thread
    computing; seen at random on first and later executions, 60-75 runs per program, and often
    on the signal-control program with 15; synchronous CPU dispatch hangs the same way): with
    ``timeout_s`` a process that has not finished is killed and the work retried, up to ``tries``
    times; a worker killed from outside (a signal, e.g. ``kill`` on a hung worker) is retried the
    same way. The results are unaffected (same keys, same program)."""
    from multiprocessing import get_context

    for attempt in range(1, tries + 1):
        proc = get_context("spawn").Process(target=fn, args=args)
        proc.start()
        proc.join(timeout_s)
        if proc.is_alive() or proc.exitcode < 0:
            proc.kill()
            proc.join()
            print(f"transfer: attempt {attempt} hung or was killed; retrying", file=sys.stderr)
            continue
        if proc.exitcode != 0:
            raise RuntimeError(f"transfer worker failed (exit code {proc.exitcode})")
        return
    raise RuntimeError(f"transfer worker hung {tries} times")


def transfer_matrix(
    cfg: TransferConfig,
    out: Path,
    *,
    progress: bool = True,
    isolate: bool = True,
    timeout_s: float | None = None,
) -> list[Path]:
    """Every source x target of the suite for every seed; one ``transfer.json`` per seed.
    ``isolate``: each chunk in its own process, retried after ``timeout_s`` (``_isolated``)."""
    suite = _setup(cfg)[0]
    run_dir = _run_dir(out, cfg, cfg.agent)
    config = {**asdict(cfg), "seeds": list(cfg.seeds), "tasks": list(cfg.tasks),
              "protocol": PROTOCOL, "protocol_version": VERSION}  # fmt: skip
    _check_config(run_dir, config)
    paths = [run_dir / f"seed{s}" / "transfer.json" for s in cfg.seeds]
    if all(p.exists() for p in paths):
        return paths
    atomic_write_json(run_dir / "config.json", config)
    sources = grid(cfg, suite)
    chunks = [sources[i : i + cfg.chunk] for i in range(0, len(sources), cfg.chunk)]
    bar = tqdm(total=len(sources), desc=f"transfer {suite.id} ({cfg.agent})", disable=not progress)
    parts = []
    for c, chunk in enumerate(chunks):
        part = run_dir / "partial" / f"chunk{c}.npz"
        if not part.exists():
            if isolate:
                _isolated(_chunk, cfg, chunk, part, timeout_s=timeout_s)
            else:
                _chunk(cfg, chunk, part)
        with np.load(part, allow_pickle=False) as f:
            parts.append({k: f[k].reshape(len(chunk), len(cfg.seeds), *f[k].shape[1:])
                          for k in ("returns", "success", "curves")})  # fmt: skip
        bar.update(len(chunk))
    bar.close()
    full = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}  # (sources, seeds, ...)
    for j, (seed, path) in enumerate(zip(cfg.seeds, paths, strict=True)):
        atomic_write_json(path, _record(cfg, suite, seed, "transfer_matrix", sources,
                                        full["returns"][:, j], full["success"][:, j],
                                        curves=full["curves"][:, j].tolist()))  # fmt: skip
    return paths


def train_source_row(cfg: TransferConfig, source: int, seed: int) -> np.ndarray:
    """MBTL's online mode: train source ``source`` with ``seed`` and return its normalised
    zero-shot scores on every target -- the same computation as one matrix row."""
    suite, env, spec, pcfg = _setup(cfg)
    if source not in grid(cfg, suite):
        raise UsageError(f"source must be one of the grid's task indices, got {source}")
    params, ctx = _source(env, suite, source)
    ret, _, _ = _train_eval(cfg, suite, env, _programs(cfg, suite, env, spec, pcfg, 1), [params],
                            ctx[None], [(source, seed)])  # fmt: skip
    return _normalise(suite, grid(cfg, suite), ret[0])


def _multitask(cfg: TransferConfig, paths: list[Path]) -> None:
    """Train every seed's multi-task policy in one vmapped program, evaluate, write the files."""
    from mtrl_bench.jax_env import stack_params  # JAX only when a row is computed

    suite, env, spec, pcfg = _setup(cfg)
    tasks = grid(cfg, suite)
    _, _, ctx = contexts(suite)
    params = stack_params(env, [suite.tasks[i] for i in tasks])  # every context in one run
    runs = [(len(suite.tasks), s) for s in cfg.seeds]  # key id past every source's
    programs = _programs(cfg, suite, env, spec, pcfg, len(tasks))
    ret, success, curves = _train_eval(cfg, suite, env, programs, [params] * len(runs),
                                       np.stack([ctx[tasks]] * len(runs)), runs)  # fmt: skip
    for j, (seed, path) in enumerate(zip(cfg.seeds, paths, strict=True)):
        atomic_write_json(path, _record(cfg, suite, seed, "multitask_row", [], ret[j : j + 1],
                                        success[j : j + 1], steps=cfg.steps,
                                        curves=curves[j : j + 1].tolist()))  # fmt: skip


def multitask_row(cfg: TransferConfig, out: Path, *, isolate: bool = True,
                  timeout_s: float | None = None) -> list[Path]:  # fmt: skip
    """MBTL's multi-task baseline: one policy trained on all contexts at once (for ``ppo``: one
    env slot per context, ``n_steps`` scaled so an update has about the preset's samples, see
    ``agents/transfer_ppo.py``), evaluated on every target; ``cfg.steps`` is its total budget.
    One ``kind: multitask_row`` file per seed, all seeds trained together (in a fresh process
    with ``isolate``, see ``_isolated``)."""
    _setup(cfg)
    run_dir = _run_dir(out, cfg, f"{cfg.agent}-multitask")
    config = {**asdict(cfg), "seeds": list(cfg.seeds), "tasks": list(cfg.tasks),
              "kind": "multitask_row"}  # fmt: skip
    _check_config(run_dir, config)
    paths = [run_dir / f"seed{s}" / "transfer.json" for s in cfg.seeds]
    if not all(p.exists() for p in paths):
        atomic_write_json(run_dir / "config.json", config)
        if isolate:
            _isolated(_multitask, cfg, paths, timeout_s=timeout_s)
        else:
            _multitask(cfg, paths)
    return paths
