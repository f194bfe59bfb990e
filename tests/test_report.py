"""mtrl_bench.report: score matrices, report rows, table formats, plot and atomic files."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mtrl_bench import report as rp
from mtrl_bench import stats
from mtrl_bench.errors import UsageError

SUITE = "minigrid/mt3-v1"
TASKS = ["MiniGrid-DoorKey-5x5-v0", "MiniGrid-Empty-6x6-v0", "MiniGrid_Unlock&Pick%v0"]
STEPS = 100_000
# scores[agent][seed][task], all distinct so every aggregate is checkable by hand
SCORES = {
    "mtppo": [[0.10, 0.50, 0.90], [0.20, 0.60, 0.70], [0.30, 0.40, 0.80]],
    "moore": [[0.55, 0.65, 0.95], [0.45, 0.75, 0.85], [0.35, 0.70, 1.00]],
}


def record(agent: str, seed: int, task: int, score: float, **over: Any) -> dict[str, Any]:
    rec = {
        "schema": 1, "suite": SUITE, "protocol": "mt", "protocol_version": 1, "split": "train",
        "task": TASKS[task], "task_index": task, "agent": agent, "config_hash": "abc123",
        "seed": seed, "env_steps": STEPS, "episodes": 10, "success": min(1.0, score + 0.05),
        "return": 10 * score, "score": score, "git_sha": "deadbeef", "time": "2024-01-01T00:00:00",
    }  # fmt: skip
    rec.update(over)
    return rec


def records() -> list[dict[str, Any]]:
    out = [
        record(agent, seed, task, SCORES[agent][seed][task])
        for agent in SCORES
        for seed in range(3)
        for task in (2, 0, 1)  # file order is not task order
    ]
    # An earlier checkpoint of every seed with very different scores: must be ignored.
    out += [record("moore", s, t, 0.0, env_steps=STEPS // 2) for s in range(3) for t in range(3)]
    return out


@pytest.fixture(scope="module")
def report() -> rp.Report:
    return rp.build_report(records(), reps=500, seed=0)


def test_score_matrix_orders_tasks_and_takes_final_checkpoint() -> None:
    matrix, seeds, tasks = rp.score_matrix(records(), suite=SUITE, protocol="mt", agent="moore")
    assert seeds == [0, 1, 2]
    assert tasks == TASKS
    np.testing.assert_array_equal(matrix, SCORES["moore"])
    success, _, _ = rp.score_matrix(
        records(), suite=SUITE, protocol="mt", agent="moore", metric="success"
    )
    np.testing.assert_allclose(success, np.minimum(1.0, np.array(SCORES["moore"]) + 0.05))


def test_largest_env_steps_per_seed() -> None:
    # Seed 1 also has a later checkpoint; seeds 0 and 2 only the earlier one.
    recs = [record("a", s, t, 0.1 * (s + 1), env_steps=1000) for s in range(3) for t in range(3)]
    recs += [record("a", 1, t, 0.9, env_steps=3000) for t in range(3)]
    matrix, _, _ = rp.score_matrix(recs, suite=SUITE, protocol="mt", agent="a")
    np.testing.assert_allclose(matrix, [[0.1] * 3, [0.9] * 3, [0.3] * 3])
    (row,) = rp.build_report(recs, reps=50).rows
    assert (row.env_steps, row.env_steps_max) == (1000, 3000)
    # The final checkpoint must be complete: a later partial evaluation is an error.
    recs.append(record("a", 2, 0, 0.5, env_steps=4000))
    with pytest.raises(UsageError, match=r"seed 2 lacks task 'MiniGrid-Empty-6x6-v0'"):
        rp.score_matrix(recs, suite=SUITE, protocol="mt", agent="a")


def test_report_rows_match_stats(report: rp.Report) -> None:
    assert [r.agent for r in report.rows] == ["moore", "mtppo"]
    for row in report.rows:
        scores = np.array(SCORES[row.agent])
        summary = stats.summarize(scores, reps=500, seed=0)
        assert (row.suite, row.protocol, row.n_seeds, row.env_steps) == (SUITE, "mt", 3, STEPS)
        assert row.iqm == summary["iqm"]
        assert row.iqm.point == stats.iqm(scores)
        assert row.mean == summary["mean"]
        assert row.tasks == tuple(TASKS)
        np.testing.assert_allclose(row.task_score, scores.mean(axis=0))
        success = np.minimum(1.0, scores + 0.05)
        np.testing.assert_allclose(row.task_success, success.mean(axis=0))
        assert row.success == pytest.approx(success.mean())
    # Hand check: mtppo's 9 scores sorted are 0.1 .. 0.9 -> IQM over the middle 0.3..0.7 = 0.5
    assert report.rows[1].iqm.point == pytest.approx(0.5)


def test_probability_of_improvement_between_agents(report: rp.Report) -> None:
    (cmp,) = report.comparisons
    x, y = np.array(SCORES["moore"]), np.array(SCORES["mtppo"])
    assert (cmp.suite, cmp.protocol, cmp.x, cmp.y) == (SUITE, "mt", "moore", "mtppo")
    assert cmp.probability.point == stats.probability_of_improvement(x, y)
    lo_hi = stats.probability_of_improvement_ci(x, y, reps=500, seed=0)
    assert (cmp.probability.lo, cmp.probability.hi) == lo_hi
    # No comparison across protocols.
    recs = records() + [record("zs", s, t, 0.5, protocol="zero_shot") for s in range(2)
                        for t in range(3)]  # fmt: skip
    assert len(rp.build_report(recs, reps=50).comparisons) == 1


def test_markdown(report: rp.Report) -> None:
    md = rp.to_markdown(report)
    lines = md.splitlines()
    assert lines[0].startswith("| suite | protocol | agent | code | seeds | steps | IQM [95% CI]")
    row = report.rows[0]
    iqm = f"{row.iqm.point:.3f} [{row.iqm.lo:.3f}, {row.iqm.hi:.3f}]"
    mean = f"{row.mean.point:.3f} [{row.mean.lo:.3f}, {row.mean.hi:.3f}]"
    expected = f"| {SUITE} | mt | moore | deadbee | 3 | {STEPS} | {iqm} | {mean} | {row.success:.3f} |"  # noqa: E501
    assert expected in lines
    assert any(line.startswith(f"| {SUITE} | mt | mtppo | deadbee | 3 |") for line in lines)
    assert "P(X > Y)" in md and "| moore | mtppo |" in md
    per_task = rp.to_markdown_per_task(report)
    assert f"| agent | {' | '.join(TASKS)} |" in per_task
    mtppo_success = np.minimum(1.0, np.array(SCORES["mtppo"]) + 0.05).mean(axis=0)
    assert "| mtppo | " + " | ".join(f"{s:.3f}" for s in mtppo_success) + " |" in per_task


def test_rows_name_the_commits_that_made_them() -> None:
    """Seeds run by different commits: the row lists each commit once, in seed order, and
    a record without one shows "?"."""
    recs = [dict(r) for r in records()]
    for r in recs:
        r["git_sha"] = {0: "1111111aaaa", 1: "2222222bbbb", 2: None}[r["seed"]]
    report = rp.build_report(recs, reps=50)
    assert report.rows[0].code == ("1111111", "2222222", "?")
    assert "| moore | 1111111 2222222 ? | 3 |" in rp.to_markdown(report)
    assert list(csv.DictReader(io.StringIO(rp.to_csv(report))))[0]["git_sha"] == "1111111 2222222 ?"


def test_csv(report: rp.Report) -> None:
    rows = list(csv.DictReader(io.StringIO(rp.to_csv(report))))
    assert [r["agent"] for r in rows] == ["moore", "mtppo"]
    assert list(rows[0]) == rp.CSV_FIELDS
    for parsed, row in zip(rows, report.rows, strict=True):
        assert parsed["suite"] == SUITE and parsed["protocol"] == "mt"
        assert int(parsed["seeds"]) == 3 and int(parsed["env_steps"]) == STEPS
        assert float(parsed["iqm"]) == row.iqm.point  # full precision round-trips
        assert (float(parsed["iqm_lo"]), float(parsed["iqm_hi"])) == (row.iqm.lo, row.iqm.hi)
        assert float(parsed["mean"]) == row.mean.point
        assert float(parsed["success"]) == row.success
        assert parsed["git_sha"] == "deadbee"


def test_latex_escapes(report: rp.Report) -> None:
    recs = [record("my_agent&co", s, t, 0.5, suite="toy/100%_v1") for s in range(2)
            for t in range(3)]  # fmt: skip
    tex = rp.to_latex(rp.build_report(recs, reps=50))
    assert tex.startswith(r"\begin{tabular}")
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\end{tabular}"):
        assert cmd in tex
    assert r"toy/100\%\_v1 & mt & my\_agent\&co & 2 & " in tex
    assert r"IQM [95\% CI]" in tex
    body = rp.to_latex(report)
    assert r"minigrid/mt3-v1 & mt & moore & 3" in body
    assert body.count(r" \\") == 3  # header + 2 rows
    assert "_" not in tex.replace(r"\_", "")


def test_write_report_and_plot(report: rp.Report, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report"
    paths = rp.write_report(report, out)
    names = ["table.md", "table.csv", "table.tex", "per_task.md", "report.png"]
    assert [p.name for p in paths] == names
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temp files left
    assert (out / "table.md").read_text() == rp.to_markdown(report)
    assert (out / "table.csv").read_text() == rp.to_csv(report)
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000
    # Overwrite in place (atomic replace), several suite/protocol groups.
    recs = records() + [record("zs", s, t, 0.5, protocol="zero_shot") for s in range(2)
                        for t in range(3)]  # fmt: skip
    rp.plot(rp.build_report(recs, reps=50), out / "report.png")
    assert (out / "report.png").read_bytes()[:8] == png[:8]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)


def test_errors() -> None:
    with pytest.raises(UsageError, match="no evaluation records to report"):
        rp.build_report([])
    recs = [r for r in records() if not (r["agent"] == "mtppo" and r["seed"] == 1 and r["task"]
                                         == TASKS[2])]  # fmt: skip
    with pytest.raises(UsageError, match=rf"seed 1 lacks task '{TASKS[2]}'.*'mtppo'"):
        rp.build_report(recs)
    with pytest.raises(UsageError, match="no evaluation records for agent 'nobody'"):
        rp.score_matrix(records(), suite=SUITE, protocol="mt", agent="nobody")
    with pytest.raises(UsageError, match="metric must be one of"):
        rp.score_matrix(records(), suite=SUITE, protocol="mt", agent="moore", metric="bogus")
    bad = records()
    del bad[4]["task"]
    with pytest.raises(UsageError, match="evaluation record 4 lacks key 'task'"):
        rp.build_report(bad)
    with pytest.raises(UsageError, match="schema 2"):
        rp.build_report([record("a", 0, 0, 0.5, schema=2)])
    with pytest.raises(UsageError, match="duplicate record for seed 0 task"):
        rp.build_report(records() + [record("mtppo", 0, 1, 0.3)])
    with pytest.raises(UsageError, match="different tasks"):
        rp.build_report([record("a", 0, 0, 0.5), record("b", 0, 1, 0.5)])


def test_comparison_puts_the_higher_iqm_agent_first() -> None:
    renamed = [{**r, "agent": {"moore": "z-strong", "mtppo": "a-weak"}[r["agent"]]}
               for r in records()]  # fmt: skip
    (cmp,) = rp.build_report(renamed, reps=50).comparisons
    assert (cmp.x, cmp.y) == ("z-strong", "a-weak") and cmp.probability.point > 0.5


def test_a_single_seed_shows_n_1_and_no_interval(tmp_path: Path) -> None:
    one = [record("solo", 0, t, 0.5 + 0.1 * t) for t in range(3)]
    many = [record("team", s, t, 0.4 + 0.05 * s) for s in range(3) for t in range(3)]
    result = rp.build_report(one + many, reps=200, seed=0)
    solo = next(r for r in result.rows if r.agent == "solo")
    assert np.isnan(solo.iqm.lo) and np.isnan(solo.mean.hi) and solo.iqm.point == pytest.approx(0.6)
    md = rp.to_markdown(result)
    assert "0.600 (n = 1)" in md and "[0.600, 0.600]" not in md
    assert "(n = 1)" in md.split("P(X > Y)")[1]  # the comparison with a single seed has no CI
    row = next(r for r in csv.DictReader(io.StringIO(rp.to_csv(result))) if r["agent"] == "solo")
    assert row["iqm_lo"] == "" and float(row["iqm"]) == pytest.approx(0.6)
    assert rp.write_report(result, tmp_path)  # the plot draws the point without an error bar
