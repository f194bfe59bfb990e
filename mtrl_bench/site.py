"""The static leaderboard site: ``mtrl leaderboard --bundles DIR --out DIR``.

Every bundle under the given folders is loaded as untrusted input (``bundle.load``), grouped by
leaderboard and ranked with tie groups (``ranking``). The site is plain files that work from
``file://`` with no server and nothing loaded from the network: an index, one page per
leaderboard (sortable table, tie rule, probability-of-improvement matrix, performance profiles
and training curves as SVG, per-task scores, the table as CSV / Markdown / LaTeX downloads).
Templates are Jinja2 with autoescaping on, so an agent named ``<script>`` is shown as text.
A bundle with a sidecar ``<name>.verify.json`` from ``mtrl verify`` whose digest matches the
bundle's bytes is marked verified.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mtrl_bench import bundle as bundles
from mtrl_bench import ranking, stats
from mtrl_bench.errors import UsageError
from mtrl_bench.leaderboard import Leaderboard, leaderboards
from mtrl_bench.report import LATEX_ESCAPES
from mtrl_bench.results import atomic_write_text

COLUMNS = ("rank", "agent", "primary", "mean", "optimality_gap", "success", "held_out", "seeds",
           "budget", "verified", "version")  # fmt: skip


def find_bundles(folders: Iterable[Path]) -> list[Path]:
    paths: list[Path] = []
    for folder in map(Path, folders):
        if folder.is_file():
            paths.append(folder)
        elif folder.is_dir():
            found = folder.rglob("*.json")
            paths += sorted(p for p in found if not p.name.endswith(".verify.json"))
        else:
            raise UsageError(f"bundles path {folder} does not exist")
    return paths


def verified(path: Path) -> bool:
    """Whether ``mtrl verify`` passed on exactly these bytes (its sidecar names their digest)."""
    side = path.with_name(path.name.removesuffix(".json") + ".verify.json")
    if not side.is_file():
        return False
    try:
        record = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return isinstance(record, dict) and record.get("bundle_sha256") == digest and \
        record.get("passed") is True


def load_all(paths: Sequence[Path]) -> dict[str, tuple[Leaderboard, list[dict[str, Any]]]]:
    boards: dict[str, tuple[Leaderboard, list[dict[str, Any]]]] = {}
    for path in paths:
        try:
            b, lb = bundles.load(path)
        except UsageError as exc:
            raise UsageError(f"{path}: {exc}") from None
        b["_verified"] = verified(path)
        boards.setdefault(lb.key, (lb, []))[1].append(b)
    return boards


def _table(ranked: Sequence[ranking.Ranked], lb: Leaderboard) -> list[dict[str, Any]]:
    rows = []
    for r, text in zip(ranked, ranking.table_rows(ranked, lb), strict=True):
        s = r.summary(lb.primary_protocol)
        rows.append({**text, "primary": text[lb.primary_metric],
                     "verified": "yes" if r.bundle["_verified"] else "no",
                     "sort": {"rank": r.rank, "primary": s[lb.primary_metric][0],
                              "mean": s["mean"][0], "optimality_gap": s["optimality_gap"][0]
                              if lb.kind != "transfer" else 0.0,
                              "success": s["success"], "seeds": s["n_seeds"],
                              "budget": r.bundle["budget"]["env_steps"]}})  # fmt: skip
    return rows


def downloads(rows: Sequence[dict[str, Any]], lb: Leaderboard) -> dict[str, str]:
    """The page's table as CSV, Markdown and LaTeX (same rows, same strings)."""
    head = [c if c != "primary" else f"{lb.primary_metric} [CI]" for c in COLUMNS]
    body = [[str(r[c]) for c in COLUMNS] for r in rows]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([head, *body])
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]

    def tex(cell: str) -> str:
        return cell.translate(LATEX_ESCAPES)

    latex = [r"\begin{tabular}{" + "l" * len(head) + "}", r"\toprule",
             " & ".join(map(tex, head)) + r" \\", r"\midrule"]  # fmt: skip
    latex += [" & ".join(map(tex, row)) + r" \\" for row in body]
    latex += [r"\bottomrule", r"\end{tabular}"]
    return {"csv": buf.getvalue(), "md": "\n".join(md) + "\n", "tex": "\n".join(latex) + "\n"}


