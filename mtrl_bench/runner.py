"""Train-then-evaluate runs and resumable sweeps over seeds and agents.

A run is a pure function of its resolved config: ``(suite, agent, preset config, seed, steps,
evaluation settings) -> files in its run directory``. A sweep skips runs with a ``DONE`` marker,
resumes the rest (agents resume from their own checkpoints, evaluation from the records
already in ``eval.jsonl``) and refuses a run directory whose saved config differs. Runs are
local by default; ``jobs > 1`` uses a process pool with one BLAS/torch thread per worker.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mtrl_bench import evaluation as ev
from mtrl_bench.errors import UsageError, require_positive
from mtrl_bench.evaluation import EvalResult, get_protocol
from mtrl_bench.registry import get_agent, get_suite
from mtrl_bench.results import SCHEMA_VERSION, RunDir, config_hash, now, provenance
from mtrl_bench.results import atomic_write_json as write_json
from mtrl_bench.types import AgentSpec, Policy, Suite


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
    """Adaptation budget in env steps: ``few_shot``, over all held-out tasks; ``meta_test``,
    per (held-out task, goal)."""
    meta_test_goals: int = 40
    """``meta_test``: held-out goals per test task (the official 40; fewer is cheaper)."""
    meta_test_tasks: int = 0
    """``meta_test``: only the first N test tasks (0: all)."""
    agent_config: Any = None
    """The agent's hyperparameters, an instance of its ``AgentSpec.config_cls`` (e.g. a preset
    with some fields replaced); ``None``: the preset's. ``config.json`` records them either way."""


def preset_config(spec: AgentSpec, preset: str) -> Any:
    if preset not in spec.presets:
        allowed = ", ".join(spec.presets)
        raise UsageError(f"unknown preset {preset!r} for agent {spec.id}; allowed: {allowed}")
    return spec.presets[preset]


def agent_config(cfg: RunConfig, spec: AgentSpec) -> Any:
    """The agent config a run trains with: ``cfg.agent_config``, else the preset's."""
    config = preset_config(spec, cfg.preset)
    if cfg.agent_config is not None:
        config = cfg.agent_config
    if not isinstance(config, spec.config_cls):
        kind = f"{spec.config_cls.__module__}.{spec.config_cls.__qualname__}"
        raise UsageError(f"agent_config of {spec.id} must be a {kind}, got {type(config).__name__}")
    for name, value in asdict(config).items():
        values = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise UsageError(f"agent_config.{name} must be finite, got {value}")
    return config


def resolve(cfg: RunConfig) -> dict[str, Any]:
    """Validate ``cfg`` and return the JSON config a run directory stores."""
    suite, spec = get_suite(cfg.suite), get_agent(cfg.agent)
    for name in ("steps", "eval_episodes"):
        require_positive(name, getattr(cfg, name))
    if cfg.seed < 0:
        raise UsageError(f"seed must be non-negative, got {cfg.seed}")
    agent_cfg = agent_config(cfg, spec)
    if suite.backend not in spec.backends:
        raise UsageError(f"agent {spec.id} trains on {' or '.join(spec.backends)} suites only; "
                         f"{suite.id} is {suite.backend}")  # fmt: skip
    for name in cfg.protocols:
        protocol = get_protocol(name)
        if protocol.split not in suite.splits:
            raise UsageError(f"suite {suite.id} has no {protocol.split!r} split for {name}")
        if protocol.adapts and spec.adapt is None:
            raise UsageError(f"agent {cfg.agent} cannot adapt, so it has no {name} protocol")
    config = asdict(cfg)
    if not any(get_protocol(name).per_goal for name in cfg.protocols):
        del config["meta_test_goals"], config["meta_test_tasks"]  # as few_shot_steps below
    elif "test" not in dict(suite.options.get("goals_per_task", {})):
        raise UsageError(f"suite {suite.id} has no held-out goals; meta_test needs a Meta-World "
                         "suite (e.g. metaworld/ml10-v1)")  # fmt: skip
    else:
        require_positive("meta_test_goals", cfg.meta_test_goals)
        if cfg.meta_test_tasks < 0:
            raise UsageError(f"meta_test_tasks must be >= 0 (0: all), got {cfg.meta_test_tasks}")
    if not any(get_protocol(name).adapts for name in cfg.protocols):
        del config["few_shot_steps"]  # only recorded where it matters (keeps older run configs)
    else:
        require_positive("few_shot_steps", cfg.few_shot_steps)
    return {
        **config,
        "protocols": list(cfg.protocols),
        "agent_config": asdict(agent_cfg),
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
            **({"goals": config["meta_test_goals"]} if proto.per_goal else {}),
            "episodes": t.episodes, "success": t.success,
            "return": t.mean_return, "score": t.score,
            **({"per_episode": {k: list(v) for k, v in t.per_episode.items()}}
               if t.per_episode is not None else {}),
            "deterministic_eval": config["deterministic_eval"],
            "suite_options": config["suite_options"], **prov, "time": now(),
        }
        for t in result.tasks
    ]  # fmt: skip


