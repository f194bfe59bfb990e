"""What the reproduction scripts in ``experiments/`` share: a resumable sweep of
``mtrl_bench.runner`` runs in single-threaded worker processes, tables and training curves
rebuilt after every finished run, and an optional git commit of the results directory.

A run directory with ``DONE`` is skipped; an interrupted run resumes from its checkpoint in the
same session (checkpoints are git-ignored, so on a fresh clone it restarts from scratch).

Do not edit an experiment script (or this module) while its sweep runs: every phase spawns
fresh workers, which import the script as it is on disk, not as the running parent has it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def worker_init() -> None:
    # One XLA / BLAS thread per worker: two single-threaded runs beat one two-threaded run here.
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["OMP_NUM_THREADS"] = "1"


def run_all(todo: Sequence[Any], fn: Callable[[Any], str], jobs: int,
            on_done: Callable[[Any], None]) -> None:  # fmt: skip
    """``fn(item)`` for every item in ``jobs`` spawned processes; ``on_done(item)`` after each
    success. A failure is printed and the others go on."""
    ctx = get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=worker_init) as pool:
        futures = {pool.submit(fn, item): item for item in todo}
        for future in as_completed(futures):
            item = futures[future]
            if (error := future.exception()) is not None:
                print(f"FAILED {item}: {error!r}", flush=True)
                continue
            print(f"done {item}: {future.result()}", flush=True)
            on_done(item)


def parse_args(doc: str, phases: Sequence[str], default: Sequence[str],
               argv: list[str] | None) -> argparse.Namespace:  # fmt: skip
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--phases", nargs="+", choices=list(phases), default=list(default))
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument("--commit", action="store_true", help="git-commit after every run")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="run only these of each phase's seeds (default: all of them)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


def extend(runs: Path, agents: Sequence[str], seeds: Sequence[int],
           item: Callable[[str, int], Any], fn: Callable[[Any], str], jobs: int,
           on_done: Callable[[Any], None], only: Sequence[int] | None = None) -> None:  # fmt: skip
    """Run every (agent, seed) without a ``DONE`` marker under ``runs``, seed-major (a partial
    sweep compares the agents on the same seeds); ``only`` restricts the seeds (``--seeds``)."""
    seeds = [s for s in seeds if only is None or s in only]
    todo = [item(a, s) for s in seeds for a in agents if not (runs / a / str(s) / "DONE").exists()]
    run_all(todo, fn, jobs, on_done)


def report(runs: Path, agents: Sequence[str], out: Path) -> None:
    """Tables (Markdown, CSV, LaTeX, per task, P(X > Y)) of the finished runs under ``runs``."""
    from mtrl_bench import report as rep
    from mtrl_bench.results import collect_eval_records

    if not runs.exists():
        return
    records = [r for r in collect_eval_records([runs]) if r["agent"] in agents]
    if records:
        result = rep.build_report(records, reps=2000, seed=0)
        rep.write_report(result, out)
        print(rep.to_markdown(result), flush=True)


def curves(runs: Path, agents: Sequence[str], path: Path, title: str) -> None:
    """Training success (training episodes finished in each metrics row, mean over tasks)
    against env steps: mean over finished seeds with the min-max band."""
    import matplotlib.pyplot as plt
    import numpy as np

    from mtrl_bench.results import read_jsonl

    fig, ax = plt.subplots(figsize=(6, 3.5))
    plotted = False
    for agent in agents:
        series = []
        for done in sorted((runs / agent).glob("*/DONE")):
            rows = read_jsonl(done.parent / "metrics.jsonl")
            last = {r["env_steps"]: r for r in rows if r["split"] == "train"}  # restarts repeat
            series.append([(s, r["success"] or 0.0) for s, r in sorted(last.items())])
        if not series:
            continue
        n = min(len(s) for s in series)
        steps = np.array([x for x, _ in series[0][:n]])
        success = np.array([[y for _, y in s[:n]] for s in series])
        ax.plot(steps, success.mean(0), label=f"{agent} ({len(series)} seeds)")
        ax.fill_between(steps, success.min(0), success.max(0), alpha=0.2)
        plotted = True
    if not plotted:  # no finished run yet
        plt.close(fig)
        return
    ax.set(xlabel="env steps (all tasks)", ylabel="training success", title=title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def commit(path: Path, message: str) -> None:
    """Commit ``path`` only; a failure (another git process holds the index lock) is reported
    and the sweep goes on: the next commit picks the files up."""
    add = subprocess.run(["git", "add", str(path)], cwd=ROOT)
    done = add.returncode == 0 and subprocess.run(
        ["git", "commit", "-qm", message, "--", str(path)], cwd=ROOT
    ).returncode in (0, 1)
    if not done:
        print(f"warning: could not commit {path}; the next commit will", file=sys.stderr)
