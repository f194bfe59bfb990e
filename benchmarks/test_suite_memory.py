"""Wall time and peak memory of the default test run (what ``make test`` runs), issue 17.

    python benchmarks/test_suite_memory.py --out benchmarks/results/test_suite_memory.json
    python benchmarks/test_suite_memory.py -- tests/test_mtppo.py   # pytest arguments after --
    python benchmarks/test_suite_memory.py --render benchmarks/results/test_suite_memory.json

``--out X.json`` also writes ``X.md`` (a one-row table, included in docs/performance.md);
``--render`` rewrites that table from an existing JSON row.

Runs ``python -m pytest -q -n 2`` in a child process and samples, every 0.5 s, the resident set
size (``VmRSS`` in ``/proc``) of every process in its tree: the pytest controller, the two xdist
workers and whatever the tests start (spawned transfer workers, ``mtrl`` subprocesses, a Ray
cluster on loopback). It reports the largest single process (the target: under 3 GB) and the
largest sum over the tree, with the wall time, the pytest summary line and the machine's load
average before and after. Linux only (reads ``/proc``). Sampling can miss a peak shorter than
0.5 s, so the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:  # the process ended meanwhile
                continue
            kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(name))
    return kids


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0  # ended, or a kernel thread / zombie without VmRSS


def tree_rss_kb(root: int) -> dict[int, int]:
    """pid -> RSS (kB) of ``root`` and all its descendants."""
    kids, out, stack = _children(), {}, [root]
    while stack:
        pid = stack.pop()
        out[pid] = _rss_kb(pid)
        stack += kids.get(pid, [])
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"


def measure(pytest_args: list[str], workers: int) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", str(workers), "-p", "no:cacheprovider",
           *pytest_args]  # fmt: skip
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    peak_total = peak_single = 0
    peak_process = ""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        rss = tree_rss_kb(proc.pid)
        peak_total = max(peak_total, sum(rss.values()))
        pid = max(rss, key=rss.__getitem__)
        if rss[pid] > peak_single:
            peak_single, peak_process = rss[pid], _cmdline(pid)
        time.sleep(0.5)
    reader.join()
    wall = time.perf_counter() - start
    summary = next((ln.strip() for ln in reversed(lines) if " in " in ln and "passed" in ln), "")
    failed = [ln.split(" ", 1)[1].strip() for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {"benchmark": "test_suite_memory", "time": now,
            "command": " ".join(["python", *cmd[1:]]), "returncode": proc.returncode,
            "wall_s": round(wall, 1), "summary": summary, "failed": failed,
            "peak_single_process_gb": round(peak_single / 1e6, 2), "peak_process": peak_process,
            "peak_tree_total_gb": round(peak_total / 1e6, 2), "target_single_gb": 3.0,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count()}  # fmt: skip


def markdown(row: dict) -> str:
    head = (
        "| command | tests | wall (s) | peak, one process (GB) | target (GB) | peak, all "
        "processes (GB) | load before / after |"
    )
    tests = row["summary"] + "".join(f"; failed: {f}" for f in row.get("failed", []))
    cells = (
        f"`{row['command']}`",
        tests,
        f"{row['wall_s']:.0f}",
        f"{row['peak_single_process_gb']:.2f}",
        f"{row['target_single_gb']:.1f}",
        f"{row['peak_tree_total_gb']:.2f}",
        f"{row['load_before']} / {row['load_after']}",
    )
    return (f"Written by `python benchmarks/test_suite_memory.py` ({row['time']}, "
            f"{row['cpus']} cores).\n\n{head}\n|---|---|---:|---:|---:|---:|---:|\n"
            f"| {' | '.join(cells)} |\n")  # fmt: skip


def _write(row: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(row))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the JSON row here as well")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (default 2)")
    parser.add_argument("--render", type=Path, help="only rewrite the .md of this JSON row")
    args = parser.parse_args(own)
    if args.render:
        _write(json.loads(args.render.read_text()), args.render)
        return 0
    if not Path("/proc/self/status").exists():
        print("test_suite_memory: needs Linux /proc", file=sys.stderr)
        return 2
    row = measure(rest, args.workers)
    text = json.dumps(row, indent=1)
    print(text)
    if args.out:
        _write(row, args.out)
    return 0 if row["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
