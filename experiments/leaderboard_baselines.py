"""The committed baseline entries of every leaderboard, built from committed run files.

    python -m experiments.leaderboard_baselines            # run what is missing, rebuild all
    python -m experiments.leaderboard_baselines --no-train # bundles and site from runs only

- ``toy-goal-line/v1``: ``random``, ``mtppo``, ``moore`` and ``moe`` (preset ``ci``) and
  ``sb3-ppo`` (its default preset) at the leaderboard's budget, 3 seeds; the runs go to
  ``results/leaderboards/runs`` (resumable; finished runs are skipped).
- ``pendulum-dt-transfer/v1``: MBTL and its baselines on the committed Pendulum (dt) matrices
  (``mtrl submit --leaderboard pendulum-dt-transfer/v1 --agent mbtl --from-runs ...``).
- ``minigrid-mt3/v1`` .. ``minigrid-mt7/v1``: MOORE, MoE and MTPPO from the MiniGrid
  reproduction's runs (``results/minigrid/runs``), once an agent has ``min_seeds`` finished
  seeds at the paper budget; ``random`` (evaluation only) and ``sb3-ppo`` (trained with
  ``mtrl compare --leaderboard minigrid-mt3/v1 --agent sb3-ppo --runs-dir
  results/leaderboards/runs``) from ``results/leaderboards/runs``.
- ``metaworld-mt10-cpu/v1``: ``random``, MTSAC, MT-MH-SAC and MOORE-SAC from the Meta-World
  sweep's runs (``python -m experiments.metaworld_sac --phases mt10``, in
  ``results/metaworld/runs``), once an agent has ``min_seeds`` finished seeds.

Every bundle is made with ``mtrl_bench.submit.from_runs`` (what ``mtrl submit --from-runs``
calls), written to ``leaderboards/bundles/<id>-v<N>/<agent>.json``, and the site is rebuilt into
``results/leaderboards/site`` (open ``index.html``). No number is typed anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtrl_bench import bundle as bundles
from mtrl_bench import submit
from mtrl_bench.errors import UsageError
from mtrl_bench.leaderboard import get_leaderboard
from mtrl_bench.site import build_site, page_name
from mtrl_bench.transfer_bundle import from_transfer_runs

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "leaderboards" / "runs"
BUNDLES = ROOT / "leaderboards" / "bundles"
SITE = ROOT / "results" / "leaderboards" / "site"
TOY = (("random", "default"), ("mtppo", "ci"), ("moore", "ci"), ("moe", "ci"),
       ("sb3-ppo", "default"))  # fmt: skip
MINIGRID = {"minigrid-mt3/v1": "mt3-v1", "minigrid-mt5/v1": "mt5-v1", "minigrid-mt7/v1": "mt7-v1"}
METAWORLD = {"metaworld-mt10-cpu/v1": ("mt10-v1", ("random", "mtsac", "mtmh-sac", "moore-sac"))}
TRANSFER = {"pendulum-dt-transfer/v1": ("mbtl", "mbtl-reference", "random", "pseudogreedy",
                                        "equidistant", "sequential-oracle", "oracle")}  # fmt: skip
DESCRIPTIONS = {
    "random": "uniform random actions (the lower reference point)",
    "mtppo": "multi-task PPO with a shared network and task-specific output heads",
    "moore": "MOORE: mixture of orthogonal experts (Gram-Schmidt), PPO (Hendawy et al., 2024)",
    "moe": "mixture of experts without orthogonality, PPO (MOORE's MoE baseline)",
    "sb3-ppo": "Stable-Baselines3 PPO, one policy shared by all tasks, task id one-hot input",
    "mtsac": "multi-task SAC, one network with the task id one-hot input, per-task temperature "
             "(Meta-World+'s settings)",
    "mtmh-sac": "multi-task multi-head SAC: shared trunk, one output head per task",
    "moore-sac": "MOORE's orthogonal experts (Gram-Schmidt) in SAC's actor and critics "
                 "(Hendawy et al., 2024)",
    "mbtl": "MBTL: GP model of training performance + linear generalisation gap, UCB-style "
            "acquisition (Cho et al., NeurIPS 2024)",
    "mbtl-reference": "MBTL with the reference code's GP (zero mean, raw units, given theta)",
    "pseudogreedy": "midpoint first, then split the widest gap (MBTL's temporal heuristic)",
    "equidistant": "k evenly spaced sources for each k (coarse to fine)",
    "sequential-oracle": "privileged: greedy on the true transfer matrix (an upper reference)",
    "oracle": "privileged: every source trained, each target uses its best (the upper bound)",
}


def _write(bundle: dict, path: Path) -> Path | None:
    """Write ``bundle`` unless the committed one at ``path`` carries checkpoint hashes that this
    rebuild cannot see (checkpoints are git-ignored, so a fresh clone has none): then the
    committed bundle stays, and ``None`` is returned."""
    if path.exists() and not bundle["checkpoints"]:
        import json

        if json.loads(path.read_text()).get("checkpoints"):
            print(f"kept {path.relative_to(ROOT)} (its checkpoints are not in this checkout)")
            return None
    return bundles.write(bundle, path)


def _finished(folder: Path, min_seeds: int) -> list[Path]:
    done = sorted(p.parent for p in folder.glob("*/DONE"))
    return done if len(done) >= min_seeds else []


def build(train: bool, force: bool = False) -> list[Path]:
    written: list[Path | None] = []
    lb = get_leaderboard("toy-goal-line/v1")
    for agent, preset in TOY:
        if train:
            b = submit.submit(lb, agent, seeds=range(lb.min_seeds), runs_dir=RUNS, preset=preset,
                              progress=False, description=DESCRIPTIONS[agent])  # fmt: skip
        elif runs := _finished(RUNS / lb.suite / agent, lb.min_seeds):
            b = submit.from_runs(lb, runs, description=DESCRIPTIONS[agent])
        else:
            continue
        written.append(_write(b, BUNDLES / page_name(lb) / f"{agent}.json"))
    for key, suite in MINIGRID.items():
        lb = get_leaderboard(key)
        sources = {a: ROOT / "results" / "minigrid" / "runs" / "minigrid-jax" / suite / a
                   for a in ("moore", "moe", "mtppo")}  # fmt: skip
        sources["random"] = RUNS / lb.suite / "random"
        sources["sb3-ppo"] = RUNS / lb.suite / "sb3-ppo"  # `mtrl compare ... --agent sb3-ppo`
        if train and "random" in sources:  # evaluation only: minutes, not hours
            submit.submit(lb, "random", seeds=range(lb.min_seeds), runs_dir=RUNS, progress=False)
        for agent, folder in sources.items():
            if runs := _finished(folder, lb.min_seeds):
                b = submit.from_runs(lb, runs, description=DESCRIPTIONS[agent])
                written.append(_write(b, BUNDLES / page_name(lb) / f"{agent}.json"))
    for key, (suite, agents) in METAWORLD.items():
        lb = get_leaderboard(key)
        for agent in agents:
            folder = ROOT / "results" / "metaworld" / "runs" / "metaworld" / suite / agent
            if runs := _finished(folder, lb.min_seeds):
                b = submit.from_runs(lb, runs, description=DESCRIPTIONS[agent])
                written.append(_write(b, BUNDLES / page_name(lb) / f"{agent}.json"))
    for key, names in TRANSFER.items():  # minutes each (MBTL's GP, 100 random orders)
        lb = get_leaderboard(key)
        for strategy in names:
            path = BUNDLES / page_name(lb) / f"{strategy}.json"
            if path.exists() and not force:
                continue
            b = from_transfer_runs(lb, ROOT / lb.matrix, strategy,
                                   description=DESCRIPTIONS.get(strategy, ""))  # fmt: skip
            written.append(bundles.write(b, path))
    return [p for p in written if p is not None]


def screenshot(page_path: Path) -> Path:
    from playwright.sync_api import sync_playwright

    out = SITE.parent / "minigrid-mt3.png"
    flags = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_path.as_uri())
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-train", action="store_true", help="only bundle finished runs")
    parser.add_argument("--force", action="store_true",
                        help="rebuild the transfer bundles that exist already")  # fmt: skip
    parser.add_argument("--screenshot", action="store_true",
                        help="also save the MT3 page as results/leaderboards/minigrid-mt3.png "
                             "(Debian's chromium, headless)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        for path in build(train=not args.no_train, force=args.force):
            print(f"bundle {path.relative_to(ROOT)}")
        index = build_site([BUNDLES], SITE)
        print(f"site {index.relative_to(ROOT)}")
        if args.screenshot:
            print(f"screenshot {screenshot(SITE / 'minigrid-mt3-v1.html').relative_to(ROOT)}")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
