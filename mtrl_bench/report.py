"""Result tables and plots from evaluation records (docs/design.md, "Evaluation and results").

Input: evaluation records (JSON objects of ``eval.jsonl``). One row per (suite, protocol, agent);
seeds are the runs axis, each contributing only its records at its largest ``env_steps``; a seed
lacking a task there is an error. Rows: IQM and mean ``score`` with stratified-bootstrap CIs, mean
success, per-task means; agents of one suite+protocol compared by probability of improvement.
Each row names the code that made it: the distinct short git commits of its seeds' records
(column ``code``, after the agent, in Markdown; ``git_sha`` in CSV). Results made by different
commits are not bitwise comparable, so a table says which commits it mixes. LaTeX tables, meant
for papers, leave it out.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, groupby
from pathlib import Path
from typing import Any

import numpy as np

from mtrl_bench import stats
from mtrl_bench.errors import UsageError
from mtrl_bench.results import atomic_write_bytes
from mtrl_bench.stats import Interval

Record = Mapping[str, Any]
_REQUIRED = ("schema", "suite", "protocol", "task", "task_index", "agent", "seed", "env_steps")
_METRICS = ("score", "success", "return")
CSV_FIELDS = ("suite,protocol,agent,seeds,env_steps,env_steps_max,"
              "iqm,iqm_lo,iqm_hi,mean,mean_lo,mean_hi,success,git_sha").split(",")  # fmt: skip


@dataclass(frozen=True)
class Row:
    suite: str
    protocol: str
    agent: str
    n_seeds: int
    env_steps: int
    """Training budget: the smallest final ``env_steps`` over seeds (equal when runs finished)."""
    env_steps_max: int
    iqm: Interval
    mean: Interval
    success: float
    tasks: tuple[str, ...]
    task_success: tuple[float, ...]
    task_score: tuple[float, ...]
    code: tuple[str, ...] = ()
    """Distinct short git commits of the seeds' final records, in seed order ("?": unknown)."""


@dataclass(frozen=True)
class Comparison:
    suite: str
    protocol: str
    x: str
    y: str
    probability: Interval
    """P(x > y): probability of improvement of agent ``x`` over ``y``; P(y > x) = 1 - this."""


@dataclass(frozen=True)
class Report:
    rows: tuple[Row, ...]
    comparisons: tuple[Comparison, ...]
    reps: int
    confidence: float
    seed: int


def _check_records(records: Sequence[Record]) -> None:
    for i, record in enumerate(records):
        if missing := [key for key in _REQUIRED if key not in record]:
            raise UsageError(f"evaluation record {i} lacks key {missing[0]!r}")
        if record["schema"] != 1:
            raise UsageError(f"evaluation record {i} has schema {record['schema']!r}; allowed: 1")


def _final_table(
    records: Sequence[Record], suite: str, protocol: str, agent: str
) -> tuple[list[int], list[str], dict[int, int], dict[tuple[int, str], Record]]:
    """Seeds, ordered tasks, final env_steps per seed and the (seed, task) -> record table."""
    key = (suite, protocol, agent)
    mine = [r for r in records if (r["suite"], r["protocol"], r["agent"]) == key]
    where = f"agent {agent!r}, {suite}, {protocol}"
    if not mine:
        raise UsageError(f"no evaluation records for {where}")
    # Final budget per seed: in ascending env_steps order the largest is written last.
    steps = {r["seed"]: r["env_steps"] for r in sorted(mine, key=lambda r: r["env_steps"])}
    table: dict[tuple[int, str], Record] = {}
    index: dict[str, int] = {}
    for r in (r for r in mine if r["env_steps"] == steps[r["seed"]]):
        if (r["seed"], r["task"]) in table:
            raise UsageError(f"duplicate record for seed {r['seed']} task {r['task']!r} ({where})")
        if index.setdefault(r["task"], r["task_index"]) != r["task_index"]:
            raise UsageError(f"task {r['task']!r} has two task_index values ({where})")
        table[r["seed"], r["task"]] = r
    seeds, tasks = sorted(steps), sorted(index, key=lambda t: (index[t], t))
    for s, t in ((s, t) for s in seeds for t in tasks if (s, t) not in table):
        raise UsageError(f"seed {s} lacks task {t!r} at its final env_steps {steps[s]} ({where})")
    return seeds, tasks, steps, table


def _matrix(table: Mapping[tuple[int, str], Record], seeds: list[int], tasks: list[str],
            metric: str) -> np.ndarray:  # fmt: skip
    try:
        return np.array([[float(table[s, t][metric]) for t in tasks] for s in seeds])
    except KeyError as exc:
        raise UsageError(f"evaluation record lacks key {exc.args[0]!r}") from None


def score_matrix(
    records: Sequence[Record], *, suite: str, protocol: str, agent: str, metric: str = "score"
) -> tuple[np.ndarray, list[int], list[str]]:
    """(num_seeds, num_tasks) matrix of ``metric``, seeds sorted, tasks ordered by task_index."""
    if metric not in _METRICS:
        raise UsageError(f"metric must be one of {', '.join(_METRICS)}, got {metric!r}")
    _check_records(records)
    seeds, tasks, _, table = _final_table(records, suite, protocol, agent)
    return _matrix(table, seeds, tasks, metric), seeds, tasks