def _svg(fig: Any) -> str:
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    # No timestamp and a fixed id salt: the same bundles give the same bytes.
    with matplotlib.rc_context({"svg.hashsalt": "mtrl-bench"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def profile_svg(ranked: Sequence[ranking.Ranked], lb: Leaderboard) -> str:
    """Performance profiles (fraction of runs x tasks above tau) with pointwise CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(1.0, max(float(r.scores.max()) for r in ranked))
    taus = np.linspace(0.0, top, 101)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in ranked:
        lo, hi = stats.performance_profile_ci(r.scores, taus, reps=lb.reps, seed=0)
        ax.plot(taus, stats.performance_profile(r.scores, taus), label=r.name)
        ax.fill_between(taus, lo, hi, alpha=0.15)
    ax.set(xlabel="normalised score tau", ylabel="fraction of runs x tasks > tau",
           title=f"{lb.key}: performance profiles ({lb.primary_protocol})")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def curves_svg(ranked: Sequence[ranking.Ranked], lb: Leaderboard) -> str | None:
    """Training success against env steps (mean over seeds) where bundles carry curves."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    plotted = False
    for r in ranked:
        curves = [np.array(c) for c in r.bundle["curves"].values() if c]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        steps, success = curves[0][:n, 0], np.stack([c[:n, 1] for c in curves])
        ax.plot(steps, success.mean(0), label=f"{r.name} ({len(curves)} seeds)")
        ax.fill_between(steps, success.min(0), success.max(0), alpha=0.15)
        plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set(xlabel="env steps (all tasks)", ylabel="training success (min-max band)",
           title=f"{lb.key}: sample efficiency")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def _env() -> Any:
    import jinja2

    loader = jinja2.FunctionLoader(
        lambda name: resources.files("mtrl_bench").joinpath("templates", name).read_text())
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)  # fmt: skip


def page_name(lb: Leaderboard) -> str:
    return f"{lb.id}-v{lb.version}"


def build_site(folders: Iterable[Path], out: Path) -> Path:
    """Write the site into ``out`` (created; existing files of the same names are replaced);
    returns the index page."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    boards = load_all(find_bundles(folders))
    if not boards:
        raise UsageError("no bundles found; give --bundles folders that hold *.json bundles")
    env, files, index = _env(), {}, []
    for key in sorted(boards):
        lb, entries = boards[key]
        ranked = ranking.rank(entries, lb)
        rows, name = _table(ranked, lb), page_name(lb)
        tasks = sorted({(x["task_index"], x["task"]) for x in ranked[0].bundle["results"]
                        if x["protocol"] == lb.primary_protocol})  # fmt: skip
        for ext, text in downloads(rows, lb).items():
            files[f"{name}.{ext}"] = text
        files[f"{name}-profile.svg"] = profile_svg(ranked, lb)
        curves = curves_svg(ranked, lb)
        if curves:
            files[f"{name}-curves.svg"] = curves
        files[f"{name}.html"] = env.get_template("board.html.j2").render(
            lb=lb, name=name, rows=rows, ranked=ranked, tasks=[t for _, t in tasks],
            matrix=ranking.improvement_matrix(ranked, lb), curves=bool(curves),
            tie_rule=ranking.TIE_RULE.format(conf=lb.confidence, metric=lb.primary_metric),
            fmt=ranking.fmt_interval, columns=COLUMNS)  # fmt: skip
        index.append({"lb": lb, "name": name, "n": len(ranked), "top": rows[0]})
    # Shipped definitions that no bundle here entered yet (e.g. a paper budget beyond one
    # machine): listed, so a reader sees what exists and what it would take to enter.
    empty = [lb for key, lb in sorted(leaderboards().items()) if key not in boards]
    files["index.html"] = env.get_template("index.html.j2").render(boards=index, empty=empty)
    files["site.css"] = resources.files("mtrl_bench").joinpath("templates", "site.css").read_text()
    files["sort.js"] = resources.files("mtrl_bench").joinpath("templates", "sort.js").read_text()
    out.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        atomic_write_text(out / fname, text)
    return out / "index.html"

