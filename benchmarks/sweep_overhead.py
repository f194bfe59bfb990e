"""Sweep overhead: the same grid of runs with the local process pool and with Ray, one machine.

    python benchmarks/sweep_overhead.py [--quick] [--runs N] [--workers W] [--out PATH]

Grids (``mtrl_bench.sweep``): ``short``, N runs of the random policy on ``toy/goal-line-v1``
(5 env steps, 2 evaluation episodes per task: almost no work, so the wall time is the
executor's); ``mtppo`` (not with ``--quick``), 4 runs of MTPPO's ci preset on the same suite
(4,000 env steps: a JAX import and compile per worker, seconds of work per run).

Each grid runs three times into fresh run stores: serially in this process after a warm-up run
(the work itself, imports already paid), with the local pool (``--workers`` spawned processes)
and on Ray (``ray.init`` of a local instance with ``--workers`` CPUs; its start-up is timed
apart and excluded). Scheduling overhead per run = (wall - serial / workers) / runs: what an
executor adds to perfectly parallel work, worker start-up included. Rows: name, ours (Ray,
runs/s), peer (local pool, runs/s), peer_name, unit, ratio (ours / peer), the walls, overheads,
``ray_start_s``, load_avg_1m (the machine is shared: compare rows of one run only), machine,
when. Written to ``--out`` (default ``benchmarks/out/sweep_overhead.json``) and a Markdown
table beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mtrl_bench.sweep import Grid, run_sweep
from mtrl_bench.sweep_store import Store

TOY = "toy/goal-line-v1"


def timed_sweep(grid: list[Grid], executor: str, jobs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        outcomes = run_sweep(grid, Store(tmp), executor=executor, jobs=jobs, progress=False)
        wall = time.perf_counter() - start
    assert all(o.state == "done" for o in outcomes), outcomes
    return wall


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                 platform.processor())  # fmt: skip
    return f"{model}, {os.cpu_count()} cores"


def measure(name: str, grid: list[Grid], runs: int, workers: int, ray_start_s: float,
            quick: bool) -> dict:  # fmt: skip
    warm = [Grid(**{**grid[0].__dict__, "seeds": (10_000,)})]
    timed_sweep(warm, "local", 1)  # imports and compiles once, so serial is the work alone
    serial = timed_sweep(grid, "local", 1)
    load = os.getloadavg()[0]
    local = timed_sweep(grid, "local", workers)
    on_ray = timed_sweep(grid, "ray", workers)
    ideal = serial / workers
    row = {
        "name": f"{name}: {runs} runs, Ray vs local pool ({workers} workers)",
        "ours": round(runs / on_ray, 3), "peer": round(runs / local, 3),
        "peer_name": f"local process pool ({workers} spawned processes)", "unit": "runs/s",
        "ratio": round(local / on_ray, 3), "serial_s": round(serial, 2),
        "local_wall_s": round(local, 2), "ray_wall_s": round(on_ray, 2),
        "local_overhead_s_per_run": round((local - ideal) / runs, 3),
        "ray_overhead_s_per_run": round((on_ray - ideal) / runs, 3),
        "ray_start_s": round(ray_start_s, 2), "load_avg_1m": round(load, 2),
        "machine": machine(), "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
    }  # fmt: skip
    print(f"{row['name']}: serial {serial:.2f} s, local pool {local:.2f} s "
          f"({row['local_overhead_s_per_run']:+.3f} s/run), Ray {on_ray:.2f} s "
          f"({row['ray_overhead_s_per_run']:+.3f} s/run), Ray / local speed {row['ratio']:.2f}x"
          f" (load {load:.1f})", flush=True)  # fmt: skip
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| grid | serial (s) | local pool (s) | Ray (s) | overhead/run local (s) | "
             "overhead/run Ray (s) | Ray / local speed | Ray start (s) | load |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['name']} | {r['serial_s']} | {r['local_wall_s']} | {r['ray_wall_s']} "
                     f"| {r['local_overhead_s_per_run']} | {r['ray_overhead_s_per_run']} | "
                     f"{r['ratio']} | {r['ray_start_s']} | {r['load_avg_1m']} |")  # fmt: skip
    return "\n".join(lines) + f"\n\n{rows[0]['machine']}, {rows[0]['when']}" + (
        ", --quick" if rows[0]["quick"] else "") + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short grid only")
    parser.add_argument("--runs", type=int, default=24, help="runs of the short grid")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/sweep_overhead.json"))
    args = parser.parse_args(argv)
    # A local, single-machine instance: no token authentication (Ray would otherwise write a
    # token to ~/.ray, which later `ray start` clusters on this machine then require).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=args.workers, object_store_memory=80_000_000, include_dashboard=False,
             logging_level="warning")  # fmt: skip
    ray_start_s = time.perf_counter() - start
    try:
        short = [Grid(agents=("random",), suites=(TOY,), seeds=tuple(range(args.runs)), steps=5,
                      eval_episodes=2, protocols=("mt",))]  # fmt: skip
        rows = [measure("short", short, args.runs, args.workers, ray_start_s, args.quick)]
        if not args.quick:
            mtppo = [Grid(agents=("mtppo",), presets=("ci",), suites=(TOY,), seeds=(0, 1, 2, 3),
                          steps=4000, eval_episodes=2, protocols=("mt",))]  # fmt: skip
            rows.append(measure("mtppo ci", mtppo, 4, args.workers, ray_start_s, args.quick))
    finally:
        ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
