"""mtrl_bench.stats: hand-computed values, equality with rliable 1.2.0, bootstrap behaviour."""

from __future__ import annotations

import numpy as np
import pytest

# rliable 1.2.0 only imports with pandas < 3; the `dev` extra pins both, so a failed import
# here is a broken install and must fail the suite rather than skip the comparison.
from rliable import library as rly
from rliable import metrics

from mtrl_bench import stats
from mtrl_bench.errors import UsageError

_RNG = np.random.default_rng(20240611)
A = _RNG.uniform(0.0, 1.2, size=(10, 5))  # some scores above gamma=1
B = _RNG.uniform(0.1, 1.0, size=(10, 5))
TIES = _RNG.integers(0, 4, size=(10, 5)) / 4.0  # many ties within and across tasks
TIES_Y = _RNG.integers(0, 4, size=(6, 5)) / 4.0  # different number of runs
SMALL = _RNG.normal(size=(3, 7))
SMALL_Y = _RNG.normal(0.3, 1.0, size=(5, 7))
ARRAYS = {"A": A, "B": B, "TIES": TIES, "SMALL": SMALL}

RLIABLE_AGGREGATES = {
    "iqm": "aggregate_iqm",
    "mean": "aggregate_mean",
    "median": "aggregate_median",
    "optimality_gap": "aggregate_optimality_gap",
}


# --- hand-computed, independent of rliable -------------------------------------------------


def test_hand_computed_aggregates() -> None:
    x = np.arange(8.0).reshape(2, 4)  # IQM drops 0, 1 and 6, 7
    assert stats.iqm(x) == 3.5
    assert stats.mean(np.array([[0.0, 1.0], [2.0, 3.0]])) == 1.5  # per-task means 1, 2
    assert stats.median(np.array([[0.0, 1.0, 9.0], [2.0, 3.0, 9.0]])) == 2.0  # means 1, 2, 9
    # min(x, 1) = [0.5, 1, 1, 0] -> mean 0.625 -> gap 0.375
    assert stats.optimality_gap(np.array([[0.5, 2.0], [1.0, 0.0]])) == 0.375
    assert stats.optimality_gap(np.array([[0.5, 2.0]]), gamma=2.0) == 0.75
    assert set(stats.AGGREGATES) == {"iqm", "mean", "median", "optimality_gap"}


def test_hand_computed_probability_of_improvement() -> None:
    # pairs (1,1) tie, (1,0) win, (2,1) win, (2,0) win -> 3.5 / 4
    assert stats.probability_of_improvement(np.array([[1.0], [2.0]]), [[1.0], [0.0]]) == 0.875
    # task 0: always better (1); task 1: always worse (0) -> 0.5 on average
    x, y = np.array([[5.0, 0.0], [6.0, 1.0]]), np.array([[1.0, 2.0]])
    assert stats.probability_of_improvement(x, y) == 0.5
    assert stats.probability_of_improvement(y, x) == 0.5
    assert stats.probability_of_improvement(A, B) + stats.probability_of_improvement(
        B, A
    ) == pytest.approx(1.0, abs=1e-12)


def test_hand_computed_performance_profile() -> None:
    x = np.array([[0.0, 0.5], [1.0, 0.5]])
    np.testing.assert_array_equal(stats.performance_profile(x, [-1.0, 0.0, 0.5, 0.9, 1.0]),
                                  [1.0, 0.75, 0.25, 0.25, 0.0])  # fmt: skip


# --- equality with rliable -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ARRAYS))
@pytest.mark.parametrize("metric", sorted(RLIABLE_AGGREGATES))
def test_aggregates_equal_rliable(name: str, metric: str) -> None:
    x = ARRAYS[name]
    expected = getattr(metrics, RLIABLE_AGGREGATES[metric])(x)
    assert stats.AGGREGATES[metric](x) == pytest.approx(expected, abs=1e-12, rel=0)


