"""``mtrl sweep``: a grid of runs, executed by a local process pool (default) or on Ray.

A sweep is agents x suites (or leaderboards) x seeds x presets x agent-config values, given as
flags or as a TOML file (docs/sweeps.md). Each run is ``runner.run``, a pure function from its
config to its run directory, so a sweep is resumable: ``DONE`` runs are skipped, unfinished ones
resume from their checkpoints, and a run directory holding another config is refused before
anything starts. Where runs of one sweep would share a run directory (two presets or
agent-config values of one agent on one suite), each goes under ``<store>/<preset>[,field=value
...]/``. The store and one run's execution are ``sweep_store``; the Ray executor is
``sweep_ray`` (imported only when asked for, so ``mtrl list`` never imports Ray).
"""

from __future__ import annotations

import itertools
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, fields, replace
from multiprocessing import get_context
from pathlib import Path
from queue import Empty
from typing import Any

from tqdm.auto import tqdm

from mtrl_bench.errors import UsageError
from mtrl_bench.runner import RunConfig, preset_config
from mtrl_bench.sweep_store import Job, Outcome, QueueReport, Store, run_job

Event = Callable[[str, str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Grid:
    """One grid of runs; ``None``: the run config's default (or the leaderboard's value)."""

    agents: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    leaderboards: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    presets: tuple[str, ...] = ("default",)
    steps: int | None = None
    protocols: tuple[str, ...] | None = None
    eval_episodes: int | None = None
    deterministic_eval: bool | None = None
    few_shot_steps: int | None = None
    agent_config: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """``(field, values)``: every value of every field is a point of the grid."""


_LISTS = {"agents": str, "suites": str, "leaderboards": str, "seeds": int, "presets": str,
          "protocols": str}  # fmt: skip
_SCALARS = {"steps": int, "eval_episodes": int, "deterministic_eval": bool, "few_shot_steps": int}
_FIXED_BY_LEADERBOARD = ("steps", "protocols", "eval_episodes", "deterministic_eval",
                         "few_shot_steps")  # fmt: skip


def grid_values(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``Grid`` fields of one TOML table (or of the flags), type-checked."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _LISTS:
            items = value if isinstance(value, list | tuple) else [value]
            if not items or any(type(v) is not _LISTS[key] for v in items):
                raise UsageError(f"{where}{key} must be a non-empty list of "
                                 f"{_LISTS[key].__name__}, got {value!r}")  # fmt: skip
            values[key] = tuple(items)
        elif key in _SCALARS:
            if type(value) is not _SCALARS[key]:
                raise UsageError(f"{where}{key} must be {_SCALARS[key].__name__}, got {value!r}")
            values[key] = value
        elif key == "agent_config" and isinstance(value, Mapping):
            values[key] = tuple((k, tuple(v) if isinstance(v, list | tuple) else (v,))
                                for k, v in value.items())  # fmt: skip
        else:
            allowed = ", ".join([*_LISTS, *_SCALARS, "agent_config", "grid"])
            raise UsageError(f"{where}unknown key {key!r}; allowed: {allowed}")
    if any(s < 0 for s in values.get("seeds", ())):
        raise UsageError(f"{where}seeds must be non-negative, got {list(values['seeds'])}")
    return values


def load_grids(path: Path | None, flags: Mapping[str, Any]) -> list[Grid]:
    """The grids of the TOML file ``path`` (top-level keys, or one ``[[grid]]`` table each over
    the top-level keys), with the ``flags`` given over every one."""
    given = grid_values({k: v for k, v in flags.items() if v not in (None, (), {})}, "--")
    if path is None:
        return [Grid(**given)]
    if not path.is_file():
        raise UsageError(f"sweep file {path} does not exist or is not a file")
    try:
        table = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"sweep file {path} is not valid TOML: {err}") from None
    tables = table.pop("grid", [{}])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{path}: grid must be an array of tables ([[grid]])")
    shared = grid_values(table, f"{path}: ")
    return [Grid(**{**shared, **grid_values(t, f"{path}: grid {i}: "), **given})
            for i, t in enumerate(tables)]  # fmt: skip


def _overrides(spec: Any, grid: Grid) -> list[dict[str, Any]]:
    """Every combination of ``grid.agent_config`` values, coerced to the agent's field types."""
    from mtrl_bench.cli_agent import _coerce  # the TOML-value coercion of --agent-config-file

    hints = typing.get_type_hints(spec.config_cls)
    axes = []
    for name, values in grid.agent_config:
        field = name.replace("-", "_")
        if field not in hints:
            allowed = ", ".join(f.name for f in fields(spec.config_cls)) or "none"
            raise UsageError(f"agent_config.{name}: agent {spec.id} has no such field; "
                             f"allowed: {allowed}")  # fmt: skip
        try:
            axes.append([(field, _coerce(v, hints[field])) for v in values])
        except TypeError:
            kind = getattr(hints[field], "__name__", None) or str(hints[field])
            raise UsageError(f"agent_config.{name} of agent {spec.id} must be "
                             f"{kind.replace('typing.', '')}, got {list(values)!r}") from None
    return [dict(combo) for combo in itertools.product(*axes)]


def _label(preset: str, overrides: Mapping[str, Any]) -> str:
    """``preset[,field=value...]``, a tuple value as ``64x64``: a directory name."""

    def show(v: Any) -> str:
        return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)

    text = ",".join([preset, *(f"{k}={show(v)}" for k, v in overrides.items())])
    return re.sub(r"[^A-Za-z0-9._=,+-]", "", text.replace(" ", ""))


def expand(grids: Sequence[Grid]) -> list[Job]:
    """The runs of ``grids`` (duplicates once), each under the store's root unless runs of the
    sweep would share its run directory (then under its preset and agent-config label)."""
    from mtrl_bench.leaderboard import get_leaderboard
    from mtrl_bench.registry import get_agent
    from mtrl_bench.submit import leaderboard_run

    runs: dict[tuple[RunConfig, str], None] = {}
    for grid in grids:
        if not grid.agents:
            raise UsageError("a sweep needs at least one agent (--agents or agents = [...])")
        if not grid.suites and not grid.leaderboards:
            raise UsageError("a sweep needs suites or leaderboards (--suites / --leaderboards)")
        fixed = [k for k in _FIXED_BY_LEADERBOARD if getattr(grid, k) is not None]
        if grid.leaderboards and fixed:
            raise UsageError(f"{', '.join(fixed)} cannot be set with leaderboards (the "
                             "leaderboard fixes them); sweep its suite instead")  # fmt: skip
        given = {k: getattr(grid, k) for k in _FIXED_BY_LEADERBOARD if getattr(grid, k) is not None}
        for agent, preset in itertools.product(grid.agents, grid.presets):
            spec = get_agent(agent)
            for overrides in _overrides(spec, grid):
                config = replace(preset_config(spec, preset), **overrides)
                bases = [RunConfig(suite=s, agent=agent, preset=preset, **given)
                         for s in grid.suites]  # fmt: skip
                bases += [leaderboard_run(get_leaderboard(lb), agent, preset)
                          for lb in grid.leaderboards]  # fmt: skip
                for base, seed in itertools.product(bases, grid.seeds):
                    cfg = replace(base, seed=seed, agent_config=config if overrides else None)
                    runs[cfg, _label(preset, overrides)] = None
    variants: dict[tuple[str, str], set[str]] = {}
    for cfg, label in runs:
        variants.setdefault((cfg.suite, cfg.agent), set()).add(label)
    return [Job(cfg, label if len(variants[cfg.suite, cfg.agent]) > 1 else "")
            for cfg, label in runs]  # fmt: skip


def dry_run(jobs: Sequence[Job], store: Store) -> list[str]:
    """One line per run: ``done``, ``resume`` (started, not finished) or ``new``, and where."""
    states = {"done": "done  ", "started": "resume", "new": "new   "}
    lines = [f"{states[store.state(job)]}  {store.location(job)}" for job in jobs]
    counts = {s: sum(line.startswith(states[s]) for line in lines) for s in states}
    lines.append(f"{len(jobs)} runs: {counts['done']} done, {counts['started']} to resume, "
                 f"{counts['new']} new")  # fmt: skip
    return lines


def run_local(jobs: Sequence[Job], store: Store, workers: int, on_event: Event) -> list[Outcome]:
    """``jobs`` in ``workers`` spawned processes (in this process when 1); a failed or crashed
    run is a ``failed`` outcome and the others go on."""
    outcomes: list[Outcome] = []
    if workers == 1:
        for job in jobs:
            outcomes.append(outcome := run_job(job, store, on_event))
            on_event(job.key, outcome.state, {"outcome": outcome})
        return outcomes
    ctx = get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        queue = manager.Queue()
        futures = {pool.submit(run_job, job, store, QueueReport(queue)): job for job in jobs}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            with_events(queue, on_event)
            for future in finished:
                job = futures[future]
                if (err := future.exception()) is not None:  # the worker process died
                    outcome = Outcome(job.key, "failed", f"{type(err).__name__}: {err}",
                                      store.location(job, "sweep.log"))  # fmt: skip
                else:
                    outcome = future.result()
                on_event(job.key, outcome.state, {"outcome": outcome})
                outcomes.append(outcome)
    return outcomes


def with_events(queue: Any, on_event: Event) -> None:
    """Pass on every event waiting in ``queue`` (a multiprocessing or Ray queue)."""
    while True:
        try:
            key, state, info = queue.get_nowait()
        except Empty:
            return
        on_event(key, state, info)


class Status:
    """One progress bar over the runs and a status line per run state change."""

    def __init__(self, jobs: Sequence[Job], store: Store, done: int, progress: bool) -> None:
        self.store, self.failed = store, []
        self.bar = tqdm(total=len(jobs), initial=done, desc="sweep", unit="run",
                        disable=not progress)  # fmt: skip

    def event(self, key: str, state: str, info: Mapping[str, Any]) -> None:
        where = f" on {info['host']} (pid {info['pid']})" if "host" in info else ""
        tqdm.write(f"{state:<8} {key}{where}")
        if (outcome := info.get("outcome")) is not None:
            self.bar.update(1)
            if outcome.state == "failed":
                self.failed.append(outcome)
                tqdm.write(f"         error: {outcome.error}\n         log: {outcome.log}")


def run_sweep(grids: Sequence[Grid], store: Store, *, executor: str = "local", jobs: int = 0,
              progress: bool = True, dry: bool = False,
              ray_options: Mapping[str, Any] | None = None) -> list[Outcome]:  # fmt: skip
    """Check every run of ``grids`` (bad input stops the sweep before anything is written),
    then run the unfinished ones; returns their outcomes (``dry``: prints the plan only)."""
    if jobs < 0:
        raise UsageError(f"jobs must be >= 0 (0: one per core), got {jobs}")
    runs = expand(grids)
    for job in runs:
        store.check(job)
    if dry:
        print("\n".join(dry_run(runs, store)))
        return []
    todo = [job for job in runs if store.state(job) != "done"]
    status = Status(runs, store, len(runs) - len(todo), progress)
    if len(runs) > len(todo):
        tqdm.write(f"skipped {len(runs) - len(todo)} finished runs (DONE)")
    for job in todo:
        tqdm.write(f"queued   {job.key}")
    if executor == "ray":
        from mtrl_bench.sweep_ray import run_ray

        outcomes = run_ray(todo, store, status.event, **(ray_options or {}))
    elif executor == "local":
        workers = jobs or os.cpu_count() or 1
        outcomes = run_local(todo, store, min(workers, max(1, len(todo))), status.event)
    else:
        raise UsageError(f"unknown executor {executor!r}; allowed: local, ray")
    status.bar.close()
    done = sum(o.state == "done" for o in outcomes)
    tqdm.write(f"{done} done, {len(status.failed)} failed, {len(runs) - len(todo)} skipped")
    return outcomes

