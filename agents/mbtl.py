"""MBTL: Model-Based Transfer Learning for contextual RL (Cho, Jayawardana, Li, Wu; NeurIPS 2024,
arXiv 2408.04498; reference code ``jhoon-cho/MBTL`` @671f0e0, ``MBTL/utils.py``), and the
source-task selection baselines it is compared with (``MBTL/collect_result.py``).

Sequential source-task selection on a 1-D context grid of N tasks (indices 0..N-1). Training on
source x gives a policy that is deployed zero-shot on every target x', scoring J(x, x')
(normalised with per-domain bounds). After k chosen sources every target uses its best one,
V_k(x') = max over chosen x of J(x, x'), and the generalized performance after k steps is the
mean of V_k over targets. MBTL is a layer over any RL algorithm: it only needs ``row(x)``, the
zero-shot performance of the policy trained on x over all targets.

- **Online and offline with the same code.** Every selector asks ``row(x)`` only for the sources it
  picks. Offline (the paper's experiments) ``row`` reads a stored transfer matrix; online it trains
  source x when asked (``mtrl_bench.transfer``). The sequential oracle and the oracle reference need
  the whole matrix by definition, so they are offline only.
- **MBTL** (``mbtl_order``): start at the midpoint; then fit a GP (ConstantKernel(1, [1e-3, 1e3]) x
  RBF(1, [1e-2, 1e2]), alpha = 0.1^2, 9 optimiser restarts, refit every step; inputs raw grid
  indices) to the observed training performance of the chosen sources, and pick the unchosen x
  maximising the acquisition a(x) = mean over x' of max(mu(x) + beta_k sigma(x) - theta |x - x'| -
  V_{k-1}(x'), 0), with theta in normalised score per index step. ``beta``: ``sqrt-log``
  (sqrt(log(k+1)), the released default ``new_ucb_beta_log``), ``zero`` (``new``), ``one``
  (``new_ucb``), ``inverse`` (1/(k+1), ``new_ucb_beta``), ``half-normal`` (a(x) averaged over 500
  draws of beta from a standard half-normal, ``new_ucb_dist``) -- k is the 0-based step, as there.
- **Baselines**: ``pseudogreedy`` (the authors' temporal-transfer heuristic: midpoint first, then
  split the widest gap between chosen points and the range ends, at 1/3 or 2/3 next to an end,
  else in the middle), ``equidistant`` (coarse-to-fine: for budget K, K evenly spaced sources --
  a new set for each K, not a sequence), ``random`` (uniform without replacement, 100 orders),
  ``sequential-oracle`` (greedy on the true matrix); references ``oracle`` (mean over targets of
  the column max: every source trained), ``independent`` (mean of the diagonal: one policy per
  target, N x the samples of one source) and multi-task rows (one policy over all contexts, with
  or without the context in the observation, given as rows with their own sample counts).
- **Sample-efficiency multiplier** (the paper's Fig. 1/5: how many times fewer samples MBTL needs
  to reach a baseline's performance): baseline samples / (k* x samples per source), where k* is
  the first k with MBTL's mean curve >= the baseline's value (None where it never gets there).

Behaviour worth knowing (the reference's too): with one or two observations the GP (zero prior
mean, length scale not identifiable from one point) predicts its highest upper bound right next to
the chosen sources, so MBTL's second pick is often a neighbour of the midpoint, and early in k it
can trail random selection on smooth matrices; it catches up as the GP gets data.

Deviations, with reasons:
- The GP's targets are what the reference fits: the running best at the chosen source after its
  step, max(J(x_l, x_l), V_{l-1}(x_l)). Its restarts are seeded (``seed + k``) so a selection is
  a deterministic function of the matrix and the seed; the reference leaves them unseeded.
- The reference's ``gap_function`` variants (``linear_estimated``, ``true``) only change its
  ``V_estimate`` bookkeeping, which none of the acquisitions above reads; they are not provided.
- Pseudogreedy moves a pick that is already chosen to the nearest free index (the reference can
  pick the same source twice on a coarse grid).
- Ties in the acquisition go to the smallest index (stable sort); the reference uses an unstable
  ``argsort``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtrl_bench.errors import UsageError

Row = Callable[[int], np.ndarray]
BETAS = ("sqrt-log", "zero", "one", "inverse", "half-normal")
SELECTORS = ("mbtl", "pseudogreedy", "equidistant", "random", "sequential-oracle")
#: theta (normalised score per index step) of MBTL's ``get_dataset_settings``, by suite prefix.
THETA = {"control/cartpole": 0.005, "control/pendulum": 0.005, "traffic/signal": 0.001,
         "traffic/eco": 0.005}  # fmt: skip
RANDOM_ORDERS = 100


def midpoint(n: int) -> int:
    """The grid index nearest the middle of the range (the lower one on a tie, as the reference)."""
    return int(np.argmin(np.abs(np.arange(n) - (n - 1) / 2)))


def _betas(beta: str, k: int, rng: np.random.Generator) -> np.ndarray:
    if beta == "half-normal":
        return np.abs(rng.standard_normal(500))
    return np.array({"sqrt-log": np.sqrt(np.log(k + 1)), "zero": 0.0, "one": 1.0,
                     "inverse": 1.0 / (k + 1)}[beta])  # fmt: skip


def acquisition(mu: np.ndarray, sigma: np.ndarray, best: np.ndarray, theta: float,
                betas: np.ndarray) -> np.ndarray:  # fmt: skip
    """a(x) = mean over targets x' (and over ``betas``) of the expected improvement
    max(mu(x) + beta sigma(x) - theta |x - x'| - best(x'), 0)."""
    idx = np.arange(len(mu))
    gap = theta * np.abs(idx[:, None] - idx[None, :])  # (source, target)
    upper = mu[None, :] + np.atleast_1d(betas)[:, None] * sigma[None, :]  # (beta, source)
    gain = np.maximum(upper[:, :, None] - gap[None] - best[None, None, :], 0.0)
    return gain.mean(axis=(0, 2))


def mbtl_order(row: Row, n: int, budget: int, *, theta: float, beta: str = "sqrt-log",
               seed: int = 0) -> list[int]:  # fmt: skip
    """MBTL's first ``budget`` sources (module docstring); ``row`` is called once per pick."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    _check_budget(n, budget)
    if beta not in BETAS:
        raise UsageError(f"unknown beta {beta!r}; allowed: {', '.join(BETAS)}")
    rng = np.random.default_rng(seed)
    order, fitted = [midpoint(n)], []
    best = np.full(n, -np.inf)
    grid = np.arange(n, dtype=float)[:, None]
    for k in range(budget):
        if k > 0:
            kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(1.0, (1e-2, 1e2))
            gp = GaussianProcessRegressor(kernel, alpha=0.1**2, n_restarts_optimizer=9,
                                          random_state=seed + k)  # fmt: skip
            with warnings.catch_warnings():  # hyperparameters at a bound: expected early on
                warnings.simplefilter("ignore")
                gp.fit(np.array(order, dtype=float)[:, None], np.array(fitted))
            mu, sigma = gp.predict(grid, return_std=True)
            score = acquisition(mu, sigma, best, theta, _betas(beta, k, rng))
            score[order] = -np.inf
            order.append(int(np.argsort(-score, kind="stable")[0]))
        x = order[k]
        best = np.maximum(best, _check_row(row(x), n, x))
        fitted.append(best[x])
    return order


