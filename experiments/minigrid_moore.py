"""MOORE's MiniGrid reproduction as a resumable sweep (issue 4): MOORE, MoE and MTPPO on MT3, MT5
and MT7, evaluated with the ``mt``, ``zero_shot`` and ``few_shot`` protocols.

    python -m experiments.minigrid_moore                  # run / extend the sweep, report
    python -m experiments.minigrid_moore --phases mt3     # one phase
    python -m experiments.minigrid_moore --report-only    # rebuild the tables and plots

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

import sys
from dataclasses import dataclass
from pathlib import Path

from experiments import sweep

OUT = sweep.ROOT / "results" / "minigrid"
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


def _run(item: tuple[Phase, str, int]) -> str:
    from mtrl_bench.runner import RunConfig, run

    phase, agent, seed = item
    cfg = RunConfig(
        suite=phase.suite, agent=agent, seed=seed, steps=phase.steps_per_task * phase.tasks,
        preset="paper", protocols=("mt", "zero_shot", "few_shot"), eval_episodes=16,
        few_shot_steps=FEW_SHOT_STEPS_PER_TASK * phase.tasks,
    )  # fmt: skip
    return str(run(cfg, phase.runs.parent.parent, progress=False).path)


def report(phase: Phase) -> None:
    sweep.report(phase.runs, AGENTS, OUT / phase.name)
    title = f"{phase.suite}, {phase.steps_per_task // 1000}k steps/task: training success"
    sweep.curves(phase.runs, AGENTS, OUT / phase.name / "curves.png", title)


def main(argv: list[str] | None = None) -> int:
    default = ["mt3", "mt5-100k", "mt7-100k", "mt5", "mt7"]
    args = sweep.parse_args(__doc__, list(PHASES), default, argv)
    for name in args.phases:
        phase = PHASES[name]

        def done(item: tuple[Phase, str, int], phase: Phase = phase) -> None:
            report(phase)
            if args.commit:
                budget = f"{phase.steps_per_task} steps per task"
                sweep.commit(OUT, f"MiniGrid reproduction: {phase.suite} {item[1]} seed "
                                  f"{item[2]} ({budget})")  # fmt: skip

        if not args.report_only:
            sweep.extend(phase.runs, AGENTS, phase.seeds, lambda a, s, p=phase: (p, a, s), _run,
                         args.jobs, done, args.seeds)  # fmt: skip
        report(phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
