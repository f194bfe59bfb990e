"""Evidence that the SAC family learns on Meta-World at budgets a 2-core CPU can run (issue 5).

    python -m experiments.metaworld_sac                     # run / extend every phase, report
    python -m experiments.metaworld_sac --phases mt1-reach  # one phase
    python -m experiments.metaworld_sac --seeds 0           # seed 0 of every phase first
    python -m experiments.metaworld_sac --report-only       # rebuild tables and plots

One SAC update per vector step at Meta-World+'s network size costs ~20 ms (MTSAC) to ~80 ms
(MOORE-SAC, k = 4) on one core here (``benchmarks/metaworld_throughput.py``), so the full
protocol (2M steps per task) is cluster territory; these phases use the ``paper`` preset
(Meta-World+) at small, stated budgets. Evaluation is Meta-World+'s: deterministic actions, 50
episodes per task (one per training goal on the ``train`` split; the 40 held-out goals, some
twice, on ``test``), success at any step; ML10 uses the ``meta_test`` protocol (3 episodes per
goal after adaptation).

Phases: ``mt1-reach`` (MTSAC, MOORE-SAC; 30k steps), ``mt10-sub3`` (reach, window-open,
drawer-close; 30k steps per task), ``mt10`` (all ten tasks, MTSAC, MT-MH-SAC, MOORE-SAC and
random; 10k steps per task: the leaderboard ``metaworld-mt10-cpu/v1``), ``ml10-meta-test``
(MTSAC trained 100k steps on ML10's training tasks, then ``meta_test`` on drawer-open) and its
no-pretraining control ``ml10-meta-test-scratch``; ``ml1-reach-meta-test`` and its scratch control
(MTSAC trained 30k steps on ML1 reach's 50 training goals, goal hidden, then the same
adaptation on 10 of its 40 held-out goals); ``experts`` (Meta-World's scripted experts on all of
MT50, one episode per training and per held-out goal: the upper reference point).

The random reference on MT1 reach: ``mtrl train --suite metaworld/mt1-reach-v1 --agent random
--steps 30000 --eval-episodes 50 --deterministic-eval --seeds 0 1 2 --runs-dir
results/metaworld/runs``.

Run directories: ``results/metaworld/runs/<suite>/<agent>/<seed>`` (checkpoints git-ignored);
tables and ``curves.png`` under ``results/metaworld/<phase>/``; ``--commit`` commits
``results/metaworld`` after every finished run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import sweep

OUT = sweep.ROOT / "results" / "metaworld"


@dataclass(frozen=True)
class Phase:
    name: str
    suite: str
    agents: tuple[str, ...]
    steps: int
    """Training budget, env steps over all tasks."""
    seeds: tuple[int, ...]
    protocols: tuple[str, ...] = ("mt", "zero_shot")
    extra: tuple[tuple[str, Any], ...] = ()
    """More ``RunConfig`` fields."""
    root: str = "runs"

    @property
    def runs(self) -> Path:
        return OUT / self.root / self.suite


# ML10 ``meta_test`` on its first test task (drawer-open), 10 of its 40 held-out goals, 5000
# adaptation steps (10 episodes) per goal: pretrained on the ML10 training tasks vs the same
# agent after a single vector step (no training; its own run tree), same adaptation.
_META = (("meta_test_tasks", 1), ("meta_test_goals", 10), ("few_shot_steps", 5000))
PHASES = {
    "mt1-reach": Phase("mt1-reach", "metaworld/mt1-reach-v1", ("mtsac", "moore-sac"), 30_000,
                       (0, 1, 2)),
    "mt10-sub3": Phase("mt10-sub3", "metaworld/mt10-sub3-v1", ("mtsac", "moore-sac"), 90_000,
                       (0, 1, 2)),
    # The leaderboard metaworld-mt10-cpu/v1: the largest budget at which the three agents x 3
    # seeds fit in ~10 CPU-hours here (one update per vector step: ~0.13 s MTSAC, ~0.8 s
    # MOORE-SAC at the MT10 batch; about 6 h in all, evaluation included). ``random`` first: the
    # reference point, evaluation only.
    "mt10": Phase("mt10", "metaworld/mt10-v1", ("random", "mtsac", "mtmh-sac", "moore-sac"),
                  100_000, (0, 1, 2)),
    "ml10-meta-test": Phase("ml10-meta-test", "metaworld/ml10-v1", ("mtsac",), 100_000, (0, 1, 2),
                            ("meta_test",), _META),
    "ml10-meta-test-scratch": Phase("ml10-meta-test-scratch", "metaworld/ml10-v1", ("mtsac",),
                                    10, (0, 1, 2), ("meta_test",), _META, "runs-scratch"),
    # ML1 reach (goal hidden): does pretraining on the 50 training goals make adaptation to a
    # held-out goal faster than starting from scratch? (ML10 at 100k steps cannot say: its
    # pretraining learns nothing to transfer.) Same adaptation budget as ML10.
    "ml1-reach-meta-test": Phase("ml1-reach-meta-test", "metaworld/ml1-reach-v1", ("mtsac",),
                                 30_000, (0, 1, 2), ("meta_test",), _META),
    "ml1-reach-meta-test-scratch": Phase("ml1-reach-meta-test-scratch", "metaworld/ml1-reach-v1",
                                         ("mtsac",), 10, (0, 1, 2), ("meta_test",), _META,
                                         "runs-scratch"),
    # Meta-World's scripted experts (baselines/metaworld_experts.py): the upper reference point,
    # every MT50 task, each of the 50 training goals once (``mt``) and the 40 held-out goals once
    # (``zero_shot``). Deterministic policy, nothing to train: one seed.
    "experts": Phase("experts", "metaworld/mt50-v1", ("metaworld-expert",), 1, (0,),
                     root="runs-experts"),
}  # fmt: skip


def _run(item: tuple[Phase, str, int]) -> str:
    from mtrl_bench.runner import RunConfig, run

    phase, agent, seed = item
    preset = "default" if agent in ("random", "metaworld-expert") else "paper"
    cfg = RunConfig(suite=phase.suite, agent=agent, seed=seed, steps=phase.steps, preset=preset,
                    protocols=phase.protocols, eval_episodes=50, deterministic_eval=True,
                    **dict(phase.extra))  # fmt: skip
    return str(run(cfg, OUT / phase.root, progress=False).path)


def report(phase: Phase) -> None:
    # ``random`` runs, where present (``mtrl train --agent random``), are the reference point.
    trained = tuple(a for a in phase.agents if a not in ("random", "metaworld-expert"))
    sweep.report(phase.runs, phase.agents if not trained else (*trained, "random"),
                 OUT / phase.name)
    title = f"{phase.suite}, {phase.steps // 1000}k steps: training success"
    if trained:
        sweep.curves(phase.runs, trained, OUT / phase.name / "curves.png", title)


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
                         _run, args.jobs, done, args.seeds)  # fmt: skip
        report(phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
