"""The MBTL report: the source-selection algorithm of ``agents/mbtl.py`` run offline on stored
transfer matrices, summarised as a table, curves, plots and sample-efficiency multipliers; and
its command line.

``python -m mtrl_bench.agents.mbtl_report --matrices seed*/transfer.json --multitask ...
--out DIR`` loads one ``kind: transfer_matrix`` file per RL seed (``mtrl_bench.transfer``), plus
optional ``kind: multitask_row`` files (MBTL's multi-task baselines, with their own sample
counts), runs every selector and reference of ``mbtl.select_all`` on each seed's matrix and
writes under ``DIR``: ``summary.json`` (per method the mean curve over k = 1..K, its average
over k with a stratified-bootstrap 95 % CI over seeds, the value at k = K; the selection orders;
the multipliers), ``table.md``, ``curves.csv``, ``curves_k.png`` and ``curves_samples.png``.
Every input is checked before anything is written; bad input is one line on stderr, exit 2.

- **Sample-efficiency multiplier** (MBTL's Fig. 1/5: how many times fewer samples MBTL needs
  to reach a baseline's performance): baseline samples / (k* x samples per source), where k* is
  the first k with MBTL's mean curve >= the baseline's value (None where it never gets there).
- **theta** defaults to MBTL's per-domain value for the suite (``mbtl.THETA``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtrl_bench.agents.mbtl import BETAS, GPS, THETA, check_budget, check_matrix, select_all
from mtrl_bench.errors import UsageError


def multiplier(curve_k: np.ndarray, per_source: float, value: float,
               samples: float) -> float | None:  # fmt: skip
    """How many times fewer samples the curve needs to reach ``value`` than a baseline that
    reaches it with ``samples``: samples / (k* x per_source), k* the first k reaching it."""
    reached = np.nonzero(curve_k >= value - 1e-12)[0]
    return None if len(reached) == 0 else float(samples / ((reached[0] + 1) * per_source))


def load_matrix(path: Path) -> tuple[np.ndarray, dict]:
    """``scores`` (sources x targets) and the metadata of a ``transfer.json`` file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read transfer matrix {path}: {e}") from None
    if data.get("kind") not in ("transfer_matrix", "multitask_row") or "scores" not in data:
        raise UsageError(f"{path} is not a transfer matrix or multi-task row (kind/scores missing)")
    return np.asarray(data["scores"], dtype=float), data


def report(matrices: Sequence[Path], multitask: Sequence[Path], out: Path, *,
           theta: float | None = None, budget: int | None = None, beta: str = "sqrt-log",
           seed: int = 0, gp: str = "sound", command: str | None = None) -> dict:  # fmt: skip
    """Offline selection on one stored matrix per RL seed; writes ``summary.json``, ``table.md``,
    ``curves.csv``, ``curves_k.png`` and ``curves_samples.png`` under ``out``. Every input is
    checked before anything is written."""
    from mtrl_bench import stats
    from mtrl_bench.results import atomic_write_json, atomic_write_text, provenance

    if not matrices:
        raise UsageError("give at least one transfer matrix (one per RL seed)")
    loaded = [load_matrix(p) for p in matrices]
    meta = loaded[0][1]
    n = check_matrix(loaded[0][0])
    for (m, d), p in zip(loaded, matrices, strict=True):
        if d["kind"] != "transfer_matrix" or m.shape != (n, n) or d["suite"] != meta["suite"]:
            raise UsageError(f"{p}: every matrix must be a {n} x {n} transfer_matrix of "
                             f"{meta['suite']}")  # fmt: skip
        if d["sources"] != d["targets"] or d["targets"] != meta["targets"]:
            raise UsageError(f"{p}: offline MBTL needs the same grid as sources and targets")
    rows = [load_matrix(p) for p in multitask]
    for (m, d), p in zip(rows, multitask, strict=True):
        if d["kind"] != "multitask_row" or m.shape != (1, n) or "steps" not in d:
            raise UsageError(f"{p}: a multi-task baseline must be a 1 x {n} multitask_row "
                             "with its 'steps'")  # fmt: skip
    if theta is None:
        prefix = meta["suite"].replace("-jax/", "/").rsplit("-", 2)[0]
        theta = next((v for k, v in THETA.items() if prefix.startswith(k)), None)
        if theta is None:
            raise UsageError(f"no default theta for {meta['suite']}; pass --theta")
    budget = n if budget is None else budget
    check_budget(n, budget)
    per_source = float(meta["steps_per_source"])

    if gp not in GPS:
        raise UsageError(f"unknown gp {gp!r}; allowed: {', '.join(GPS)}")
    selections = [select_all(m, budget, theta=theta, beta=beta, seed=seed, gp=gp)
                  for m, _ in loaded]  # fmt: skip
    methods = list(selections[0].curves)
    curves = {k: np.stack([s.curves[k] for s in selections]) for k in methods}  # (seeds, K)
    samples = {k: per_source * np.arange(1, budget + 1) for k in methods}
    samples["independent"] = samples["oracle"] = np.full(budget, per_source * n)
    mt_groups: dict[str, list[tuple[float, float]]] = {}
    for m, d in rows:  # one row per (agent, seed): grouped by agent
        mt_groups.setdefault(f"multitask:{d['agent']}", []).append((m.mean(), float(d["steps"])))
    for name, vals in mt_groups.items():
        curves[name] = np.repeat(np.array([[v] for v, _ in vals]), budget, axis=1)
        samples[name] = np.full(budget, np.mean([s for _, s in vals]))

    mean_mbtl = curves["mbtl"].mean(axis=0)
    baselines = {"independent": (curves["independent"].mean(), per_source * n)}
    baselines |= {k: (curves[k].mean(), samples[k][0]) for k in mt_groups}
    summary = {
        "schema": 1, "kind": "mbtl_report", "suite": meta["suite"], "agent": meta["agent"],
        "steps_per_source": per_source, "contexts": n, "budget": budget, "theta": theta,
        "beta": beta, "gp": gp, "seed": seed, "command": command,
        "rl_seeds": [d["seed"] for _, d in loaded],
        "matrices": [str(p) for p in matrices], "multitask": [str(p) for p in multitask],
        "orders": {k: [s.orders[k] for s in selections] for k in selections[0].orders},
        "methods": {}, "multiplier": {}, "multiplier_reference": {}, **provenance(),
    }  # fmt: skip
    for name, c in curves.items():
        avg = c.mean(axis=1)[:, None]  # average over k, per seed
        lo, hi = stats.stratified_bootstrap_ci(avg, np.mean, seed=seed)
        summary["methods"][name] = {"average_over_k": float(avg.mean()), "ci": [lo, hi],
                                    "final": float(c[:, -1].mean()),
                                    "curve": c.mean(axis=0).tolist()}  # fmt: skip
    for name, (value, cost) in baselines.items():
        summary["multiplier"][name] = multiplier(mean_mbtl, per_source, value, cost)
        if "mbtl-reference" in curves:
            summary["multiplier_reference"][name] = multiplier(
                curves["mbtl-reference"].mean(axis=0), per_source, value, cost
            )

    lines = [f"# MBTL on {meta['suite']} ({meta['agent']}, {per_source:g} steps per source, "
             f"{len(loaded)} RL seeds, K = {budget}, theta = {theta}, beta = {beta}, "
             f"gp = {gp})", "", *([f"Made by `{command}`.", ""] if command else []),
             "| method | average over k [95 % CI] | minus random | at k = K | samples at k = K |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    rand = summary["methods"]["random"]["average_over_k"]
    for name, m in summary["methods"].items():
        lines.append(f"| {name} | {m['average_over_k']:.4f} [{m['ci'][0]:.4f}, {m['ci'][1]:.4f}]"
                     f" | {m['average_over_k'] - rand:+.4f} | {m['final']:.3f} | "
                     f"{samples[name][-1]:.3g} |")  # fmt: skip
    lines += ["", "Sample-efficiency multiplier of MBTL (baseline samples / MBTL samples to reach "
              "the baseline's performance; with the reference GP in brackets):", ""]  # fmt: skip

    def times(x: float | None) -> str:
        return "not reached" if x is None else f"{x:.1f}x"

    for name, x in summary["multiplier"].items():
        ref = summary["multiplier_reference"]
        lines.append(f"- vs {name}: {times(x)}" + (f" ({times(ref[name])})" if ref else ""))
    csv = ["method,k,samples,mean,min,max"] + [
        f"{name},{k + 1},{samples[name][k]:g},{c[:, k].mean():.6f},{c[:, k].min():.6f},"
        f"{c[:, k].max():.6f}" for name, c in curves.items() for k in range(budget)]  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "curves.csv", "\n".join(csv) + "\n")
    _plot(curves, samples, out, summary)
    return summary


