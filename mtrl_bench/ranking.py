"""Ranks with tie groups, probability-of-improvement matrices and the terminal comparison.

Tie rule (stated on every leaderboard page): entries are sorted by the primary metric's point
estimate; the first entry opens rank group 1. Each next entry joins the current group unless the
group's first entry is significantly better than it, i.e. the lower end of the CI of
P(first > entry) lies above 0.5; then it opens a new group whose rank is its 1-based position
(competition ranking: 1, 1, 3, ...). P(X > Y) is rliable's probability of improvement over the
primary protocol's (seeds x tasks) normalised scores, with a seeded stratified-bootstrap CI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtrl_bench import stats
from mtrl_bench.bundle import matrix
from mtrl_bench.errors import UsageError
from mtrl_bench.leaderboard import Leaderboard

TIE_RULE = ("Entries share a rank when the {conf:.0%} CI of P(group leader > entry) contains "
            "0.5; the leader of a group is its entry with the highest {metric}.")  # fmt: skip


@dataclass(frozen=True)
class Ranked:
    name: str
    rank: int
    """Rank of the entry's tie group (entries in one group share it)."""
    bundle: Mapping[str, Any]
    scores: np.ndarray
    """(seeds, tasks) normalised scores on the primary protocol."""

    def summary(self, protocol: str) -> Mapping[str, Any] | None:
        return self.bundle["summary"].get(protocol)


def _p_ci(x: np.ndarray, y: np.ndarray, lb: Leaderboard) -> tuple[float, float, float]:
    lo, hi = stats.probability_of_improvement_ci(x, y, reps=lb.reps, confidence=lb.confidence)
    return stats.probability_of_improvement(x, y), lo, hi


def rank(entries: Sequence[Mapping[str, Any]], lb: Leaderboard) -> list[Ranked]:
    """Entries (validated bundles of ``lb``) ranked with tie groups; names must be distinct."""
    names = [e["agent"]["name"] for e in entries]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UsageError(f"two entries on {lb.key} are named {dup!r}; names must be distinct")
    proto, metric = lb.primary_protocol, lb.primary_metric
    scored = [(e, matrix(e, proto)) for e in entries]
    if len({m.shape[1] for _, m in scored}) > 1:
        raise UsageError(f"entries on {lb.key} have different numbers of tasks")
    scored.sort(key=lambda em: (-em[0]["summary"][proto][metric][0], em[0]["agent"]["name"]))
    out: list[Ranked] = []
    leader: np.ndarray | None = None
    group_rank = 1
    for i, (e, m) in enumerate(scored):
        if leader is None or _p_ci(leader, m, lb)[1] > 0.5:
            leader, group_rank = m, i + 1
        out.append(Ranked(e["agent"]["name"], group_rank, e, m))
    return out


Cell = tuple[float, float, float] | None


def improvement_matrix(ranked: Sequence[Ranked], lb: Leaderboard) -> list[list[Cell]]:
    """``[i][j]`` = P(entry i > entry j) with its CI (``None`` on the diagonal)."""
    return [[None if i == j else _p_ci(a.scores, b.scores, lb) for j, b in enumerate(ranked)]
            for i, a in enumerate(ranked)]  # fmt: skip


def fmt_interval(values: Sequence[float | None]) -> str:
    """``0.812 [0.771, 0.840]``; a single seed (no CI) shows ``0.812 (n = 1)``."""
    point, lo, hi = values
    return f"{point:.3f} (n = 1)" if lo is None else f"{point:.3f} [{lo:.3f}, {hi:.3f}]"


def table_rows(ranked: Sequence[Ranked], lb: Leaderboard) -> list[dict[str, str]]:
    """One row of display strings per entry: the leaderboard table's columns."""
    held_out = next((p.name for p in lb.protocols if p.split != "train" and p.name != "few_shot"),
                    None)  # fmt: skip
    rows = []
    for r in ranked:
        s = r.summary(lb.primary_protocol)
        h = r.summary(held_out) if held_out else None
        rows.append({
            "rank": str(r.rank), "agent": r.name,
            lb.primary_metric: fmt_interval(s[lb.primary_metric]),
            "mean": fmt_interval(s["mean"]),
            # The gap to a score of 1 means nothing where scores are not capped at 1 (transfer).
            "optimality_gap": "-" if lb.kind == "transfer" else f"{s['optimality_gap'][0]:.3f}",
            "success": f"{s['success']:.3f}",
            "held_out": fmt_interval(h[lb.primary_metric]) if h else "-",
            "seeds": str(s["n_seeds"]), "budget": f"{r.bundle['budget']['env_steps']:,}",
            "version": r.bundle["agent"]["version"],
        })  # fmt: skip
    return rows


def comparison_text(ranked: Sequence[Ranked], lb: Leaderboard, focus: str) -> str:
    """What ``mtrl compare`` prints: the ranked table, P(focus > each other entry) and the
    per-task scores of the primary protocol."""
    rows = table_rows(ranked, lb)
    cols = list(rows[0])
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = [f"{lb.title} ({lb.key}, {lb.suite}, {lb.steps:,} env steps, "
             f"{lb.eval_episodes} episodes per task; primary: {lb.primary_metric} of "
             f"{lb.primary_protocol} with {lb.confidence:.0%} CI)", ""]  # fmt: skip
    lines.append("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        mark = " <" if r["agent"] == focus else ""
        lines.append("  ".join(r[c].ljust(width[c]) for c in cols) + mark)
    lines += ["", TIE_RULE.format(conf=lb.confidence, metric=lb.primary_metric)]
    me = next((r for r in ranked if r.name == focus), None)
    if me is not None:
        lines += ["", f"P({focus} > other) on {lb.primary_protocol}:"]
        for other in ranked:
            if other.name != focus:
                p, lo, hi = _p_ci(me.scores, other.scores, lb)
                lines.append(f"  {other.name:<24} {fmt_interval((p, lo, hi))}")
        tasks = sorted({(x["task_index"], x["task"]) for x in me.bundle["results"]
                        if x["protocol"] == lb.primary_protocol})  # fmt: skip
        lines += ["", f"per-task {lb.primary_protocol} score (mean over seeds):"]
        for (_, task), score in zip(tasks, me.summary(lb.primary_protocol)["task_score"],
                                    strict=True):  # fmt: skip
            lines.append(f"  {task:<40} {score:.3f}")
    return "\n".join(lines)
