"""MBTL source selection and its baselines (``agents/mbtl.py``) and the report around them
(``agents/mbtl_report.py``) on hand-made transfer matrices."""

import json

import numpy as np
import pytest

from mtrl_bench.agents import mbtl, mbtl_report


def _linear(n: int, theta: float, seed: int = 0) -> np.ndarray:
    """J(x, x') = J(x) - theta |x - x'|, clipped at 0, with a bumpy J(x)."""
    idx = np.arange(n)
    perf = 0.6 + 0.4 * np.sin(idx / 5 + seed) ** 2
    return np.clip(perf[:, None] - theta * np.abs(idx[:, None] - idx[None, :]), 0, None)


def test_curve_is_running_best_mean() -> None:
    m = np.array([[1.0, 0.0, 0.2], [0.0, 0.5, 0.9], [0.3, 0.3, 0.3]])
    np.testing.assert_allclose(mbtl.curve(m, [0, 1]), [1.2 / 3, 2.4 / 3])
    np.testing.assert_allclose(mbtl.curve(m, [2]), [0.3])


def test_heuristic_orders_by_hand() -> None:
    assert mbtl.midpoint(5) == 2 and mbtl.midpoint(6) == 2
    # midpoint 2; gaps (0, 2), (2, 4) tie -> the first, at 1/3; then the last gap (2, 4) at 2/3
    assert mbtl.pseudogreedy_order(5, 3) == [2, 1, 3]
    # ends 0, 4, 9: the last gap is wider (2/3 point 7.3), then the first (1/3), then the middle
    assert mbtl.pseudogreedy_order(10, 4) == [4, 7, 1, 2]
    assert mbtl.equidistant_set(10, 1) == [4] and mbtl.equidistant_set(10, 3) == [1, 4, 7]
    assert mbtl.equidistant_set(100, 2) == [25, 74]


def test_oracles_bound_every_selector() -> None:
    m = _linear(30, 0.03)
    sel = mbtl.select_all(m, 8, theta=0.03, seed=1)
    oracle = sel.curves["oracle"][0]
    for name, c in sel.curves.items():
        assert np.all(c <= oracle + 1e-12), name
        if name not in ("oracle", "independent", "equidistant"):
            assert np.all(np.diff(c) >= -1e-12), name  # sequential curves never decrease
    first = np.argmax(m.mean(axis=1))
    assert sel.orders["sequential-oracle"][0] == first
    assert sel.curves["sequential-oracle"][0] == pytest.approx(m[first].mean())
    np.testing.assert_allclose(sel.curves["independent"], np.diag(m).mean())


