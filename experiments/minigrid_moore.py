"""MOORE's MiniGrid reproduction as a resumable sweep (issue 4): MOORE, MoE and MTPPO on MT3, MT5
and MT7, evaluated with the ``mt``, ``zero_shot`` and ``few_shot`` protocols.

    python experiments/minigrid_moore.py                  # run / extend the sweep, report
    python experiments/minigrid_moore.py --phases mt3     # one phase
    python experiments/minigrid_moore.py --report-only    # rebuild the tables and plots

The default order is MT3 at the paper budget, then MT5 and MT7 at a quarter of it (phases
``mt5-100k`` and ``mt7-100k``, 3 seeds), then MT5 and MT7 at the paper budget.

Run directories go to ``results/minigrid/runs/<suite>/<agent>/<seed>`` (reduced budgets:
``results/minigrid/runs-<budget>/...``; ``ckpt/`` is git-ignored:
an interrupted run restarts from its last checkpoint in the same session, from scratch on a fresh
clone; finished runs are ``DONE`` and skipped). Runs go seed-major (every agent at seed 0, then
seed 1, ...), so a partial sweep compares the agents on the same seeds. After every finished run
the tables and plots under ``results/minigrid/<phase>/`` are rebuilt, and with ``--commit`` the
results are committed (``git add results/minigrid && git commit``), so a session that ends
mid-sweep loses at most the runs in flight.

Budgets (env steps per task; the paper's is 400k = 200 updates of 2000 steps per task, Todorov
et al. 2025) are written into every record (``env_steps`` is the total over tasks).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "minigrid"
AGENTS = ("moore", "moe", "mtppo")


@dataclass(frozen=True)
class Phase:
    name: str
    suite: str
    tasks: int
    steps_per_task: int
    seeds: tuple[int, ...]

    @property
    def runs(self) -> Path:
        """Run directories; a reduced budget gets its own tree (its configs differ)."""
        paper = self.steps_per_task == PAPER_STEPS_PER_TASK
        return OUT / ("runs" if paper else f"runs-{self.steps_per_task // 1000}k") / self.suite


PAPER_STEPS_PER_TASK = 400_000
PHASES = {
    "mt3": Phase("mt3", "minigrid-jax/mt3-v1", 3, PAPER_STEPS_PER_TASK, (0, 1, 2, 3, 4)),
    "mt5": Phase("mt5", "minigrid-jax/mt5-v1", 5, PAPER_STEPS_PER_TASK, (0, 1, 2, 3, 4)),
    "mt7": Phase("mt7", "minigrid-jax/mt7-v1", 7, PAPER_STEPS_PER_TASK, (0, 1, 2, 3, 4)),
    # Reduced budgets (a quarter of the paper's per task, 3 seeds): what 2 CPU cores can do in a
    # session; every number from them carries the budget (`steps` column, directory, phase name).
    "mt5-100k": Phase("mt5-100k", "minigrid-jax/mt5-v1", 5, 100_000, (0, 1, 2)),
    "mt7-100k": Phase("mt7-100k", "minigrid-jax/mt7-v1", 7, 100_000, (0, 1, 2)),
}
FEW_SHOT_STEPS_PER_TASK = 40_000  # 10 % of the paper's training budget per held-out task


def _worker_init() -> None:
    # One XLA / BLAS thread per worker: two single-threaded runs beat one two-threaded run here.
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["OMP_NUM_THREADS"] = "1"


def _run(phase: Phase, agent: str, seed: int) -> str:
    from mtrl_bench.runner import RunConfig, run

    cfg = RunConfig(
        suite=phase.suite, agent=agent, seed=seed, steps=phase.steps_per_task * phase.tasks,
        preset="paper", protocols=("mt", "zero_shot", "few_shot"), eval_episodes=16,
        few_shot_steps=FEW_SHOT_STEPS_PER_TASK * phase.tasks,
    )  # fmt: skip
    return str(run(cfg, phase.runs.parent.parent, progress=False).path)


def report(phase: Phase) -> None:
    from mtrl_bench import report as rep
    from mtrl_bench.results import collect_eval_records

    runs = phase.runs
    if not runs.exists():
        return
    records = [r for r in collect_eval_records([runs]) if r["agent"] in AGENTS]
    if records:
        result = rep.build_report(records, reps=2000, seed=0)
        rep.write_report(result, OUT / phase.name)
        curves(phase)
        print(rep.to_markdown(result), flush=True)


def curves(phase: Phase) -> None:
    """``curves.png``: training success (episodes finished in each 10-update chunk, mean over
    tasks) against env steps, mean over finished seeds with the min-max band."""
    import matplotlib.pyplot as plt
    import numpy as np

    from mtrl_bench.results import read_jsonl

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for agent in AGENTS:
        runs = []
        for done in sorted((phase.runs / agent).glob("*/DONE")):
            rows = read_jsonl(done.parent / "metrics.jsonl")
            last = {r["updates"]: r for r in rows if r["split"] == "train"}  # restarts repeat
            runs.append([(r["env_steps"], r["success"] or 0.0) for _, r in sorted(last.items())])
        if not runs:
            continue
        n = min(len(r) for r in runs)
        steps = np.array([x for x, _ in runs[0][:n]])
        success = np.array([[y for _, y in r[:n]] for r in runs])
        ax.plot(steps, success.mean(0), label=f"{agent} ({len(runs)} seeds)")
        ax.fill_between(steps, success.min(0), success.max(0), alpha=0.2)
    budget = f"{phase.steps_per_task // 1000}k steps/task"
    ax.set(xlabel="env steps (all tasks)", ylabel="training success",
           title=f"{phase.suite}, {budget}: training success")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / phase.name / "curves.png", dpi=120)
    plt.close(fig)


def commit(message: str) -> None:
    """Commit ``results/minigrid`` only; a failure (say, another git process holds the index
    lock) is reported and the sweep goes on: the next commit picks the files up."""
    add = subprocess.run(["git", "add", str(OUT)], cwd=ROOT)
    done = add.returncode == 0 and subprocess.run(
        ["git", "commit", "-qm", message, "--", str(OUT)], cwd=ROOT
    ).returncode in (0, 1)
    if not done:
        print(f"warning: could not commit {OUT}; the next commit will", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", nargs="+", choices=list(PHASES),
                        default=["mt3", "mt5-100k", "mt7-100k", "mt5", "mt7"])  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument("--commit", action="store_true", help="git-commit after every run")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    for name in args.phases:
        phase = PHASES[name]
        if not args.report_only:
            todo = [(a, s) for s in phase.seeds for a in AGENTS
                    if not (phase.runs / a / str(s) / "DONE").exists()]  # fmt: skip
            ctx = get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_worker_init) as pool:
                futures = {pool.submit(_run, phase, a, s): (a, s) for a, s in todo}
                for future in as_completed(futures):
                    agent, seed = futures[future]
                    if (error := future.exception()) is not None:  # report, keep the others going
                        print(f"FAILED {phase.suite} {agent} seed {seed}: {error!r}", flush=True)
                        continue
                    print(f"done {phase.suite} {agent} seed {seed}: {future.result()}", flush=True)
                    report(phase)
                    if args.commit:
                        commit(f"MiniGrid reproduction: {phase.suite} {agent} seed {seed} "
                               f"({phase.steps_per_task} steps per task)")  # fmt: skip
        report(phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
