"""``mtrl``: the command line. It only parses arguments (tyro) and calls library functions.

Bad input is one line on stderr and exit status 2, with nothing written: library checks raise
``UsageError``, tyro's parse errors become one (``cli_agent``), and ``main`` prints those and
``OSError`` on a path the same way (``errors.input_error``); any other exception is a bug and
keeps its traceback. Paths to write are checked before any work starts.

No ``from __future__ import annotations``: ``train_command`` annotates with a local type.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import tyro

from mtrl_bench import cli_agent, cli_datasets, cli_leaderboard, cli_sweep
from mtrl_bench.errors import UsageError, input_error, require_positive

Flat = tyro.conf.arg(name="")
DEMO_LEADERBOARD, DEMO_AGENT, DEMO_SEEDS = "minigrid-mt3/v1", "sb3-ppo", (0, 1, 2)


def list_ids(kind: Literal["all", "suites", "agents", "leaderboards"] = "all") -> None:
    """List registered suite, agent and leaderboard ids (imports no simulator or framework)."""
    from mtrl_bench import registry
    from mtrl_bench.leaderboard import leaderboards

    if kind in ("all", "suites"):
        print("suites:\n" + "\n".join(f"  {s}" for s in registry.suite_ids()))
    if kind in ("all", "agents"):
        print("agents:\n" + "\n".join(f"  {a}" for a in registry.agent_ids()))
    if kind in ("all", "leaderboards"):
        rows = [f"  {k:<22} {lb.suite:<24} {lb.steps:>12,} env steps  {lb.title}"
                for k, lb in leaderboards().items()]  # fmt: skip
        print("leaderboards:\n" + "\n".join(rows))


def train_command(argv: list[str]) -> Callable[..., None]:
    """``mtrl train`` for the agent named by ``--agent`` in ``argv`` (its ``Config`` fields
    become ``--agent-config.FIELD`` options; see ``cli_agent``)."""
    config_type = cli_agent.run_config_type(argv)

    def train(
        cfg: Annotated[config_type, Flat],
        agent_config_file: Path | None = None,
        seeds: tuple[int, ...] = (),
        runs_dir: Path = Path("runs"),
        jobs: int = 1,
    ) -> None:
        """Train and evaluate one agent on one suite; finished runs are skipped, others resume.

        Args:
            agent_config_file: Agent hyperparameters over the preset's (TOML: field = value).
            seeds: Run these seeds (a sweep) instead of --seed.
            runs_dir: Root of the run directories.
            jobs: Runs in parallel (processes).
        """
        from mtrl_bench.runner import sweep

        base = cli_agent.run_config(cfg)
        paths = sweep(base, [base.agent], seeds or (base.seed,), runs_dir, jobs=jobs)
        print("\n".join(str(p) for p in paths))

    return train


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
    from mtrl_bench.evaluation import evaluate as run_eval
    from mtrl_bench.registry import get_agent, get_suite
    from mtrl_bench.results import read_run_config

    config = read_run_config(run_dir)
    suite, spec = get_suite(config["suite"]), get_agent(config["agent"])
    suite.split_tasks(split)
    require_positive("episodes", episodes)
    if seed < 0:
        raise UsageError(f"seed must be non-negative, got {seed}")
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
    from mtrl_bench.results import check_writable, collect_eval_records

    require_positive("reps", reps)
    if out is not None:
        check_writable(out, "output directory")
    if not (records := collect_eval_records(runs)):
        raise UsageError(f"no evaluation records to report under {', '.join(map(str, runs))}")
    result = rep.build_report(records, reps=reps, seed=seed)
    if out is not None:
        rep.write_report(result, out)
    print(rep.to_markdown(result))


def check(suite: Annotated[str, tyro.conf.Positional], steps: int = 200) -> None:
    """Run the contract checks on a suite (check_env per task, VectorEnv contract, seeding)."""
    from mtrl_bench.checks import check_suite
    from mtrl_bench.registry import get_suite

    require_positive("steps", steps)
    for line in check_suite(get_suite(suite), steps=steps):
        print(f"ok  {line}")


def demo(
    leaderboard: str = DEMO_LEADERBOARD,
    agent: str = DEMO_AGENT,
    seeds: tuple[int, ...] = DEMO_SEEDS,
    runs_dir: Path = Path("runs/demo"),
    out: Path = Path("results/demo"),
    jobs: int = 2,
) -> None:
    """The main job: an agent onto a leaderboard, ranked against every baseline, and the site.

    Trains and evaluates the agent exactly as the leaderboard's definition says (SB3 PPO on
    MiniGrid MT3 at the paper's budget by default: 3 seeds x 1.2M env steps), writes its
    result bundle, prints its rank against the committed baseline bundles, then builds the
    static leaderboard site from the committed bundles plus this run's.

    Args:
        leaderboard: Leaderboard id (`mtrl list --kind leaderboards`).
        agent: Agent id to submit.
        seeds: Training seeds.
        runs_dir: Where the run directories go (finished runs are reused).
        out: Where the bundle (bundles/) and the site (site/) go.
        jobs: Runs in parallel.
    """
    from mtrl_bench.leaderboard import get_leaderboard
    from mtrl_bench.results import check_writable
    from mtrl_bench.site import page_name

    check_writable(out, "output directory")
    if not seeds:
        raise UsageError("seeds: give at least one seed")
    lb = get_leaderboard(leaderboard)
    mine = out / "bundles" / page_name(lb) / f"{cli_leaderboard._safe(agent)}-demo.json"
    cli_leaderboard.submit(lb.key, agent, seeds=seeds, runs_dir=runs_dir, out=mine, jobs=jobs,
                           name=f"{agent} (demo run)")  # fmt: skip
    cli_leaderboard.compare(lb.key, bundle=mine)
    committed = cli_leaderboard.committed_bundles()
    cli_leaderboard.leaderboard((committed, out / "bundles"), out / "site")


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
    from mtrl_bench.results import check_writable

    check_writable(out, "output directory")
    cfg = tr.TransferConfig(suite, agent, preset, steps, seeds, episodes, chunk, tasks)
    paths = tr.multitask_row(cfg, out) if multitask else tr.transfer_matrix(cfg, out)
    print("\n".join(map(str, paths)))


def commands(argv: list[str]) -> dict[str, Callable[..., None]]:
    train = train_command(argv[1:] if argv[:1] == ["train"] else [])
    return {
        "list": list_ids, "train": train, "eval": evaluate, "report": report, "check": check,
        "demo": demo, "transfer": transfer, "submit": cli_leaderboard.submit,
        "compare": cli_leaderboard.compare, "verify": cli_leaderboard.verify,
        "leaderboard": cli_leaderboard.leaderboard, "datasets": cli_datasets.datasets,
        "sweep": cli_sweep.sweep_command(argv[1:] if argv[:1] == ["sweep"] else []),
    }  # fmt: skip


def main(args: list[str] | None = None) -> int:
    argv = sys.argv[1:] if args is None else list(args)
    try:
        with cli_agent.one_line_parse_errors():
            table = commands(argv)
            status = tyro.extras.subcommand_cli_from_dict(
                table, prog="mtrl", args=cli_sweep.tyro_argv(argv)
            )
    except BrokenPipeError:  # `mtrl ... | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except (UsageError, OSError) as err:
        if (message := input_error(err)) is None:
            raise  # a bug, not bad input: keep the traceback
        print(f"error: {message}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0  # `mtrl sweep`: 1 if a run failed


if __name__ == "__main__":
    sys.exit(main())