@pytest.mark.parametrize(
    ("x", "y"),
    [(A, B), (B, A), (A, A), (TIES, TIES), (TIES, TIES_Y), (TIES_Y, TIES), (SMALL, SMALL_Y)],
    ids=["A-B", "B-A", "A-A", "ties-ties", "ties-tiesy", "tiesy-ties", "small"],
)
def test_probability_of_improvement_equals_rliable(x: np.ndarray, y: np.ndarray) -> None:
    expected = metrics.probability_of_improvement(x, y)
    assert stats.probability_of_improvement(x, y) == pytest.approx(expected, abs=1e-12, rel=0)


def test_identical_arrays_give_one_half() -> None:
    for x in ARRAYS.values():
        assert stats.probability_of_improvement(x, x) == 0.5


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_performance_profile_equals_rliable(name: str) -> None:
    x = ARRAYS[name]
    taus = np.linspace(-0.5, 1.5, 41)
    points, _ = rly.create_performance_profile({"x": x}, taus, reps=5)
    np.testing.assert_allclose(stats.performance_profile(x, taus), points["x"], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["A", "TIES"])
def test_bootstrap_ci_agrees_with_rliable(name: str) -> None:
    x = ARRAYS[name]
    np.random.seed(0)  # rliable's bootstrap draws from the global generator
    points, cis = rly.get_interval_estimates(
        {"x": x}, lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_mean(s)]),
        reps=5000,
    )  # fmt: skip
    summary = stats.summarize(x, reps=2000, seed=0)
    for i, metric in enumerate(["iqm", "mean"]):
        assert summary[metric].point == pytest.approx(points["x"][i], abs=1e-12)
        assert summary[metric].lo == pytest.approx(cis["x"][0, i], abs=0.02)
        assert summary[metric].hi == pytest.approx(cis["x"][1, i], abs=0.02)


def test_probability_of_improvement_ci_agrees_with_rliable() -> None:
    x, y = A[:6, :4], B[:5, :4]  # small: rliable runs Mann-Whitney per task per replicate

    def poi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([metrics.probability_of_improvement(a, b)])

    np.random.seed(0)
    _, cis = rly.get_interval_estimates({"xy": [x, y]}, poi, reps=1000)
    lo, hi = stats.probability_of_improvement_ci(x, y, reps=2000, seed=0)
    assert lo == pytest.approx(cis["xy"][0, 0], abs=0.03)
    assert hi == pytest.approx(cis["xy"][1, 0], abs=0.03)


def test_performance_profile_ci_agrees_with_rliable() -> None:
    taus = np.linspace(0.0, 1.0, 11)
    np.random.seed(0)
    _, cis = rly.create_performance_profile({"x": A}, taus, reps=2000)
    lo, hi = stats.performance_profile_ci(A, taus, reps=2000, seed=0)
    np.testing.assert_allclose(lo, cis["x"][0], atol=0.05)
    np.testing.assert_allclose(hi, cis["x"][1], atol=0.05)


# --- bootstrap behaviour -------------------------------------------------------------------


def test_same_seed_same_ci_different_seed_different_ci() -> None:
    first = stats.stratified_bootstrap_ci(A, stats.iqm, seed=3)
    assert stats.stratified_bootstrap_ci(A, stats.iqm, seed=3) == first
    assert stats.stratified_bootstrap_ci(A, stats.iqm, seed=4) != first
    poi = stats.probability_of_improvement_ci(A, B, seed=3)
    assert stats.probability_of_improvement_ci(A, B, seed=3) == poi
    assert stats.probability_of_improvement_ci(A, B, seed=4) != poi
    prof = stats.performance_profile_ci(A, [0.3, 0.6], seed=3)
    np.testing.assert_array_equal(stats.performance_profile_ci(A, [0.3, 0.6], seed=3), prof)


