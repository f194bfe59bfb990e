"""The leaderboard subcommands of ``mtrl``: ``submit``, ``compare``, ``verify``, ``leaderboard``.

Each only parses (tyro, from the signatures and docstrings below) and calls the library:
``submit`` (runs -> bundle), ``ranking`` (ranks, tie groups, terminal text), ``verify`` and
``site``. Bad input raises ``UsageError``, which ``mtrl``'s ``main`` prints as one line.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated

import tyro

from mtrl_bench.errors import UsageError, require_positive


def _safe(name: str) -> str:
    """A file name from an agent name (ids like ``pkg.mod:attr`` included)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "entry"


def baseline_bundles(page: str) -> list[Path]:
    """The committed baseline bundles of leaderboard page ``<id>-v<N>``."""
    folder = resources.files("mtrl_bench.leaderboards").joinpath("bundles", page)
    if not folder.is_dir():
        return []
    return sorted(Path(str(p)) for p in folder.iterdir()
                  if p.name.endswith(".json") and not p.name.endswith(".verify.json"))  # fmt: skip


def committed_bundles() -> Path:
    """The folder of the committed baseline bundles (one subfolder per leaderboard)."""
    return Path(str(resources.files("mtrl_bench.leaderboards").joinpath("bundles")))


def _check_out(out: Path) -> None:
    """A bundle path we can write: not a folder, in a folder that can be created or written."""
    from mtrl_bench.results import check_writable

    if out.is_dir():
        raise UsageError(f"--out {out} exists and is not a file")
    check_writable(out.parent, "--out folder")


def submit(
    leaderboard: str,
    agent: str | None = None,
    from_runs: tuple[Path, ...] = (),
    preset: str = "default",
    seeds: tuple[int, ...] = (),
    runs_dir: Path = Path("runs"),
    out: Path | None = None,
    name: str = "",
    version: str = "",
    url: str = "",
    description: str = "",
    jobs: int = 1,
) -> Path:
    """Train and evaluate an agent exactly as a leaderboard says, then write its result bundle.

    Args:
        leaderboard: Leaderboard id, e.g. minigrid-mt3/v1 (an id without /vN: its latest).
        agent: Registered agent id, an entry point, or package.module:attr of your own AgentSpec
            (transfer leaderboards: a selection strategy, with --from-runs).
        from_runs: Instead of training: existing run directories (or folders of them) to bundle.
        preset: The agent's hyperparameter preset.
        seeds: Seeds to run (default: 0 .. min_seeds - 1 of the leaderboard).
        runs_dir: Root of the run directories (finished runs are reused, others resume).
        out: Bundle path (default: bundles/<leaderboard>-v<N>/<name>.json).
        name: Entry name on the board (default: the agent id).
        version: Entry version (default: mtrl-bench's version and the commits of the runs).
        url: Where to read about the agent.
        description: One paragraph about the agent.
        jobs: Runs in parallel (processes).
    """
    from mtrl_bench import bundle
    from mtrl_bench import submit as lib
    from mtrl_bench.leaderboard import get_leaderboard
    from mtrl_bench.ranking import fmt_interval
    from mtrl_bench.site import page_name

    lb = get_leaderboard(leaderboard)
    require_positive("jobs", jobs)
    if (agent is None) == (not from_runs) and lb.kind != "transfer":
        raise UsageError("give exactly one of --agent (train and evaluate) or --from-runs DIR")
    meta = {"name": name, "version": version, "url": url, "description": description}
    target = out or Path("bundles") / page_name(lb) / f"{_safe(name or agent or 'entry')}.json"
    _check_out(target)
    if lb.kind == "transfer":  # entries are selection strategies on the stored matrices
        from mtrl_bench.transfer_bundle import from_transfer_runs

        if agent is None or len(from_runs) != 1:
            raise UsageError(f"{lb.key} is a transfer leaderboard: give --agent STRATEGY and one "
                             f"--from-runs folder of matrices (e.g. {lb.matrix})")  # fmt: skip
        b = from_transfer_runs(lb, from_runs[0], agent, **meta)
    elif from_runs:
        b = lib.from_runs(lb, list(from_runs), **meta)
        target = out or target.with_name(f"{_safe(b['agent']['name'])}.json")
    else:
        assert agent is not None
        b = lib.submit(lb, agent, seeds=seeds or tuple(range(lb.min_seeds)), runs_dir=runs_dir,
                       preset=preset, jobs=jobs, **meta)  # fmt: skip
        target = out or target.with_name(f"{_safe(b['agent']['name'])}.json")
    path = bundle.write(b, target)
    summary = b["summary"][lb.primary_protocol]
    metric = fmt_interval(summary[lb.primary_metric])
    print(f"{b['agent']['name']} on {lb.key}: {lb.primary_metric} {metric} over "
          f"{summary['n_seeds']} seeds")  # fmt: skip
    print(f"bundle: {path}")
    return path


