"""Aggregate metrics with stratified-bootstrap confidence intervals (docs/protocols.md).

Scores are arrays of shape ``(num_runs, num_tasks)``: runs are training seeds (never episodes),
tasks are the tasks of a suite split. Definitions (Agarwal et al. 2021, "Deep RL at the Edge of
the Statistical Precipice"):

- ``iqm``: 25 % trimmed mean over all runs x tasks pooled (``scipy.stats.trim_mean``).
- ``mean`` / ``median``: mean / median over tasks of the per-task mean over runs.
- ``optimality_gap``: ``gamma - mean(min(scores, gamma))`` over all runs x tasks.
- ``probability_of_improvement(x, y)``: per task, P(X > Y) + P(X = Y) / 2 over all run pairs
  (the Mann-Whitney U statistic divided by ``n_x * n_y``), averaged over tasks.
- ``performance_profile``: fraction of all (run, task) scores strictly above each threshold
  (the "score distribution").
- CIs: percentile bootstrap; each replicate resamples runs with replacement independently
  within every task (stratified bootstrap over runs, tasks fixed). Probability of improvement
  resamples ``x`` and ``y`` independently.

This reimplements the definitions of rliable 1.2.0 (``metrics.py``, ``library.py``) in numpy,
because rliable 1.2.0 fails to import with pandas 3 (through ``arch``) and its bootstrap ignores
``random_state`` (it draws from the global ``np.random``). Here every CI is a deterministic
function of ``seed``. Point estimates equal rliable's; CIs match rliable's only up to Monte-Carlo
error, since the random draws differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.stats

from mtrl_bench.errors import UsageError

#: Upper bound on elements materialised per bootstrap chunk (keeps memory ~100 MB).
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Interval:
    point: float
    lo: float
    hi: float


def _check_scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2:
        raise UsageError(f"{name} must be a 2-D (num_runs, num_tasks) array, got shape {arr.shape}")
    if arr.size == 0:
        raise UsageError(f"{name} must not be empty, got shape {arr.shape}")
    if np.isnan(arr).any():
        run, task = (int(i) for i in np.argwhere(np.isnan(arr))[0])
        raise UsageError(f"{name} contains NaN at run {run}, task {task}")
    return arr


def _check_bootstrap(reps: int, confidence: float) -> None:
    if not (isinstance(reps, int | np.integer) and reps > 0):
        raise UsageError(f"reps must be a positive integer, got {reps!r}")
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"confidence must be in (0, 1), got {confidence!r}")


# Batched forms: ``x`` has shape (..., num_runs, num_tasks); they reduce the last two axes.
def _iqm_b(x: np.ndarray) -> np.ndarray:
    return scipy.stats.trim_mean(x.reshape(*x.shape[:-2], -1), 0.25, axis=-1)


def _mean_b(x: np.ndarray) -> np.ndarray:
    return np.mean(np.mean(x, axis=-2), axis=-1)


def _median_b(x: np.ndarray) -> np.ndarray:
    return np.median(np.mean(x, axis=-2), axis=-1)


def _optimality_gap_b(x: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    return gamma - np.mean(np.minimum(x, gamma), axis=(-2, -1))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: 25 % trimmed mean over all runs x tasks."""
    return float(_iqm_b(_check_scores(scores)))


def mean(scores: np.ndarray) -> float:
    """Mean over tasks of per-task mean scores."""
    return float(_mean_b(_check_scores(scores)))


def median(scores: np.ndarray) -> float:
    """Median over tasks of per-task mean scores."""
    return float(_median_b(_check_scores(scores)))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """How far scores fall short of ``gamma``; scores above ``gamma`` count as ``gamma``."""
    return float(_optimality_gap_b(_check_scores(scores), gamma))


AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "iqm": iqm, "mean": mean, "median": median, "optimality_gap": optimality_gap,
}  # fmt: skip
_BATCHED: dict[Callable[[np.ndarray], float], Callable[[np.ndarray], np.ndarray]] = {
    iqm: _iqm_b, mean: _mean_b, median: _median_b, optimality_gap: _optimality_gap_b,
}  # fmt: skip