def test_ci_brackets_point_and_summarize_matches_single_metric() -> None:
    summary = stats.summarize(A, reps=500, confidence=0.9, seed=7)
    for name, fn in stats.AGGREGATES.items():
        interval = summary[name]
        assert interval.point == fn(A)
        assert interval.lo < interval.point < interval.hi
        ci = stats.stratified_bootstrap_ci(A, fn, reps=500, confidence=0.9, seed=7)
        assert (interval.lo, interval.hi) == pytest.approx(ci, abs=1e-12)
    # An unregistered callable goes through the per-replicate loop on the same draws.
    ci = stats.stratified_bootstrap_ci(A, lambda s: stats.iqm(s), reps=500, seed=7)
    assert ci == pytest.approx(stats.stratified_bootstrap_ci(A, stats.iqm, reps=500, seed=7))
    wider = stats.stratified_bootstrap_ci(A, stats.iqm, reps=500, confidence=0.99, seed=7)
    assert wider[0] < summary["iqm"].lo and wider[1] > summary["iqm"].hi


def test_stratification_resamples_runs_within_tasks() -> None:
    # One run per task: every stratified resample is the data itself -> zero-width CI.
    x = np.array([[0.1, 0.5, 0.9, 0.3]])
    assert stats.stratified_bootstrap_ci(x, stats.mean, reps=200) == (stats.mean(x),) * 2
    # Constant within each task, different across tasks: still zero width (tasks never mix).
    x = np.repeat([[0.0, 1.0, 0.2]], 5, axis=0)
    assert stats.stratified_bootstrap_ci(x, stats.iqm, reps=200) == (stats.iqm(x),) * 2
    assert stats.probability_of_improvement_ci(x + 1, x, reps=200) == (1.0, 1.0)
    assert stats.probability_of_improvement_ci(x, x, reps=200) == (0.5, 0.5)
    taus = [0.0, 0.2, 0.5, 1.0]  # thresholds equal to scores: "strictly greater" matters
    lo, hi = stats.performance_profile_ci(x, taus, reps=200)
    np.testing.assert_array_equal(lo, [2 / 3, 1 / 3, 1 / 3, 0.0])
    np.testing.assert_array_equal(hi, stats.performance_profile(x, taus))


def test_probability_of_improvement_ci_brackets_point() -> None:
    lo, hi = stats.probability_of_improvement_ci(SMALL_Y, SMALL, reps=1000, seed=1)
    assert 0.0 <= lo < stats.probability_of_improvement(SMALL_Y, SMALL) < hi <= 1.0


def test_bootstrap_is_fast_enough() -> None:
    # Not a timing assertion: large reps must not blow up memory (chunked) and stay correct.
    x = _RNG.uniform(size=(10, 10))
    lo, hi = stats.stratified_bootstrap_ci(x, stats.iqm, reps=20_000)
    assert lo < stats.iqm(x) < hi


# --- input validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "match"),
    [
        (np.ones(5), "2-D"),
        (np.ones((2, 3, 4)), "2-D"),
        (np.ones((0, 5)), "empty"),
        (np.ones((5, 0)), "empty"),
        (np.array([[1.0, np.nan]]), "NaN at run 0, task 1"),
    ],
)
def test_bad_scores_raise_usage_error(scores: np.ndarray, match: str) -> None:
    for fn in stats.AGGREGATES.values():
        with pytest.raises(UsageError, match=match):
            fn(scores)
    with pytest.raises(UsageError, match=match):
        stats.summarize(scores)
    with pytest.raises(UsageError, match=match):
        stats.performance_profile(scores, [0.5])
    with pytest.raises(UsageError, match=match):
        stats.probability_of_improvement(A, scores)


def test_bad_arguments_raise_usage_error() -> None:
    with pytest.raises(UsageError, match="same number of tasks, got 5 and 7"):
        stats.probability_of_improvement(A, SMALL)
    with pytest.raises(UsageError, match="same number of tasks"):
        stats.probability_of_improvement_ci(A, SMALL)
    with pytest.raises(UsageError, match="reps must be a positive integer, got 0"):
        stats.stratified_bootstrap_ci(A, stats.iqm, reps=0)
    with pytest.raises(UsageError, match="confidence"):
        stats.summarize(A, confidence=95)
    with pytest.raises(UsageError, match="taus"):
        stats.performance_profile(A, [])
    assert "\n" not in str(pytest.raises(UsageError, stats.iqm, np.ones(3)).value)