def test_random_is_seeded_and_without_replacement() -> None:
    a, b = mbtl.random_orders(20, 20, seed=3), mbtl.random_orders(20, 20, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (100, 20) and all(sorted(o) == list(range(20)) for o in a)
    assert not np.array_equal(a, mbtl.random_orders(20, 20, seed=4))


def test_mbtl_online_equals_offline_and_asks_only_chosen_sources() -> None:
    m = _linear(25, 0.02)
    calls: list[int] = []

    def row(x: int) -> np.ndarray:  # "trains" source x: a real computation, counted
        calls.append(x)
        return m[x].copy()

    online = mbtl.mbtl_order(row, 25, 6, theta=0.02, seed=0)
    offline = mbtl.mbtl_order(m.__getitem__, 25, 6, theta=0.02, seed=0)
    assert online == offline and calls == online and len(set(online)) == 6
    assert online[0] == mbtl.midpoint(25)
    assert mbtl.mbtl_order(m.__getitem__, 25, 6, theta=0.02, seed=0) == offline  # deterministic


def test_mbtl_trains_every_source_once_and_reaches_the_oracle() -> None:
    m = _linear(12, 0.05, seed=2)
    order = mbtl.mbtl_order(m.__getitem__, 12, 12, theta=0.05, seed=0)
    assert sorted(order) == list(range(12))
    assert mbtl.curve(m, order)[-1] == pytest.approx(m.max(axis=0).mean())


def test_beta_variants_change_the_acquisition() -> None:
    mu, sigma = np.array([0.5, 0.4, 0.1]), np.array([0.0, 0.1, 0.6])
    best = np.array([0.45, 0.2, 0.1])
    zero = mbtl.acquisition(mu, sigma, best, 0.05, np.array(0.0))
    one = mbtl.acquisition(mu, sigma, best, 0.05, np.array(1.0))
    # by hand, source 2 with beta 1: max(0.7 - 0.05 * [2, 1, 0] - best, 0) = [0.15, 0.45, 0.6]
    assert one[2] == pytest.approx(0.4)
    assert np.argmax(zero) == 0 and np.argmax(one) == 2
    m = _linear(30, 0.01)
    orders = {b: mbtl.mbtl_order(m.__getitem__, 30, 6, theta=0.01, beta=b) for b in mbtl.BETAS}
    assert len({tuple(o) for o in orders.values()}) > 1


def test_multiplier_by_hand() -> None:
    c = np.array([0.2, 0.5, 0.7, 0.8])
    assert mbtl_report.multiplier(c, 100.0, 0.7, 3000.0) == pytest.approx(10.0)  # k* = 3
    assert mbtl_report.multiplier(c, 100.0, 0.9, 3000.0) is None


def _write(path, kind, scores, seed=0, **extra) -> None:
    n = len(scores[0])
    data = {
        "schema": 1,
        "kind": kind,
        "suite": "control-jax/cartpole-masscart-v1",
        "agent": "ppo",
        "seed": seed,
        "steps_per_source": 1000,
        "episodes": 4,
        "sources": list(range(len(scores))) if kind == "transfer_matrix" else [],
        "targets": list(range(n)),
        "scores": np.asarray(scores).tolist(),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_report_writes_files_and_multiplier(tmp_path) -> None:
    mats = []
    for s in range(3):
        mats.append(tmp_path / f"seed{s}" / "transfer.json")
        _write(mats[-1], "transfer_matrix", _linear(12, 0.05, seed=s), seed=s)
    mt = tmp_path / "mt.json"
    _write(mt, "multitask_row", [[0.5] * 12], steps=12_000)
    out = tmp_path / "out"
    assert (
        mbtl_report.main(
            [
                "--matrices",
                *map(str, mats),
                "--multitask",
                str(mt),
                "--out",
                str(out),
                "--budget",
                "6",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["theta"] == 0.005 and summary["rl_seeds"] == [0, 1, 2]
    curve = np.array(summary["methods"]["mbtl"]["curve"])
    indep = summary["methods"]["independent"]["average_over_k"]
    reached = np.nonzero(curve >= indep)[0]
    expect = None if len(reached) == 0 else 12 / (reached[0] + 1)
    assert summary["multiplier"]["independent"] == pytest.approx(expect)
    for name in ("table.md", "curves.csv", "curves_k.png", "curves_samples.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize("case", ["nonsquare", "budget", "missing", "kind"])
def test_report_refuses_bad_input_and_writes_nothing(tmp_path, case, capsys) -> None:
    good = tmp_path / "m.json"
    _write(good, "transfer_matrix", _linear(6, 0.1))
    args = {"nonsquare": None, "budget": ["--budget", "7"], "missing": None, "kind": None}[case]
    path = good
    if case == "nonsquare":
        path = tmp_path / "bad.json"
        _write(path, "transfer_matrix", _linear(6, 0.1)[:4])
    elif case == "missing":
        path = tmp_path / "nope.json"
    elif case == "kind":
        path = tmp_path / "row.json"
        _write(path, "multitask_row", [[0.1] * 6], steps=10)
    out = tmp_path / "out"
    assert mbtl_report.main(["--matrices", str(path), "--out", str(out), *(args or [])]) == 2
    assert "error:" in capsys.readouterr().err and not out.exists()