def pseudogreedy_order(n: int, budget: int) -> list[int]:
    """The authors' temporal-transfer heuristic (module docstring) on grid indices 0..n-1."""
    _check_budget(n, budget)
    grid, order, ends = np.arange(n), [], [0.0, float(n - 1)]
    for k in range(budget):
        if k == 0:
            target = (n - 1) / 2
        else:
            i = int(np.argmax(np.diff(ends)))
            lo, hi = ends[i], ends[i + 1]
            first, last = i == 0, i == len(ends) - 2
            target = (2 * lo + hi) / 3 if first else (lo + 2 * hi) / 3 if last else (lo + hi) / 2
        free = [g for g in grid if g not in order]
        pick = int(min(free, key=lambda g: (abs(g - target), g)))
        order.append(pick)
        ends = sorted([*ends, float(pick)])
    return order


def equidistant_set(n: int, k: int) -> list[int]:
    """Coarse-to-fine: ``k`` sources at the centres of ``k`` equal slices of the range."""
    _check_budget(n, k)
    span = n - 1
    targets = [span - span / (2 * k) - span * i / k for i in range(k)]
    return sorted({int(np.argmin(np.abs(np.arange(n) - t))) for t in targets})


def random_orders(n: int, budget: int, count: int = RANDOM_ORDERS, seed: int = 0) -> np.ndarray:
    _check_budget(n, budget)
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n)[:budget] for _ in range(count)])


def sequential_oracle_order(matrix: np.ndarray, budget: int) -> list[int]:
    """Greedy on the true matrix: each step adds the source with the largest true gain."""
    n = _check_matrix(matrix)
    _check_budget(n, budget)
    order, best = [], np.full(n, -np.inf)
    for _ in range(budget):
        gain = np.maximum(matrix, best[None, :]).mean(axis=1)
        gain[order] = -np.inf
        order.append(int(np.argsort(-gain, kind="stable")[0]))
        best = np.maximum(best, matrix[order[-1]])
    return order