def compare(
    leaderboard: str,
    agent: str | None = None,
    bundle: Path | None = None,
    baselines: tuple[Path, ...] = (),
    preset: str = "default",
    seeds: tuple[int, ...] = (),
    runs_dir: Path = Path("runs"),
    out: Path | None = None,
    jobs: int = 1,
) -> None:
    """Submit an agent (or take its bundle) and rank it against every baseline of a leaderboard.

    Prints the ranked table (IQM with CI, tie groups), P(agent > each baseline) with CI, and the
    agent's per-task scores.

    Args:
        leaderboard: Leaderboard id, e.g. toy-goal-line/v1.
        agent: Agent to train and evaluate (as in `mtrl submit --agent`).
        bundle: Instead of training: an existing bundle of this leaderboard.
        baselines: Bundle folders to rank against (default: the committed baseline bundles).
        preset: The agent's hyperparameter preset.
        seeds: Seeds to run (default: 0 .. min_seeds - 1).
        runs_dir: Root of the run directories.
        out: Where to write the agent's bundle (default: bundles/<leaderboard>-v<N>/<agent>.json).
        jobs: Runs in parallel (processes).
    """
    from mtrl_bench import bundle as bundles
    from mtrl_bench import ranking
    from mtrl_bench.leaderboard import get_leaderboard
    from mtrl_bench.site import find_bundles, page_name

    lb = get_leaderboard(leaderboard)
    if (agent is None) == (bundle is None):
        raise UsageError("give exactly one of --agent (train and evaluate) or --bundle FILE")
    if bundle is None:
        assert agent is not None
        bundle = submit(lb.key, agent, preset=preset, seeds=seeds, runs_dir=runs_dir, out=out,
                        jobs=jobs)  # fmt: skip
    mine, mine_lb = bundles.load(bundle)
    if mine_lb.key != lb.key:
        raise UsageError(f"bundle {bundle} is for {mine_lb.key}, not {lb.key}")
    others = find_bundles(baselines) if baselines else baseline_bundles(page_name(lb))
    entries = [mine]
    for path in others:
        if path.resolve() == Path(bundle).resolve():
            continue
        b, other_lb = bundles.load(path)
        if other_lb.key == lb.key and b["agent"]["name"] != mine["agent"]["name"]:
            entries.append(b)
    if len(entries) == 1:
        print(f"(no baseline bundles for {lb.key} yet: the table has only your entry)")
    print(ranking.comparison_text(ranking.rank(entries, lb), lb, mine["agent"]["name"]))


def verify(bundle: Annotated[Path, tyro.conf.Positional], checkpoints: Path,
           tolerance: float = 0.02) -> None:
    """Re-evaluate a bundle's checkpoints under its leaderboard's protocol and mark it verified.

    Args:
        bundle: The bundle to verify.
        checkpoints: Folder with one run directory per seed (<seed>/config.json, <seed>/ckpt/).
        tolerance: Largest accepted difference of a protocol's mean normalised score.
    """
    from mtrl_bench import verify as lib

    record = lib.verify(bundle, checkpoints, tolerance=tolerance, progress=True)
    for name, v in record["protocols"].items():
        print(f"{name}: bundle {v['bundle_mean']:.4f}, re-evaluated {v['reevaluated_mean']:.4f}"
              f" (|diff| {v['abs_diff']:.4f}, largest per task {v['max_task_abs_diff']:.4f})")
    if not record["passed"]:  # a finding, not bad input: exit status 1
        print(f"{bundle}: NOT verified (a mean differs by more than {tolerance})")
        raise SystemExit(1)
    print(f"{bundle}: verified")


def leaderboard(bundles: tuple[Path, ...] = (), out: Path = Path("leaderboard-site")) -> Path:
    """Write the static leaderboard site (works from file://, no server).

    Args:
        bundles: Bundle files or folders (default: the committed baseline bundles).
        out: Output folder; open <out>/index.html.
    """
    from mtrl_bench.site import build_site

    index = build_site(list(bundles) or [committed_bundles()], out)
    print(f"open {index.resolve().as_uri()}")
    return index
