"""Transfer leaderboards: selection strategies on stored matrices -> bundles (MBTL's scoring)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtrl_bench import bundle as bundles
from mtrl_bench import transfer_bundle as tb
from mtrl_bench.errors import UsageError
from mtrl_bench.leaderboard import get_leaderboard, parse_definition

N, K = 8, 4
RAW = {"id": "tiny-transfer", "version": 1, "title": "t", "description": "", "kind": "transfer",
       "suite": "control-jax/pendulum-dt-v1", "steps": 100, "eval_episodes": 2, "min_seeds": 2,
       "primary_protocol": "transfer", "primary_metric": "mean", "k_max": K, "matrix": "m",
       "strategies": "mtrl_bench.agents.mbtl:strategies",
       "protocols": [{"name": "transfer", "split": "train"}]}  # fmt: skip


def first_k(scores: np.ndarray, budget: int, seed: int) -> list[int]:
    """A user's own strategy (named ``test_transfer_bundle:first_k``): sources 0, 1, 2, ..."""
    return list(range(budget))


def repeats(scores: np.ndarray, budget: int, seed: int) -> list[int]:
    """A broken strategy: the same source every time."""
    return [0] * budget


@pytest.fixture
def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lb = parse_definition(RAW, "test")
    monkeypatch.setattr(bundles, "get_leaderboard", lambda key: lb)
    rng = np.random.default_rng(0)
    x = np.arange(N)
    for seed in range(2):  # smooth: transfer decays with the context distance
        scores = np.exp(-np.abs(x[:, None] - x[None, :]) / 3) + 0.01 * rng.random((N, N))
        m = {"suite": RAW["suite"], "steps_per_source": 100, "episodes": 2, "seed": seed,
             "scores": scores.tolist(), "success": (scores > 0.5).astype(float).tolist(),
             "returns": (100 * scores).tolist(), "targets": list(range(N)), "git_sha": "0" * 40}  # fmt: skip
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}" / "transfer.json").write_text(json.dumps(m))
    return lb, tmp_path


def test_per_target_takes_the_best_chosen_source_averaged_over_k() -> None:
    scores = np.array([[1.0, 0.2, 0.0], [0.3, 1.0, 0.5], [0.0, 0.1, 0.9]])
    success = (scores > 0.4).astype(float)
    draw = [[1], [1, 0], [1, 0, 2]]
    s, ok = tb.per_target([scores, success], [draw])
    # target 0: 0.3, then 1.0, 1.0; target 2: 0.5, 0.5, 0.9
    assert s == pytest.approx([(0.3 + 1 + 1) / 3, 1.0, (0.5 + 0.5 + 0.9) / 3])
    assert ok == pytest.approx([2 / 3, 1.0, 1.0])


def test_strategies_bundle_and_rank_as_mbtl_scores_them(board) -> None:
    lb, folder = board
    made = {name: tb.from_transfer_runs(lb, folder, name) for name in
            ("oracle", "sequential-oracle", "random", "mbtl", "equidistant", "pseudogreedy")}
    matrices = [np.array(json.loads((folder / f"seed{s}/transfer.json").read_text())["scores"])
                for s in range(2)]  # fmt: skip
    oracle = bundles.matrix(made["oracle"], "transfer")
    assert oracle == pytest.approx(np.stack([m.max(axis=0) for m in matrices]))
    mean = {k: b["summary"]["transfer"]["mean"][0] for k, b in made.items()}
    assert mean["oracle"] >= mean["sequential-oracle"] >= max(mean["random"], mean["mbtl"]) - 1e-9
    assert all(b["seeds"] == [0, 1] and len(b["results"]) == 2 * N for b in made.values())
    mine = tb.from_transfer_runs(lb, folder, "test_transfer_bundle:first_k", name="first-k")
    expected = np.mean([np.maximum.accumulate(m[:k + 1].max(axis=0, keepdims=True), axis=0)[0]
                        for m in matrices for k in range(K)])  # fmt: skip
    assert mine["summary"]["transfer"]["mean"][0] == pytest.approx(expected, abs=1e-9)


def test_bad_transfer_runs_and_strategies_are_refused(board, tmp_path: Path) -> None:
    lb, folder = board
    with pytest.raises(UsageError, match="unknown strategy 'greedy'"):
        tb.from_transfer_runs(lb, folder, "greedy")
    with pytest.raises(UsageError, match="must return 4 distinct source indices"):
        tb.from_transfer_runs(lb, folder, "test_transfer_bundle:repeats")
    path = folder / "seed1" / "transfer.json"
    m = json.loads(path.read_text())
    path.write_text(json.dumps({**m, "steps_per_source": 5}))
    with pytest.raises(UsageError, match="has steps_per_source = 5; tiny-transfer/v1 requires 100"):
        tb.from_transfer_runs(lb, folder, "oracle")
    with pytest.raises(UsageError, match="no seed\\*/transfer.json"):
        tb.from_transfer_runs(lb, tmp_path / "seed0", "oracle")


def test_the_shipped_transfer_leaderboard_points_at_committed_matrices() -> None:
    lb = get_leaderboard("pendulum-dt-transfer/v1")
    root = Path(__file__).resolve().parents[1]
    loaded = tb.load_matrices(lb, root / lb.matrix)
    assert sorted(loaded) == [0, 1, 2] and lb.k_max == 100