def _plot(curves: dict[str, np.ndarray], samples: dict[str, np.ndarray], out: Path,
          summary: dict) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for axis, name in (("k", "curves_k.png"), ("samples", "curves_samples.png")):
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for method, c in curves.items():
            x = np.arange(1, c.shape[1] + 1) if axis == "k" else samples[method]
            flat = method in ("oracle", "independent") or method.startswith("multitask")
            if flat and axis == "samples":  # a single point: its cost and its value
                ax.scatter([x[0]], [c.mean()], label=method, zorder=3)
                continue
            ax.plot(x, c.mean(axis=0), label=method, ls="--" if flat else "-")
            ax.fill_between(x, c.min(axis=0), c.max(axis=0), alpha=0.15)
        ax.set(xlabel="trained source contexts k" if axis == "k" else "training samples",
               ylabel="generalized performance", title=summary["suite"])  # fmt: skip
        if axis == "samples":
            ax.set_xscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MBTL source selection on stored matrices")
    parser.add_argument("--matrices", nargs="+", type=Path, required=True,
                        help="transfer.json files, one per RL seed")  # fmt: skip
    parser.add_argument("--multitask", nargs="*", type=Path, default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--theta", type=float, default=None)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--beta", default="sqrt-log", choices=BETAS)
    parser.add_argument(
        "--gp",
        default="sound",
        choices=list(GPS),
        help="MBTL's GP (agents/mbtl.py); 'reference' is the released code's",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    here = Path.cwd().resolve()

    def rel(p: Path) -> str:  # repository-relative paths keep the command reproducible
        return str(p.resolve().relative_to(here)) if p.resolve().is_relative_to(here) else str(p)

    command = " ".join(["python -m mtrl_bench.agents.mbtl_report --matrices",
                        *map(rel, args.matrices), *(["--multitask", *map(rel, args.multitask)]
                                                    if args.multitask else []),
                        "--out", rel(args.out),
                        *(["--theta", str(args.theta)] if args.theta is not None else []),
                        *(["--budget", str(args.budget)] if args.budget is not None else []),
                        *(["--beta", args.beta] if args.beta != "sqrt-log" else []),
                        *(["--gp", args.gp] if args.gp != "sound" else []),
                        *(["--seed", str(args.seed)] if args.seed else [])])  # fmt: skip
    try:
        summary = report(args.matrices, args.multitask, args.out, theta=args.theta,
                         budget=args.budget, beta=args.beta, seed=args.seed, gp=args.gp,
                         command=command)  # fmt: skip
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((args.out / "table.md").read_text())
    return 0 if summary else 1


if __name__ == "__main__":
    sys.exit(main())