def _commits(table: Mapping[tuple[int, str], Record], seeds: list[int],
             tasks: list[str]) -> tuple[str, ...]:  # fmt: skip
    shas = (str(table[s, t].get("git_sha") or "?")[:7] for s in seeds for t in tasks)
    return tuple(dict.fromkeys(shas))


def build_report(
    records: Sequence[Record], *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Report:
    """One row per (suite, protocol, agent) and P(x > y) for every agent pair per suite+protocol,
    x being the agent with the higher IQM."""
    if not records:
        raise UsageError("no evaluation records to report")
    _check_records(records)
    boot: dict[str, Any] = {"reps": reps, "confidence": confidence, "seed": seed}
    keys = sorted({(r["suite"], r["protocol"], r["agent"]) for r in records})
    rows, scores = [], {}
    for suite, protocol, agent in keys:
        seeds, tasks, steps, table = _final_table(records, suite, protocol, agent)
        score, success = (_matrix(table, seeds, tasks, m) for m in ("score", "success"))
        summary = stats.summarize(score, **boot)
        if len(seeds) == 1:  # one run has no CI: NaN bounds, shown as "(n = 1)", never "[x, x]"
            summary = {k: Interval(v.point, math.nan, math.nan) for k, v in summary.items()}
        scores[suite, protocol, agent] = (score, tasks)
        rows.append(Row(
            suite, protocol, agent, len(seeds), min(steps.values()), max(steps.values()),
            summary["iqm"], summary["mean"], float(success.mean()), tuple(tasks),
            tuple(success.mean(axis=0).tolist()), tuple(score.mean(axis=0).tolist()),
            _commits(table, seeds, tasks),
        ))  # fmt: skip
    iqm = {(r.suite, r.protocol, r.agent): r.iqm.point for r in rows}
    comparisons = []
    for (sx, px, ax), (sy, py, ay) in combinations(keys, 2):  # keys are sorted: groups adjacent
        (x, tasks_x), (y, tasks_y) = scores[sx, px, ax], scores[sy, py, ay]
        if (sx, px) != (sy, py):
            continue
        if tasks_x != tasks_y:
            raise UsageError(f"agents {ax!r} and {ay!r} have different tasks in {sx} {px}")
        if iqm[sy, py, ay] > iqm[sx, px, ax]:  # X is the agent with the higher IQM
            (x, ax), (y, ay) = (y, ay), (x, ax)
        lo, hi = stats.probability_of_improvement_ci(x, y, **boot)
        if min(len(x), len(y)) == 1:
            lo = hi = math.nan
        point = stats.probability_of_improvement(x, y)
        comparisons.append(Comparison(sx, px, ax, ay, Interval(point, lo, hi)))
    return Report(tuple(rows), tuple(comparisons), reps, confidence, seed)


def _interval(i: Interval) -> str:
    if math.isnan(i.lo):
        return f"{i.point:.3f} (n = 1)"
    return f"{i.point:.3f} [{i.lo:.3f}, {i.hi:.3f}]"


def _header(report: Report) -> list[str]:
    ci = f"[{100 * report.confidence:g}% CI]"
    return ["suite", "protocol", "agent", "seeds", "steps", f"IQM {ci}", f"mean {ci}", "success"]


def _cells(row: Row) -> list[str]:
    return [row.suite, row.protocol, row.agent, str(row.n_seeds), str(row.env_steps),
            _interval(row.iqm), _interval(row.mean), f"{row.success:.3f}"]  # fmt: skip


def _md_cells(row: Row) -> list[str]:
    cells = _cells(row)
    return [*cells[:3], " ".join(row.code), *cells[3:]]


def _md_table(header: list[str], rows: list[list[str]], right: int) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"

    rule = ["---"] * (len(header) - right) + ["---:"] * right
    return "\n".join([line(header), "|" + "|".join(rule) + "|", *map(line, rows)]) + "\n"


def to_markdown(report: Report) -> str:
    """Main table (normalised scores, mean success) and the probability-of-improvement table."""
    header = _header(report)
    out = _md_table([*header[:3], "code", *header[3:]], [_md_cells(r) for r in report.rows], 5)
    if report.comparisons:
        header = ["suite", "protocol", "X", "Y", f"P(X > Y) [{100 * report.confidence:g}% CI]"]
        cells = [
            [c.suite, c.protocol, c.x, c.y, _interval(c.probability)] for c in report.comparisons
        ]
        out += "\n" + _md_table(header, cells, right=1)
    return out


def _groups(report: Report) -> dict[tuple[str, str], list[Row]]:
    # Rows are sorted by (suite, protocol, agent), so each group is one run of rows.
    return {k: list(g) for k, g in groupby(report.rows, key=lambda r: (r.suite, r.protocol))}


def to_markdown_per_task(report: Report) -> str:
    """Per-task mean success rate over seeds, one table per suite and protocol."""
    parts = []
    for (suite, protocol), rows in _groups(report).items():
        cells = [[r.agent, *(f"{s:.3f}" for s in r.task_success)] for r in rows]
        table = _md_table(["agent", *rows[0].tasks], cells, right=len(rows[0].tasks))
        parts.append(f"### {suite} ({protocol}): success rate per task\n\n{table}")
    return "\n".join(parts)


def to_csv(report: Report) -> str:
    """Machine-readable rows with full-precision numbers."""
    writer = csv.writer(buf := io.StringIO(), lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in report.rows:
        writer.writerow([r.suite, r.protocol, r.agent, r.n_seeds, r.env_steps, r.env_steps_max,
                         *(("" if math.isnan(x) else x) for x in (r.iqm.point, r.iqm.lo,
                           r.iqm.hi, r.mean.point, r.mean.lo, r.mean.hi)), r.success,
                         " ".join(r.code)])  # fmt: skip
    return buf.getvalue()


LATEX_ESCAPES = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$",
                        "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"})  # fmt: skip


