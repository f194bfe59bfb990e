"""Evidence that the SAC family learns on Meta-World at budgets a 2-core CPU can run (issue 5).

    python experiments/metaworld_sac.py                     # run / extend every phase, report
    python experiments/metaworld_sac.py --phases mt1-reach  # one phase
    python experiments/metaworld_sac.py --report-only       # rebuild tables and plots

One SAC update per vector step at Meta-World+'s network size costs ~20 ms (MTSAC) to ~80 ms
(MOORE-SAC, k = 4) on one core here (``benchmarks/metaworld_throughput.py``), so the full
protocol (2M steps per task) is cluster territory; these phases use the ``paper`` preset
(Meta-World+) at small, stated budgets. Evaluation is Meta-World+'s: deterministic actions, 50
episodes per task (one per training goal on the ``train`` split; the 40 held-out goals, some
twice, on ``test``), success at any step.

Run directories: ``results/metaworld/runs/<suite>/<agent>/<seed>`` (checkpoints git-ignored);
tables and ``curves.png`` under ``results/metaworld/<phase>/``; ``--commit`` commits
``results/metaworld`` after every finished run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sweep  # noqa: E402

OUT = sweep.ROOT / "results" / "metaworld"


@dataclass(frozen=True)
class Phase:
    name: str
    suite: str
    agents: tuple[str, ...]
    steps: int
    """Training budget, env steps over all tasks."""
    seeds: tuple[int, ...]

    @property
    def runs(self) -> Path:
        return OUT / "runs" / self.suite


PHASES = {
    "mt1-reach": Phase(
        "mt1-reach", "metaworld/mt1-reach-v1", ("mtsac", "moore-sac"), 30_000, (0, 1, 2)
    ),  # fmt: skip
}


def _run(item: tuple[Phase, str, int]) -> str:
    from mtrl_bench.runner import RunConfig, run

    phase, agent, seed = item
    cfg = RunConfig(suite=phase.suite, agent=agent, seed=seed, steps=phase.steps, preset="paper",
                    protocols=("mt", "zero_shot"), eval_episodes=50,
                    deterministic_eval=True)  # fmt: skip
    return str(run(cfg, OUT / "runs", progress=False).path)


def report(phase: Phase) -> None:
    sweep.report(phase.runs, phase.agents, OUT / phase.name)
    title = f"{phase.suite}, {phase.steps // 1000}k steps: training success"
    sweep.curves(phase.runs, phase.agents, OUT / phase.name / "curves.png", title)


def main(argv: list[str] | None = None) -> int:
    args = sweep.parse_args(__doc__, list(PHASES), list(PHASES), argv)
    for name in args.phases:
        phase = PHASES[name]

        def done(item: tuple[Phase, str, int], phase: Phase = phase) -> None:
            report(phase)
            if args.commit:
                sweep.commit(OUT, f"Meta-World SAC: {phase.suite} {item[1]} seed {item[2]} "
                                  f"({phase.steps} steps)")  # fmt: skip

        if not args.report_only:
            sweep.extend(phase.runs, phase.agents, phase.seeds, lambda a, s, p=phase: (p, a, s),
                         _run, args.jobs, done)  # fmt: skip
        report(phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