def curve(matrix: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """V_k averaged over targets for k = 1..len(order): the generalized performance."""
    return np.maximum.accumulate(matrix[list(order)], axis=0).mean(axis=1)


@dataclass(frozen=True)
class Selection:
    """Per method, the curve over k = 1..budget (mean over targets of V_k)."""

    curves: dict[str, np.ndarray]
    orders: dict[str, list[int]]


def select_all(matrix: np.ndarray, budget: int, *, theta: float, beta: str = "sqrt-log",
               seed: int = 0) -> Selection:  # fmt: skip
    """Every selector and reference on one stored matrix (one seed of the RL runs)."""
    n = _check_matrix(matrix)
    row = matrix.__getitem__
    orders = {"mbtl": mbtl_order(row, n, budget, theta=theta, beta=beta, seed=seed),
              "pseudogreedy": pseudogreedy_order(n, budget),
              "sequential-oracle": sequential_oracle_order(matrix, budget)}  # fmt: skip
    curves = {name: curve(matrix, o) for name, o in orders.items()}
    curves["equidistant"] = np.array([curve(matrix, equidistant_set(n, k))[-1]
                                      for k in range(1, budget + 1)])  # fmt: skip
    rand = random_orders(n, budget, seed=seed)
    curves["random"] = np.mean([curve(matrix, o) for o in rand], axis=0)
    curves["oracle"] = np.full(budget, matrix.max(axis=0).mean())
    curves["independent"] = np.full(budget, np.diag(matrix).mean())
    return Selection(curves, orders)


def multiplier(curve_k: np.ndarray, per_source: float, value: float,
               samples: float) -> float | None:  # fmt: skip
    """How many times fewer samples the curve needs to reach ``value`` than a baseline that
    reaches it with ``samples``: samples / (k* x per_source), k* the first k reaching it."""
    reached = np.nonzero(curve_k >= value - 1e-12)[0]
    return None if len(reached) == 0 else float(samples / ((reached[0] + 1) * per_source))


def _check_budget(n: int, budget: int) -> None:
    if not 1 <= budget <= n:
        raise UsageError(f"budget must be in 1..{n} (the number of contexts), got {budget}")


def _check_row(values: np.ndarray, n: int, x: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise UsageError(f"row({x}) must be {n} finite scores, got shape {arr.shape}")
    return arr


def _check_matrix(matrix: np.ndarray) -> int:
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.all(np.isfinite(matrix)):
        raise UsageError(f"offline selection needs a finite square N x N matrix (every source "
                         f"trained), got shape {matrix.shape}")  # fmt: skip
    return matrix.shape[0]


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
           seed: int = 0) -> dict:  # fmt: skip
    """Offline selection on one stored matrix per RL seed; writes ``summary.json``, ``table.md``,
    ``curves.csv``, ``curves_k.png`` and ``curves_samples.png`` under ``out``. Every input is
    checked before anything is written."""
    from mtrl_bench import stats
    from mtrl_bench.results import atomic_write_json, atomic_write_text, provenance

    if not matrices:
        raise UsageError("give at least one transfer matrix (one per RL seed)")
    loaded = [load_matrix(p) for p in matrices]
    meta = loaded[0][1]
    n = _check_matrix(loaded[0][0])
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
    _check_budget(n, budget)
    per_source = float(meta["steps_per_source"])

    selections = [select_all(m, budget, theta=theta, beta=beta, seed=seed) for m, _ in loaded]
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
        "beta": beta, "seed": seed, "rl_seeds": [d["seed"] for _, d in loaded],
        "matrices": [str(p) for p in matrices], "multitask": [str(p) for p in multitask],
        "orders": {k: [s.orders[k] for s in selections] for k in selections[0].orders},
        "methods": {}, "multiplier": {}, **provenance(),
    }  # fmt: skip
    for name, c in curves.items():
        avg = c.mean(axis=1)[:, None]  # average over k, per seed
        lo, hi = stats.stratified_bootstrap_ci(avg, np.mean, seed=seed)
        summary["methods"][name] = {"average_over_k": float(avg.mean()), "ci": [lo, hi],
                                    "final": float(c[:, -1].mean()),
                                    "curve": c.mean(axis=0).tolist()}  # fmt: skip
    for name, (value, cost) in baselines.items():
        summary["multiplier"][name] = multiplier(mean_mbtl, per_source, value, cost)

    lines = [f"# MBTL on {meta['suite']} ({meta['agent']}, {per_source:g} steps per source, "
             f"{len(loaded)} RL seeds, K = {budget}, theta = {theta}, beta = {beta})", "",
             "| method | average over k [95 % CI] | at k = K | samples at k = K |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for name, m in summary["methods"].items():
        lines.append(f"| {name} | {m['average_over_k']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]"
                     f" | {m['final']:.3f} | {samples[name][-1]:.3g} |")  # fmt: skip
    lines += ["", "Sample-efficiency multiplier of MBTL (baseline samples / MBTL samples to reach "
              "the baseline's performance):", ""]  # fmt: skip
    for name, x in summary["multiplier"].items():
        lines.append(f"- vs {name}: " + ("not reached" if x is None else f"{x:.1f}x"))
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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        summary = report(args.matrices, args.multitask, args.out, theta=args.theta,
                         budget=args.budget, beta=args.beta, seed=args.seed)  # fmt: skip
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((args.out / "table.md").read_text())
    return 0 if summary else 1


if __name__ == "__main__":
    sys.exit(main())