def to_latex(report: Report) -> str:
    """A booktabs tabular (needs ``\\usepackage{booktabs}``); special characters escaped."""

    def line(cells: list[str]) -> str:
        return " & ".join(c.translate(LATEX_ESCAPES) for c in cells) + r" \\"

    head = [r"\begin{tabular}{lllrrllr}", r"\toprule", line(_header(report)), r"\midrule"]
    return "\n".join(
        [*head, *map(line, map(_cells, report.rows)), r"\bottomrule", r"\end{tabular}", ""]
    )


def _render_png(report: Report) -> bytes:
    # A bare Figure renders with Agg and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    groups = _groups(report)
    colors = {a: f"C{i % 10}" for i, a in enumerate(sorted({r.agent for r in report.rows}))}
    slots = sum(len(rows[0].tasks) + 1 for rows in groups.values())  # tasks + group gaps
    fig = Figure(figsize=(max(8.0, 0.5 * slots + 4.0), 8.0), layout="constrained")
    ax_iqm, ax_task = fig.subplots(2, 1)
    ticks: list[tuple[float, str]] = []
    task_ticks: list[tuple[float, str]] = []
    width = 0.8 / max(len(rows) for rows in groups.values())
    for g, ((suite, protocol), rows) in enumerate(groups.items()):
        x0 = ticks[-1][0] + 1.5 if ticks else 0.0
        t0 = task_ticks[-1][0] + 1.5 if task_ticks else 0.0
        for k, r in enumerate(rows):
            err = None if math.isnan(r.iqm.lo) else [[r.iqm.point - r.iqm.lo],
                                                     [r.iqm.hi - r.iqm.point]]
            ax_iqm.errorbar(x0 + k, r.iqm.point, err, fmt="o", capsize=4, color=colors[r.agent])
            ticks.append((x0 + k, r.agent))
            offset = (k - (len(rows) - 1) / 2) * width
            ax_task.bar(t0 + np.arange(len(r.tasks)) + offset, r.task_success, width,
                        color=colors[r.agent])  # fmt: skip
        task_ticks += [(t0 + j, task) for j, task in enumerate(rows[0].tasks)]
        for ax, start, end in ((ax_iqm, x0, ticks[-1][0]), (ax_task, t0, task_ticks[-1][0])):
            ax.text((start + end) / 2, 1.01, f"{suite} ({protocol})", ha="center",
                    transform=ax.get_xaxis_transform(), fontsize=8)  # fmt: skip
            if g:  # a thin line between groups
                ax.axvline(start - 0.75, color="0.8", lw=0.8)
            ax.set_xlim(-0.75, end + 0.75)
    ax_iqm.set_xticks(*zip(*ticks, strict=True), rotation=30, ha="right", fontsize=8)
    ax_iqm.set_ylabel(f"IQM score ({100 * report.confidence:g}% CI)")
    ax_task.set_xticks(*zip(*task_ticks, strict=True), rotation=45, ha="right", fontsize=7)
    ax_task.set(ylabel="success rate", ylim=(0.0, 1.05))
    ax_task.legend(handles=[Patch(color=c, label=a) for a, c in colors.items()], fontsize=8)
    fig.savefig(buf := io.BytesIO(), format="png", dpi=120)
    return buf.getvalue()


def plot(report: Report, path: str | Path) -> Path:
    """IQM with CIs per agent (grouped by suite and protocol) above per-task success; PNG."""
    atomic_write_bytes(Path(path), _render_png(report))
    return Path(path)


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write table.md, table.csv, table.tex, per_task.md and report.png atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = {"table.md": to_markdown(report), "table.csv": to_csv(report),
             "table.tex": to_latex(report),
             "per_task.md": to_markdown_per_task(report)}  # fmt: skip
    for name, text in texts.items():
        atomic_write_bytes(out / name, text.encode())
    return [out / name for name in texts] + [plot(report, out / "report.png")]
