"""CAMRL (issue 18) as a resumable sweep: MiniGrid MT3 / MT5 / MT7 against MOORE, MoE, MTPPO and
independent per-task PPO at equal budgets, Meta-World's MT10 subset against MTSAC and MOORE-SAC,
and the paper's ablations on MT3.

    python -m experiments.camrl                          # run / extend every phase, report
    python -m experiments.camrl --phases mt3 --seeds 0   # one phase, one seed
    python -m experiments.camrl --report-only            # rebuild the tables
    python -m experiments.camrl --smoke --root /tmp/x    # every phase kind at a CI budget

Phases (budgets are those of the committed runs they are compared with):

- ``mt3``: ``minigrid-jax/mt3-v1``, 400k env steps per task (MOORE's), 5 seeds, ``camrl`` and
  ``independent`` (CAMRL's per-task PPO learners with no transfer, ``mode = never``: the
  paper's single-task baseline at an equal budget), protocols ``mt``, ``zero_shot``,
  ``few_shot`` (40k steps per held-out task), 16 sampled episodes, as
  ``experiments.minigrid_moore``; run directories next to MOORE's, so one table compares all.
- ``mt5-100k``, ``mt7-100k``: MT5 and MT7 at 100k steps per task (the quarter budget of the
  committed MOORE / MoE / MTPPO runs), 3 seeds.
- ``mt10-sub3``: ``metaworld/mt10-sub3-v1`` (reach, window-open, drawer-close), 90k steps in all,
  3 seeds, SAC per task with ``mtsac``'s settings, evaluated as ``experiments.metaworld_sac``.
- ``mt3-ablations``: MT3 at 400k steps per task, 3 seeds, each ablation in its own run tree
  (``results/minigrid/runs-camrl-ablations/<name>/``) and labelled ``camrl-<name>`` in the table
  with full CAMRL and ``independent`` (= no mode switch, never MTRL): ``no-curriculum``,
  ``always-mtrl`` (no mode switch, always MTRL), ``no-prior`` / ``no-loss-rank`` /
  ``no-sim-rank`` (lambda_2 / lambda_3 / lambda_4 = 0).

The prior ranking (``Config.prior``) is named per phase: the committed MTPPO (MiniGrid) or
MTSAC (Meta-World) runs of the same suite and budget. Tables go to
``results/{minigrid,metaworld}/camrl-<phase>/``; ``--commit`` commits after every finished run.
``--smoke`` runs every phase kind at the ``ci`` preset and a tiny budget (1 seed) under
``--root`` and builds its tables there: a check that the sweep works, not a result.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from experiments import sweep

ROOT = sweep.ROOT / "results"
MINIGRID_AGENTS = ("camrl", "independent", "moore", "moe", "mtppo")
ABLATIONS = {
    "no-curriculum": {"curriculum": False},
    "always-mtrl": {"mode": "always"},
    "no-prior": {"lambda_prior": 0.0},
    "no-loss-rank": {"lambda_loss_rank": 0.0},
    "no-sim-rank": {"lambda_sim_rank": 0.0},
}


@dataclass(frozen=True)
class Phase:
    name: str
    family: str  # results/<family>
    suite: str
    tree: str  # run tree under results/<family>/
    steps: int  # env steps over all tasks
    seeds: tuple[int, ...]
    agents: tuple[str, ...]
    compare: tuple[str, ...]  # agents of the table (committed runs of others included)
    prior: str  # the prior's runs directory (Config.prior)
    ablation: str = ""

    def runs(self, root: Path) -> Path:
        return root / self.family / self.tree / self.suite


def _minigrid(name: str, suite: str, tasks: int, per_task: int, seeds: tuple[int, ...]) -> Phase:
    tree = "runs" if per_task == 400_000 else f"runs-{per_task // 1000}k"
    return Phase(name, "minigrid", suite, tree, per_task * tasks, seeds, ("camrl", "independent"),
                 MINIGRID_AGENTS, f"results/minigrid/{tree}/{suite}/mtppo")  # fmt: skip


PHASES = {
    "mt3": _minigrid("mt3", "minigrid-jax/mt3-v1", 3, 400_000, (0, 1, 2, 3, 4)),
    "mt5-100k": _minigrid("mt5-100k", "minigrid-jax/mt5-v1", 5, 100_000, (0, 1, 2)),
    "mt7-100k": _minigrid("mt7-100k", "minigrid-jax/mt7-v1", 7, 100_000, (0, 1, 2)),
    "mt10-sub3": Phase("mt10-sub3", "metaworld", "metaworld/mt10-sub3-v1", "runs", 90_000,
                       (0, 1, 2), ("camrl",), ("camrl", "mtsac", "moore-sac"),
                       "results/metaworld/runs/metaworld/mt10-sub3-v1/mtsac"),
    **{f"mt3-{a}": Phase(f"mt3-{a}", "minigrid", "minigrid-jax/mt3-v1",
                         f"runs-camrl-ablations/{a}", 1_200_000, (0, 1, 2), ("camrl",), (),
                         "results/minigrid/runs/minigrid-jax/mt3-v1/mtppo", a)
       for a in ABLATIONS},
}  # fmt: skip
ABLATION_PHASES = [f"mt3-{a}" for a in ABLATIONS]
SMOKE_STEPS = {"minigrid": 64 * 3 * 3, "metaworld": 3 * 400}  # 3 PPO iterations; SAC warm-up + 4


def _run(item: tuple[Phase, str, int, str, bool]) -> str:
    from mtrl_bench.registry import get_agent, get_suite
    from mtrl_bench.runner import RunConfig, run

    phase, agent, seed, root, smoke = item
    preset = "ci" if smoke else "paper"
    config = replace(get_agent(agent).presets[preset], **ABLATIONS.get(phase.ablation, {}))
    if agent == "camrl":  # the prior's source, named (the independent learners have no prior)
        config = replace(config, prior=phase.prior)
    if smoke:
        config = replace(config, learning_starts=50, random_steps=50, epoch_steps=50)
    steps = SMOKE_STEPS[phase.family] if smoke else phase.steps
    tasks = len(get_suite(phase.suite).splits["train"])
    if phase.family == "metaworld":
        cfg = RunConfig(suite=phase.suite, agent=agent, seed=seed, steps=steps, preset=preset,
                        protocols=("mt", "zero_shot"), eval_episodes=2 if smoke else 50,
                        deterministic_eval=True, agent_config=config)  # fmt: skip
    else:
        cfg = RunConfig(suite=phase.suite, agent=agent, seed=seed, steps=steps, preset=preset,
                        protocols=("mt", "zero_shot", "few_shot"),
                        eval_episodes=2 if smoke else 16,
                        few_shot_steps=(64 if smoke else 40_000) * tasks,
                        agent_config=config)  # fmt: skip
    return str(run(cfg, phase.runs(Path(root)).parent.parent, progress=False).path)


def report(phase: Phase, root: Path) -> None:
    out = root / phase.family / f"camrl-{phase.name}"
    if phase.ablation:
        return ablation_report(root)
    sweep.report(phase.runs(root), phase.compare, out)
    title = f"{phase.suite}, {phase.steps // 1000}k steps: training success"
    sweep.curves(phase.runs(root), phase.compare, out / "curves.png", title)


def ablation_report(root: Path) -> None:
    """One table: full CAMRL, independent training and every ablation (labelled by name)."""
    from mtrl_bench import report as rep
    from mtrl_bench.results import collect_eval_records

    mt3, records = PHASES["mt3"].runs(root), []
    if mt3.exists():
        records = [r for r in collect_eval_records([mt3]) if r["agent"] in ("camrl", "independent")]
    for name in ABLATIONS:
        runs = PHASES[f"mt3-{name}"].runs(root)
        if runs.exists():
            records += [{**r, "agent": f"camrl-{name}"} for r in collect_eval_records([runs])]
    if any(r["agent"].startswith("camrl-") for r in records):
        result = rep.build_report(records, reps=2000, seed=0)
        rep.write_report(result, root / "minigrid" / "camrl-mt3-ablations")
        print(rep.to_markdown(result), flush=True)


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--root", type=Path, default=ROOT, help="results root (default: results/)")
    pre.add_argument("--smoke", action="store_true", help="CI preset, tiny budget, seed 0")
    own, rest = pre.parse_known_args(argv)
    default = ["mt3", "mt5-100k", "mt7-100k", "mt10-sub3", *ABLATION_PHASES]
    args = sweep.parse_args(__doc__, list(PHASES), default, rest)
    if own.smoke and own.root.resolve() == ROOT.resolve():
        print("--smoke writes runs that are no results: give --root outside results/",
              file=sys.stderr)
        return 2
    for name in args.phases:
        phase = PHASES[name]
        seeds = (0,) if own.smoke else phase.seeds

        def done(item: tuple, phase: Phase = phase) -> None:
            report(phase, own.root)
            if args.commit and not own.smoke:
                sweep.commit(own.root / phase.family, f"CAMRL: {phase.name} {item[1]} seed "
                             f"{item[2]} ({phase.steps} steps)")  # fmt: skip

        if not args.report_only:
            sweep.extend(phase.runs(own.root), phase.agents, seeds,
                         lambda a, s, p=phase: (p, a, s, str(own.root), own.smoke), _run,
                         args.jobs, done, args.seeds)  # fmt: skip
        report(phase, own.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