def run(cfg: RunConfig, runs_dir: Path = Path("runs"), *, progress: bool = True,
        on_metrics: Callable[[], None] | None = None) -> RunDir:  # fmt: skip
    """Train (or resume) and evaluate one run; a finished run is skipped. ``on_metrics`` is
    called after each training metrics row (a checkpoint was just written: ``mtrl sweep``
    uploads the run directory to a remote store there)."""
    config = resolve(cfg)
    run_dir = RunDir(runs_dir, cfg.suite, cfg.agent, cfg.seed, on_metrics)
    run_dir.check(config)
    if run_dir.done:
        return run_dir
    have = {r["protocol"] for r in run_dir.read_eval() if r["env_steps"] == cfg.steps}
    run_dir.open(config)
    suite, spec = get_suite(cfg.suite), get_agent(cfg.agent)
    policy: Policy = spec.train(
        agent_config(cfg, spec), suite, cfg.seed, run_dir, cfg.steps, progress
    )
    for name in cfg.protocols:
        if name in have:
            continue
        protocol, evaluated = get_protocol(name), policy
        if protocol.per_goal:
            result = _meta_test(spec, policy, suite, cfg, run_dir, progress)
            run_dir.append_eval(eval_records(result, name, config))
            continue
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


def _meta_test(spec: AgentSpec, policy: Policy, suite: Suite, cfg: RunConfig, run_dir: RunDir,
               progress: bool) -> EvalResult:  # fmt: skip
    """The ``meta_test`` protocol (``evaluation``): adapt and evaluate per (test task, goal).
    Finished goals are kept in ``meta_test.json``, so a rerun resumes at the goal it was in (from
    that goal's adaptation checkpoints, which are removed once its result is recorded)."""
    goals = min(dict(suite.options["goals_per_task"])["test"], cfg.meta_test_goals)
    tasks = suite.splits["test"][: cfg.meta_test_tasks or None]
    state_path = run_dir.path / "meta_test.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    bar = tqdm(total=len(tasks) * goals, desc=f"meta_test {suite.id}", disable=not progress)
    results = []
    for t in tasks:
        for g in range(goals):
            if (key := f"{t}/{g}") not in state:
                pinned, sub = ev.pin_goal(suite, t, g), run_dir.sub("meta_test", f"task{t}-goal{g}")
                adapted = spec.adapt(policy, pinned, "test", cfg.few_shot_steps, cfg.seed, sub,
                                     False)  # fmt: skip
                result = ev.evaluate(adapted, pinned, "test", ev.META_TEST_EPISODES, cfg.seed,
                                     envs_per_task=1,
                                     deterministic=cfg.deterministic_eval)  # fmt: skip
                state[key] = asdict(result.tasks[0])
                write_json(state_path, state)
                shutil.rmtree(sub.ckpt_dir, ignore_errors=True)
            bar.update(1)
        per_goal = [ev.TaskResult(**state[f"{t}/{g}"]) for g in range(goals)]
        results.append(ev.goal_average(suite, per_goal))
    bar.close()
    return EvalResult(suite.id, "test", tuple(results))


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
    if not agents or not seeds:
        raise UsageError("a sweep needs at least one agent and one seed")
    configs = [replace(base, agent=a, seed=s) for a in agents for s in seeds]
    return run_many(configs, runs_dir, jobs=jobs, progress=progress)


def run_many(
    configs: Sequence[RunConfig],
    runs_dir: Path = Path("runs"),
    *,
    jobs: int = 1,
    progress: bool = True,
) -> list[Path]:
    """Every run of ``configs``; all are validated (configs, run directories, files to resume)
    before any starts, so bad input stops the sweep before anything is written."""
    require_positive("jobs", jobs)
    if not configs:
        raise UsageError("nothing to run (no configs)")
    resolved = [resolve(cfg) for cfg in configs]  # bad values first, then run directories
    for cfg, config in zip(configs, resolved, strict=True):
        RunDir(runs_dir, cfg.suite, cfg.agent, cfg.seed).check(config)
    suites = ", ".join(dict.fromkeys(cfg.suite for cfg in configs))
    bar = tqdm(total=len(configs), desc=f"sweep {suites}", disable=not progress)
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