def _bootstrap(
    scores: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], reps: int, seed: int
) -> np.ndarray:
    """``stat`` of every replicate stacked on axis 0; ``stat`` maps (b, runs, tasks) to (b, ...).

    Replicates are drawn in chunks (all index draws of a chunk at once) to bound memory.
    """
    rng = np.random.default_rng(seed)
    (num_runs, num_tasks), cols = scores.shape, np.arange(scores.shape[1])
    chunk, out = max(1, _CHUNK_ELEMENTS // scores.size), []
    for start in range(0, reps, chunk):
        idx = rng.integers(0, num_runs, size=(min(chunk, reps - start), num_runs, num_tasks))
        out.append(stat(scores[idx, cols]))  # runs resampled within each task (column)
    return np.concatenate(out, axis=0)


def _percentile_ci(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    # Same percentiles (linear interpolation) as arch's ``conf_int(method="percentile")``.
    alpha = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(values, [alpha, 100.0 - alpha], axis=0)
    return lo, hi


def _as_batched(fn: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], np.ndarray]:
    if fn in _BATCHED:
        return _BATCHED[fn]
    return lambda batch: np.array([fn(x) for x in batch], dtype=np.float64)


def stratified_bootstrap_ci(
    scores: np.ndarray,
    fn: Callable[[np.ndarray], float],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of ``fn(scores)``, resampling runs with replacement within each task."""
    arr = _check_scores(scores)
    _check_bootstrap(reps, confidence)
    lo, hi = _percentile_ci(_bootstrap(arr, _as_batched(fn), reps, seed), confidence)
    return float(lo), float(hi)


def summarize(
    scores: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Interval]:
    """Point estimate and CI of every aggregate in ``AGGREGATES``, all from one set of resamples.

    Each interval equals ``stratified_bootstrap_ci(scores, fn, reps=..., seed=seed)``.
    """
    arr = _check_scores(scores)
    _check_bootstrap(reps, confidence)
    fns = list(AGGREGATES.items())
    values = _bootstrap(arr, lambda b: np.stack([_BATCHED[f](b) for _, f in fns], -1), reps, seed)
    lo, hi = _percentile_ci(values, confidence)
    return {name: Interval(fn(arr), float(lo[i]), float(hi[i])) for i, (name, fn) in enumerate(fns)}


def _pair_wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n_x, n_y, num_tasks): 1 where x_i > y_j, 0.5 on ties, 0 otherwise (per task)."""
    xe, ye = x[:, None, :], y[None, :, :]
    return (xe > ye) + 0.5 * (xe == ye)


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _check_scores(x, "x"), _check_scores(y, "y")
    if x.shape[1] != y.shape[1]:
        raise UsageError(
            f"x and y must have the same number of tasks, got {x.shape[1]} and {y.shape[1]}"
        )
    return x, y


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) averaged over tasks; x: (n_x, num_tasks), y: (n_y, num_tasks)."""
    x, y = _check_pair(x, y)
    return float(np.mean(np.mean(_pair_wins(x, y), axis=(0, 1))))


def probability_of_improvement_ci(
    x: np.ndarray,
    y: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of ``probability_of_improvement`` with independent stratified resamples.

    A resample only changes how often each run is drawn, so a replicate is a weighted sum of the
    fixed pairwise win matrix: sum_ij c_x[i] * wins[i, j] * c_y[j] / (n_x * n_y) per task.
    """
    x, y = _check_pair(x, y)
    _check_bootstrap(reps, confidence)
    (n_x, num_tasks), n_y = x.shape, y.shape[0]
    wins = _pair_wins(x, y)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // (num_tasks * (n_x + n_y)))
    values = []
    for start in range(0, reps, chunk):
        size = (min(chunk, reps - start), num_tasks)
        # Multinomial counts = how often each run is picked by n draws with replacement.
        c_x = rng.multinomial(n_x, np.full(n_x, 1.0 / n_x), size=size)
        c_y = rng.multinomial(n_y, np.full(n_y, 1.0 / n_y), size=size)
        per_task = np.einsum("bti,ijt,btj->bt", c_x, wins, c_y, optimize=True) / (n_x * n_y)
        values.append(per_task.mean(axis=1))
    lo, hi = _percentile_ci(np.concatenate(values), confidence)
    return float(lo), float(hi)


def _profile_b(taus: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    # One vectorised pass per threshold keeps memory at one chunk, however many taus there are.
    return lambda x: np.stack([np.mean(x > tau, axis=(-2, -1)) for tau in taus], axis=-1)


def _check_taus(taus: np.ndarray | list[float]) -> np.ndarray:
    arr = np.asarray(taus, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or np.isnan(arr).any():
        raise UsageError(f"taus must be a non-empty 1-D array without NaN, got {arr!r}")
    return arr


def performance_profile(scores: np.ndarray, taus: np.ndarray | list[float]) -> np.ndarray:
    """Fraction of all (run, task) scores strictly greater than each ``tau``."""
    arr, t = _check_scores(scores), _check_taus(taus)
    return np.mean(arr.reshape(-1, 1) > t, axis=0)


def performance_profile_ci(
    scores: np.ndarray,
    taus: np.ndarray | list[float],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile CIs (lo, hi) of ``performance_profile``, each of shape (len(taus),)."""
    arr, t = _check_scores(scores), _check_taus(taus)
    _check_bootstrap(reps, confidence)
    return _percentile_ci(_bootstrap(arr, _profile_b(t), reps, seed), confidence)
