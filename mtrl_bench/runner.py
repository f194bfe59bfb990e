"""Train-then-evaluate runs and resumable sweeps over seeds and agents.

A run is a pure function of its resolved config: ``(suite, agent, preset config, seed, steps,
evaluation settings) -> files in its run directory``. A sweep skips runs with a ``DONE`` marker,
resumes the rest (agents resume from their own checkpoints, evaluation from the records
already in ``eval.jsonl``) and refuses a run directory whose saved config differs. Runs are
local by default; ``jobs > 1`` uses a process pool with one BLAS/torch thread per worker.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mtrl_bench.errors import UsageError, require_positive
from mtrl_bench.evaluation import EvalResult, get_protocol
from mtrl_bench.registry import get_agent, get_suite
from mtrl_bench.results import SCHEMA_VERSION, RunDir, config_hash, now, provenance
from mtrl_bench.types import Policy


@dataclass(frozen=True)
class RunConfig:
    suite: str
    """Suite id, e.g. ``minigrid/mt3-v1`` (``mtrl list`` shows them)."""
    agent: str
    """Agent id, e.g. ``sb3-ppo`` or ``random``."""
    seed: int = 0
    """Training seed; evaluation uses disjoint env seeds derived from it."""
    steps: int = 100_000
    """Training budget: environment steps summed over all training tasks."""
    preset: str = "default"
    """Name of the agent's hyperparameter preset."""
    protocols: tuple[str, ...] = ("mt", "zero_shot")
    """Evaluation protocols run after training."""
    eval_episodes: int = 16
    """Evaluation episodes per task (MOORE's MiniGrid protocol uses 16)."""
    deterministic_eval: bool = False
    """Evaluate the greedy policy instead of sampling (MOORE's MiniGrid evaluation samples)."""
    few_shot_steps: int = 100_000
    """``few_shot`` protocol: adaptation budget in env steps over all held-out tasks."""


def resolve(cfg: RunConfig) -> dict[str, Any]:
    """Validate ``cfg`` and return the JSON config a run directory stores."""
    suite, spec = get_suite(cfg.suite), get_agent(cfg.agent)
    for name in ("steps", "eval_episodes"):
        require_positive(name, getattr(cfg, name))
    if cfg.seed < 0:
        raise UsageError(f"seed must be non-negative, got {cfg.seed}")
    if cfg.preset not in spec.presets:
        allowed = ", ".join(spec.presets)
        raise UsageError(f"unknown preset {cfg.preset!r} for agent {cfg.agent}; allowed: {allowed}")
    for name in cfg.protocols:
        protocol = get_protocol(name)
        if protocol.split not in suite.splits:
            raise UsageError(f"suite {suite.id} has no {protocol.split!r} split for {name}")
        if protocol.adapts and spec.adapt is None:
            raise UsageError(f"agent {cfg.agent} cannot adapt, so it has no {name} protocol")
    config = asdict(cfg)
    if not any(get_protocol(name).adapts for name in cfg.protocols):
        del config["few_shot_steps"]  # only recorded where it matters (keeps older run configs)
    else:
        require_positive("few_shot_steps", cfg.few_shot_steps)
    return {
        **config,
        "protocols": list(cfg.protocols),
        "agent_config": asdict(spec.presets[cfg.preset]),
        "suite_options": dict(suite.options),
    }


def eval_records(result: EvalResult, protocol: str, config: dict[str, Any]) -> list[dict]:
    prov, proto = provenance(), get_protocol(protocol)
    return [
        {
            "schema": SCHEMA_VERSION, "suite": config["suite"], "protocol": proto.name,
            "protocol_version": proto.version, "split": result.split, "task": t.task,
            "task_index": t.task_index, "agent": config["agent"], "preset": config["preset"],
            "config_hash": config_hash(config), "seed": config["seed"],
            "env_steps": config["steps"],
            **({"adapt_steps": config["few_shot_steps"]} if proto.adapts else {}),
            "episodes": t.episodes, "success": t.success,
            "return": t.mean_return, "score": t.score,
            "deterministic_eval": config["deterministic_eval"],
            "suite_options": config["suite_options"], **prov, "time": now(),
        }
        for t in result.tasks
    ]  # fmt: skip


def run(cfg: RunConfig, runs_dir: Path = Path("runs"), *, progress: bool = True) -> RunDir:
    """Train (or resume) and evaluate one run; a finished run is skipped."""
    config = resolve(cfg)
    run_dir = RunDir(runs_dir, cfg.suite, cfg.agent, cfg.seed)
    run_dir.check_config(config)
    if run_dir.done:
        return run_dir
    have = {r["protocol"] for r in run_dir.read_eval() if r["env_steps"] == cfg.steps}
    run_dir.open(config)
    suite, spec = get_suite(cfg.suite), get_agent(cfg.agent)
    policy: Policy = spec.train(
        spec.presets[cfg.preset], suite, cfg.seed, run_dir, cfg.steps, progress
    )
    for name in cfg.protocols:
        if name in have:
            continue
        protocol, evaluated = get_protocol(name), policy
        if protocol.adapts:  # resumes from its own checkpoints, like training
            evaluated = spec.adapt(policy, suite, protocol.split, cfg.few_shot_steps, cfg.seed,
                                   run_dir, progress)  # fmt: skip
        result = protocol.run(
            evaluated, suite, cfg.eval_episodes, cfg.seed,
            deterministic=cfg.deterministic_eval, progress=progress,
        )  # fmt: skip
        run_dir.append_eval(eval_records(result, name, config))
    run_dir.mark_done()
    return run_dir


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


def _run_quiet(cfg: RunConfig, runs_dir: Path) -> Path:
    return run(cfg, runs_dir, progress=False).path


def sweep(
    base: RunConfig,
    agents: Sequence[str],
    seeds: Sequence[int],
    runs_dir: Path = Path("runs"),
    *,
    jobs: int = 1,
    progress: bool = True,
) -> list[Path]:
    """Every (agent, seed) run of ``base``; all configs are validated before any run starts."""
    require_positive("jobs", jobs)
    if not agents or not seeds:
        raise UsageError("a sweep needs at least one agent and one seed")
    configs = [replace(base, agent=a, seed=s) for a in agents for s in seeds]
    for cfg in configs:
        RunDir(runs_dir, cfg.suite, cfg.agent, cfg.seed).check_config(resolve(cfg))
    bar = tqdm(total=len(configs), desc=f"sweep {base.suite}", disable=not progress)
    paths: list[Path] = []
    if jobs == 1:
        for cfg in configs:
            paths.append(run(cfg, runs_dir, progress=progress).path)
            bar.update(1)
    else:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
            for path in pool.map(_run_quiet, configs, [runs_dir] * len(configs)):
                paths.append(path)
                bar.update(1)
    bar.close()
    return paths
