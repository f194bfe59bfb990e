"""``mtrl sweep``: its options, and the ``--agent-config.FIELD V [V ...]`` grid flags.

A sweep may hold several agents, so its agent-config flags cannot be typed by one agent's
``Config`` the way ``mtrl train``'s are (``cli_agent``). They are taken out of argv before tyro
parses the rest: every value is read as a TOML literal (``3e-4``, ``true``, ``[64, 64]``; a bare
word is a string), then checked against each agent's field type when the grid expands.

No ``from __future__ import annotations``: tyro reads the annotations below at run time.
"""

import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from mtrl_bench.errors import UsageError

PREFIX = "--agent-config."


def split_agent_config(argv: Sequence[str]) -> tuple[list[str], dict[str, tuple[Any, ...]]]:
    """``argv`` without the ``--agent-config.FIELD`` flags, and those flags' values."""
    rest: list[str] = []
    grid: dict[str, tuple[Any, ...]] = {}
    tokens = list(argv)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith(PREFIX):
            rest.append(token)
            continue
        name, eq, value = token[len(PREFIX) :].partition("=")
        values = [value] if eq else []
        while not eq and tokens and not tokens[0].startswith("--"):
            values.append(tokens.pop(0))
        if not name or not values:
            raise UsageError(f"{token}: give a field and at least one value, e.g. "
                             f"{PREFIX}lr 1e-3 3e-4")  # fmt: skip
        grid[name.replace("-", "_")] = tuple(_literal(v) for v in values)
    return rest, grid


def _literal(token: str) -> Any:
    if token in ("True", "False"):  # Python's spelling, as tyro accepts it in `mtrl train`
        return token == "True"
    try:
        return tomllib.loads(f"v = {token}")["v"]
    except tomllib.TOMLDecodeError:
        return token


def tyro_argv(argv: Sequence[str]) -> list[str]:
    """What tyro parses: argv, less a sweep's agent-config flags."""
    return split_agent_config(argv)[0] if list(argv[:1]) == ["sweep"] else list(argv)


def sweep_command(argv: Sequence[str]) -> Callable[..., int]:
    """``mtrl sweep`` with the agent-config grid of ``argv`` (the arguments after ``sweep``)."""
    agent_config = split_agent_config(argv)[1]

    def sweep(
        agents: tuple[str, ...] = (),
        suites: tuple[str, ...] = (),
        leaderboards: tuple[str, ...] = (),
        seeds: tuple[int, ...] = (),
        presets: tuple[str, ...] = (),
        steps: int | None = None,
        protocols: tuple[str, ...] = (),
        eval_episodes: int | None = None,
        file: Path | None = None,
        runs_dir: str = "runs",
        executor: Literal["local", "ray"] = "local",
        jobs: int = 0,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        max_retries: int = 3,
        sync_every: float = 60.0,
        dry_run: bool = False,
    ) -> int:
        """Run a grid of agents x suites (or leaderboards) x seeds x presets x agent-config
        values; finished runs are skipped, unfinished ones resume. Exit status 1 if a run failed.

        Agent hyperparameters: --agent-config.FIELD V [V ...] (a grid over the values; each
        value a TOML literal, e.g. --agent-config.lr 1e-3 3e-4). docs/sweeps.md has the TOML
        file format and running on a Ray cluster.

        Args:
            agents: Agent ids (mtrl list shows them).
            suites: Suite ids.
            leaderboards: Leaderboard ids: their suite, budget, episodes and protocols.
            seeds: Training seeds (default 0).
            presets: Agent presets (default: default).
            steps: Training env steps per run (default: the runner's).
            protocols: Evaluation protocols (default: mt zero_shot).
            eval_episodes: Evaluation episodes per task.
            file: A TOML sweep file; flags given here replace its values.
            runs_dir: The run store: a path (shared by every node on a cluster) or an fsspec
                URL (s3://bucket/runs, file:///mnt/runs...).
            executor: local (a process pool) or ray.
            jobs: local: runs in parallel (0: one per core).
            address: ray: the cluster (default: RAY_ADDRESS, else a cluster on this machine,
                else a new local one).
            num_cpus: ray: CPUs each run declares.
            num_gpus: ray: GPUs each run declares.
            max_retries: ray: retries of a run whose worker or node died.
            sync_every: Remote (fsspec) stores: seconds between checkpoint uploads.
            dry_run: List the runs and which are done; run nothing.
        """
        from mtrl_bench.errors import require_positive
        from mtrl_bench.sweep import load_grids, run_sweep
        from mtrl_bench.sweep_store import Store

        require_positive("num_cpus", num_cpus)
        if num_gpus < 0 or max_retries < 0 or sync_every < 0:
            raise UsageError("num_gpus, max_retries and sync_every must be >= 0, got "
                             f"{num_gpus}, {max_retries}, {sync_every}")  # fmt: skip
        flags = {"agents": agents, "suites": suites, "leaderboards": leaderboards,
                 "seeds": seeds, "presets": presets, "steps": steps, "protocols": protocols,
                 "eval_episodes": eval_episodes, "agent_config": agent_config}  # fmt: skip
        grids = load_grids(file, flags)
        ray = {"address": address, "num_cpus": num_cpus, "num_gpus": num_gpus,
               "max_retries": max_retries}  # fmt: skip
        outcomes = run_sweep(grids, Store(runs_dir, sync_every), executor=executor, jobs=jobs,
                             dry=dry_run, ray_options=ray)  # fmt: skip
        return 1 if any(o.state == "failed" for o in outcomes) else 0

    return sweep
