"""Bundles of ``transfer`` leaderboards: source-task selection strategies on stored matrices.

An entry is a strategy that chooses which source contexts to train, one after another, given
only the zero-shot rows of the sources it already chose (MBTL's setting, offline on a committed
source x target matrix per RL seed). After k chosen sources every target uses its best one:
V_k(t) = max over chosen s of J(s, t). A bundle row is one (seed, target): its ``score`` is
V_k(t) averaged over k = 1..K; ``success`` and ``return`` are those of the same best source, so
the mean over targets of ``score`` is MBTL's "average over k" figure for that seed.

A strategy is the leaderboard's ``strategies`` hook (a lazy ``module:attr`` string in the
definition, e.g. MBTL's selectors) plus a built-in name, or a user's own function
``package.module:attr`` with the signature ``order(scores, budget, seed) -> list[int]``
(``scores`` the N x N matrix of this seed). A strategy returns *draws*: each draw is the list
over k of the chosen source sets (nested for sequential strategies, fresh sets for
equidistant's coarse-to-fine grid); several draws (random selection) are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtrl_bench import bundle as bundles
from mtrl_bench.errors import UsageError
from mtrl_bench.leaderboard import Leaderboard
from mtrl_bench.results import read_json
from mtrl_bench.types import load_attr

Draw = Sequence[Sequence[int]]
"""One selection: the chosen source set after k = 1..K steps."""


def load_matrices(lb: Leaderboard, folder: Path) -> dict[int, dict[str, Any]]:
    """seed -> the stored ``transfer.json`` of that RL seed, checked against the definition."""
    found = sorted(Path(folder).glob("seed*/transfer.json"))
    if not found:
        raise UsageError(f"transfer runs {folder} hold no seed*/transfer.json")
    out = {}
    for path in found:
        m = read_json(path)
        if not isinstance(m, dict):
            raise UsageError(f"{path} must hold a JSON object")
        for field, want in (("suite", lb.suite), ("steps_per_source", lb.steps),
                            ("episodes", lb.eval_episodes)):  # fmt: skip
            if m.get(field) != want:
                raise UsageError(f"{path} has {field} = {m.get(field)!r}; "
                                 f"{lb.key} requires {want!r}")
        scores = np.asarray(m.get("scores"), dtype=float)
        n = scores.shape[0] if scores.ndim == 2 else -1
        if scores.shape != (n, n) or n < lb.k_max or not np.isfinite(scores).all():
            raise UsageError(f"{path}: scores must be a finite N x N matrix with N >= {lb.k_max}")
        if not isinstance(m.get("seed"), int) or m["seed"] in out:
            raise UsageError(f"{path}: seed must be an integer, distinct across runs")
        out[m["seed"]] = m
    if len(out) < lb.min_seeds:
        raise UsageError(f"{len(out)} seed(s) in {folder}; {lb.key} needs at least {lb.min_seeds}")
    return out


def strategy_draws(lb: Leaderboard, strategy: str, scores: np.ndarray, seed: int) -> list[Draw]:
    if ":" in strategy:  # the user's own order(scores, budget, seed) -> list[int]
        order = [int(x) for x in load_attr(strategy)(scores.copy(), lb.k_max, seed)]
        if len(order) != lb.k_max or len(set(order)) != len(order) or \
                not all(0 <= x < len(scores) for x in order):  # fmt: skip
            raise UsageError(f"strategy {strategy} must return {lb.k_max} distinct source "
                             f"indices in 0..{len(scores) - 1}")  # fmt: skip
        return [[order[:k] for k in range(1, lb.k_max + 1)]]
    if not lb.strategies:
        raise UsageError(f"{lb.key} has no built-in strategies; give package.module:attr")
    table = load_attr(lb.strategies)(scores, lb.k_max, seed=seed, suite=lb.suite)
    if strategy not in table:
        raise UsageError(f"unknown strategy {strategy!r} for {lb.key}; built in: "
                         f"{', '.join(sorted(table))}, or package.module:attr")  # fmt: skip
    return table[strategy]


def per_target(matrices: Sequence[np.ndarray], draws: Sequence[Draw]) -> list[np.ndarray]:
    """Per target, the metric of the best-by-score chosen source, averaged over k and draws;
    ``matrices[0]`` is the score matrix that decides "best"."""
    scores = matrices[0]
    totals = [np.zeros(scores.shape[1]) for _ in matrices]
    for draw in draws:
        for chosen in draw:
            best = np.asarray(chosen)[np.argmax(scores[list(chosen)], axis=0)]
            for total, m in zip(totals, matrices, strict=True):
                total += m[best, np.arange(m.shape[1])]
    count = len(draws) * len(draws[0])
    return [t / count for t in totals]


def from_transfer_runs(lb: Leaderboard, folder: Path, strategy: str, *, name: str = "",
                       version: str = "", url: str = "",
                       description: str = "") -> dict[str, Any]:  # fmt: skip
    """The bundle of ``strategy`` on the stored matrices of ``folder`` (one per RL seed)."""
    if lb.kind != "transfer":
        raise UsageError(f"{lb.key} is not a transfer leaderboard")
    results, provenance = [], {}
    for seed, m in sorted(load_matrices(lb, folder).items()):
        mats = [np.asarray(m[k], dtype=float) for k in ("scores", "success", "returns")]
        score, success, ret = per_target(mats, strategy_draws(lb, strategy, mats[0], seed))
        names = [str(t) for t in m.get("targets", range(len(score)))]
        for t in range(len(score)):
            results.append({"protocol": "transfer", "seed": seed, "task": names[t][:200],
                            "task_index": t, "score": float(score[t]),
                            "success": float(np.clip(success[t], 0, 1)), "return": float(ret[t]),
                            "episodes": lb.eval_episodes})  # fmt: skip
        provenance[str(seed)] = {k: m[k] for k in ("git_sha", "versions", "device", "platform",
                                                   "python", "config_hash", "time") if k in m}
    meta = {"name": name or strategy, "version": version or "mtrl-bench", "url": url,
            "description": description}  # fmt: skip
    budget = {"env_steps": lb.steps, "eval_episodes": lb.eval_episodes}
    return bundles.make_bundle(lb, meta, results, provenance, budget)
