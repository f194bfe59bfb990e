"""``mtrl``: the command line. It only parses arguments (tyro) and calls library functions.

Bad input raises ``UsageError``; ``main`` prints it as one line and exits with status 2.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import tyro

from mtrl_bench.errors import UsageError, require_positive
from mtrl_bench.runner import RunConfig

Flat = tyro.conf.arg(name="")
DEMO_SUITE, DEMO_SEEDS, DEMO_STEPS = "minigrid/mt3-v1", (0, 1, 2), 400_000
DEMO_AGENTS = (("random", "default"), ("sb3-ppo", "default"))  # (agent, preset)


def list_ids(kind: Literal["all", "suites", "agents"] = "all") -> None:
    """List registered suite and agent ids (imports no simulator or framework)."""
    from mtrl_bench import registry

    if kind in ("all", "suites"):
        print("suites:\n" + "\n".join(f"  {s}" for s in registry.suite_ids()))
    if kind in ("all", "agents"):
        print("agents:\n" + "\n".join(f"  {a}" for a in registry.agent_ids()))


def train(
    cfg: Annotated[RunConfig, Flat],
    seeds: tuple[int, ...] = (),
    runs_dir: Path = Path("runs"),
    jobs: int = 1,
) -> None:
    """Train and evaluate one agent on one suite; finished runs are skipped, others resume.

    Args:
        seeds: Run these seeds (a sweep) instead of --seed.
        runs_dir: Root of the run directories.
        jobs: Runs in parallel (processes).
    """
    from mtrl_bench.runner import sweep

    paths = sweep(cfg, [cfg.agent], seeds or (cfg.seed,), runs_dir, jobs=jobs)
    print("\n".join(str(p) for p in paths))


def evaluate(
    run_dir: Path,
    split: str = "train",
    episodes: int = 16,
    seed: int = 0,
    deterministic: bool = False,
) -> None:
    """Evaluate a trained run directory on a split and print per-task results.

    Args:
        run_dir: A run directory (runs/<suite>/<agent>/<seed>).
        split: train (the mt protocol) or test (the zero_shot protocol).
        episodes: Episodes per task.
        seed: Evaluation seed (env seeds are disjoint from training seeds).
        deterministic: Greedy actions instead of sampling.
    """
    import json

    from mtrl_bench.evaluation import evaluate as run_eval
    from mtrl_bench.registry import get_agent, get_suite

    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise UsageError(f"{run_dir} is not a run directory (no config.json)")
    config = json.loads(config_path.read_text())
    suite, spec = get_suite(config["suite"]), get_agent(config["agent"])
    suite.split_tasks(split)
    require_positive("episodes", episodes)
    policy = spec.load(run_dir, suite)
    result = run_eval(
        policy, suite, split, episodes, seed, deterministic=deterministic, progress=True
    )
    print("| task | success | return | score |\n|---|---|---|---|")
    for t in result.tasks:
        print(f"| {t.task} | {t.success:.3f} | {t.mean_return:.3f} | {t.score:.3f} |")
    print(f"mean success {result.success:.3f}, mean score {result.score:.3f}")


def report(
    runs: tuple[Path, ...] = (Path("runs"),),
    out: Path | None = None,
    reps: int = 2000,
    seed: int = 0,
) -> None:
    """Tables (Markdown, CSV, LaTeX) and a plot from the evaluation records under --runs.

    Args:
        runs: Run roots or run directories to read.
        out: Write table.md/.csv/.tex, per_task.md and report.png here (default: print only).
        reps: Bootstrap replicates for the 95% CIs.
        seed: Bootstrap seed.
    """
    from mtrl_bench import report as rep
    from mtrl_bench.results import collect_eval_records

    require_positive("reps", reps)
    result = rep.build_report(collect_eval_records(runs), reps=reps, seed=seed)
    if out is not None:
        rep.write_report(result, out)
    print(rep.to_markdown(result))


def check(suite: Annotated[str, tyro.conf.Positional], steps: int = 200) -> None:
    """Run the contract checks on a suite (check_env per task, VectorEnv contract, seeding)."""
    from mtrl_bench.checks import check_suite
    from mtrl_bench.registry import get_suite

    for line in check_suite(get_suite(suite), steps=steps):
        print(f"ok  {line}")


def demo(
    runs_dir: Path = Path("runs/demo"),
    out: Path = Path("results/demo"),
    steps: int = DEMO_STEPS,
    seeds: tuple[int, ...] = DEMO_SEEDS,
    eval_episodes: int = 16,
    jobs: int = 2,
) -> None:
    """The main job: random vs SB3 PPO (one shared model, task one-hot) on MiniGrid MT3.

    Args:
        runs_dir: Where the run directories go.
        out: Where the table and plot go.
        steps: Training budget per run (env steps over all tasks).
        seeds: Training seeds.
        eval_episodes: Evaluation episodes per task.
        jobs: Runs in parallel.
    """
    from mtrl_bench.runner import sweep

    base = RunConfig(suite=DEMO_SUITE, agent="random", steps=steps, eval_episodes=eval_episodes)
    for agent, preset in DEMO_AGENTS:
        sweep(replace(base, agent=agent, preset=preset), [agent], seeds, runs_dir, jobs=jobs)
    report(runs=(runs_dir,), out=out)


def transfer(
    suite: str,
    agent: str = "ppo",
    preset: str = "sb3",
    steps: int = 100_000,
    seeds: tuple[int, ...] = (0, 1, 2),
    episodes: int = 4,
    chunk: int = 20,
    tasks: tuple[int, ...] = (),
    multitask: bool = False,
    out: Path = Path("results/transfer"),
) -> None:
    """Source x target transfer matrix (protocol ``transfer`` v1) on a contextual JAX suite.

    Args:
        suite: A JAX contextual suite, e.g. control-jax/cartpole-masscart-v1.
        agent: ppo, or ppo-context (the normalised context in the observation).
        preset: PPO preset (sb3 = stable-baselines3's defaults, fast, ci).
        steps: Training env steps per source (with --multitask: in total).
        seeds: Training seeds (one matrix each).
        episodes: Greedy evaluation episodes per target.
        chunk: Sources trained together (x seeds) in one vmapped program.
        tasks: Task indices of the context grid (default: every task).
        multitask: Train MBTL's multi-task baseline row instead of the matrix.
        out: Results directory.
    """
    from mtrl_bench import transfer as tr

    cfg = tr.TransferConfig(suite, agent, preset, steps, seeds, episodes, chunk, tasks)
    paths = tr.multitask_row(cfg, out) if multitask else tr.transfer_matrix(cfg, out)
    print("\n".join(map(str, paths)))


COMMANDS = {
    "list": list_ids, "train": train, "eval": evaluate, "report": report, "check": check,
    "demo": demo, "transfer": transfer,
}  # fmt: skip


def main(args: list[str] | None = None) -> int:
    try:
        tyro.extras.subcommand_cli_from_dict(COMMANDS, prog="mtrl", args=args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
