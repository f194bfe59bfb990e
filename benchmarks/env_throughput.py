"""Env throughput: our JAX envs against their peers, each measurement in its own process.

    python benchmarks/env_throughput.py [--quick] [--no-navix] [--no-traffic] [--limit S]
        [--batches 4096,16384] [--slots K,...] [--out PATH] [--navix-venv DIR]

Workloads and peers (the batch ``B`` is the number of sub-envs stepped together):

- ``DoorKey-6x6`` (``MiniGrid-DoorKey-6x6-v0``) and ``MT3`` mixed (LavaGapS7, RedBlueDoors-6x6,
  MemoryS11; sub-env ``i`` runs task ``i % 3``), uniformly random actions, env steps/s, against
  minigrid 3.2.0 (``gymnasium.vector.SyncVectorEnv``, ``ImgObsWrapper``) and navix 4.0.0
  (``symbolic_first_person``, its 7x7x3 egocentric view);
- ``signal`` control (the CTM) under fixed-time control and ``eco``-driving (IDM everywhere),
  the default context, simulated seconds per wall second summed over the batch, against one
  libsumo simulation driven by the SUMO suites' driver (``traffic_throughput.py``).

Ours is the vector step the product uses (``jax_vector.vector_step``: ``JaxVectorEnv`` and the
agents' rollouts), SAME_STEP autoreset with optimistic resets (``jax_env.reset_done``; ``--slots``
measures other values of ``K``, e.g. ``--slots 4096`` resets every sub-env on every step as
``vmap(env.step)`` does). Sub-envs start at uniformly staggered points of their episodes
(MiniGrid ``step_count``, traffic ``t``), the steady state of a long run, so that a short timed
window pays its share of resets: a window starting from synchronized resets would see no
episode end. navix resets inside ``vmap`` (``lax.cond`` becomes a select: both branches every
step), minigrid steps Python envs one by one; neither depends on where episodes are.

Modes (steps/s = batch * steps / best wall time over repeats, compile time measured AOT with
``jit(f).lower(...).compile()``, excluded and reported beside it): ``scan``, N steps in one jitted
``lax.scan`` with actions drawn inside (what a jitted training loop sees); ``step``, one jitted
call per step from Python; ``gym`` (ours only), ``JaxVectorEnv.step`` with numpy in and out, the
adapter SB3 uses (its peer is minigrid). ``--quick`` runs ``scan`` at B = 4096 and 16384.

Each measurement is a subprocess of this script (``--worker``) with a time limit (``--limit``):
a configuration that runs past it is reported as ``timed out`` and the run goes on. minigrid is
measured up to B = 1024 (quick: 64) and its largest measured rate is used beyond: one Python
step per env, flat in the batch. navix >= 0.7.5 needs Python >= 3.12 (this project is on 3.11),
so it runs in a separate venv built on first use at ``--navix-venv`` (~1 min, ~1 GB; never a
project dependency), pinned to this process's jax/jaxlib so both sides compile with the same XLA
(``navix_peer.py``; navix MT3 is three vmapped sub-batches, a navix env being one task).

Rows (``benchmarks/README.md``): name, set, mode, batch, unit, ours, peer, peer_name, ratio
(ours / peer), status (``ok`` / ``timed out`` / ``failed``), compile times, load_avg_1m (the
1-minute load average when ours was measured; peer_load_avg_1m for the peer), machine, when.
Written to ``--out`` (default ``benchmarks/out/env_throughput.json``) with a Markdown table
beside it (same name, ``.md``); the navix coverage of our MiniGrid tasks goes to
``navix_coverage.json`` (full run). The end of the output compares against issue 17's targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

SETS = {
    "DoorKey-6x6": ["MiniGrid-DoorKey-6x6-v0"],
    "MT3": ["MiniGrid-LavaGapS7-v0", "MiniGrid-RedBlueDoors-6x6-v0", "MiniGrid-MemoryS11-v0"],
}
TRAFFIC = ("signal", "eco")
BATCHES = (1, 64, 1024, 4096, 16384, 65536)
QUICK_BATCHES = (4096, 16384)
MINIGRID_BATCHES, QUICK_MINIGRID_BATCHES = (1, 64, 1024), (1, 64)
#: env steps per timed run: about 2M (fewer for the slower modes), at least 16
SCAN_WORK, STEP_WORK, GYM_WORK = 2**21, 2**18, 2**16
#: (target, what) per (workload, peer) at B = 4096, from issue 17
TARGETS = {("MT3", "minigrid"): 200, ("MT3", "navix"): 1.0, ("DoorKey-6x6", "navix"): 1.5,
           ("signal", "sumo"): 100, ("eco", "sumo"): 100}  # fmt: skip
OUT = Path(__file__).resolve().parent / "out"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # navix_peer, traffic_throughput
T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress on stderr, stamped with seconds since start."""
    print(f"[{time.perf_counter() - T0:5.0f}s] {msg}", file=sys.stderr, flush=True)


def steps_for(mode: str, batch: int) -> int:
    work = {"scan": SCAN_WORK, "step": STEP_WORK, "gym": GYM_WORK}[mode]
    return int(min(max(work // batch, 16), 4000))


# ------------------------------------------------------------------ timing (every process)


def _time_jax(step, carry, mode: str, batch: int, n: int, repeats: int) -> dict:
    """Compile ``step`` (carry -> carry) in ``mode`` AOT, then best steps/s over repeats."""
    import jax

    if mode == "scan":
        fn = jax.jit(lambda c: jax.lax.scan(lambda c, _: (step(c), None), c, None, length=n)[0])
    else:
        fn = jax.jit(step)
    start = time.perf_counter()
    compiled = fn.lower(carry).compile()
    compile_s = time.perf_counter() - start
    if mode == "step":
        jax.block_until_ready(compiled(carry))  # warm-up (allocations); scan: best of repeats
    best = float("inf")
    for _ in range(repeats):
        c, start = carry, time.perf_counter()
        for _ in range(1 if mode == "scan" else n):
            c = compiled(c)
        jax.block_until_ready(c)
        best = min(best, time.perf_counter() - start)
    return {"mode": mode, "batch": batch, "steps": n, "compile_s": compile_s,
            "sps": batch * n / best, "load": _load()}  # fmt: skip


def _load() -> float | None:
    """1-minute load average when a measurement ends (other work on the machine skews it)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _split(batch: int, parts: int) -> list[int]:
    return [batch // parts + (i < batch % parts) for i in range(parts)]


def machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} {jax.default_backend()}"


# ------------------------------------------------------------------ workers (one per process)


def ours_minigrid(set_name: str, mode: str, batch: int, repeats: int, slots: int | None) -> dict:
    import jax
    import numpy as np

    from mtrl_bench.envs.minigrid_jax.env import MiniGridJax
    from mtrl_bench.jax_env import stack_params
    from mtrl_bench.jax_vector import JaxVectorEnv, env_keys, reset_one, vector_step
    from mtrl_bench.registry import get_suite

    by_name = {t.name: t for t in get_suite("minigrid/mt7-v1").tasks}
    tasks = [by_name[n] for n in SETS[set_name]]
    env, subs = MiniGridJax(tasks), [tasks[i % len(tasks)] for i in range(batch)]
    n = steps_for(mode, batch)
    if mode == "gym":
        venv = JaxVectorEnv(env, subs, seed=0)
        start = time.perf_counter()
        venv.reset()
        venv.step(np.zeros(batch, int))  # compiles reset and step
        compile_s, rng, best = time.perf_counter() - start, np.random.default_rng(0), 1e9
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(n):
                venv.step(rng.integers(0, 7, batch))
            best = min(best, time.perf_counter() - start)
        return {"steps": n, "compile_s": compile_s, "sps": batch * n / best, "load": _load()}
    params = stack_params(env, subs)
    keys, obs, state = jax.jit(jax.vmap(partial(reset_one, env)))(env_keys(0, batch), params)
    staggered = jax.random.randint(jax.random.key(2), (batch,), 0, params.max_steps)
    state = state._replace(step_count=staggered.astype(state.step_count.dtype))
    kw = {} if slots is None else {"slots": slots}

    def step(c):
        key, k_act = jax.random.split(c["key"])
        actions = jax.random.randint(k_act, (batch,), 0, 7)
        out = vector_step(env, c["keys"], c["state"], actions, params, **kw)
        return {"key": key, "keys": out.keys, "state": out.state, "obs": out.obs,
                "ret": c["ret"] + out.rewards}  # fmt: skip

    carry = {"key": jax.random.key(1), "keys": keys, "state": state, "obs": obs,
             "ret": jax.numpy.zeros(batch)}  # fmt: skip
    return _time_jax(step, carry, mode, batch, n, repeats)


def minigrid(set_name: str, batch: int, repeats: int) -> dict:
    import gymnasium as gym

    from mtrl_bench.envs.minigrid import make_env
    from mtrl_bench.registry import get_suite

    by_name = {t.name: t for t in get_suite("minigrid/mt7-v1").tasks}
    tasks = [by_name[n] for n in SETS[set_name]]
    subs = [tasks[i % len(tasks)] for i in range(batch)]
    fns = [lambda t=t: make_env(t, None) for t in subs]
    env, n, best = gym.vector.SyncVectorEnv(fns), max(3000 // batch, 3), float("inf")
    env.reset(seed=0)
    env.action_space.seed(0)
    env.step(env.action_space.sample())
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            env.step(env.action_space.sample())
        best = min(best, time.perf_counter() - start)
    env.close()
    return {"steps": n, "sps": batch * n / best, "load": _load()}


def worker(job: dict) -> dict:
    kind, repeats = job["kind"], job["repeats"]
    if kind == "ours" and job["set"] in TRAFFIC:
        from traffic_throughput import ours_rate

        return ours_rate(job["set"], job["batch"], repeats, job.get("slots"))
    if kind == "ours":
        return ours_minigrid(job["set"], job["mode"], job["batch"], repeats, job.get("slots"))
    if kind == "minigrid":
        return minigrid(job["set"], job["batch"], repeats)
    if kind == "libsumo":
        from traffic_throughput import sumo_rate

        return sumo_rate(job["set"], job["quick"])
    raise ValueError(f"unknown job kind {kind!r}")


def measure(job: dict, limit: float) -> dict:
    """``worker(job)`` in a fresh process, killed after ``limit`` seconds."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(job)]
    label = " ".join(f"{k}={v}" for k, v in job.items() if k not in ("repeats", "quick"))
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        log(f"{label}: timed out after {limit:.0f} s")
        return {"status": "timed out", "load": _load()}
    if proc.returncode != 0 or not proc.stdout.strip():
        log(f"{label}: failed (exit {proc.returncode})")
        return {"status": "failed", "load": _load()}
    res = {"status": "ok", **json.loads(proc.stdout.strip().splitlines()[-1])}
    log(f"{label}: {res['sps']:,.0f}/s (compile {res.get('compile_s', 0):.1f} s, "
        f"load {res['load']})")  # fmt: skip
    return res


def measure_navix(args, set_name: str, mode: str, batch: int, repeats: int) -> dict:
    from navix_peer import run_navix

    cfg = {"sets": {set_name: SETS[set_name]}, "batches": [batch], "modes": [mode],
           "steps": {mode: {str(batch): steps_for(mode, batch)}}, "repeats": repeats,
           "coverage": [], "observe": []}  # fmt: skip
    out = run_navix(args, cfg, timeout=args.limit)
    if out is None:
        return {"status": "failed", "load": _load()}
    if out.get("timed_out"):
        log(f"navix {set_name} {mode} B={batch}: timed out after {args.limit:.0f} s")
        return {"status": "timed out", "load": _load()}
    res = out["results"][0]
    log(f"navix {set_name} {mode} B={batch}: {res['sps']:,.0f}/s (load {res['load']})")
    return {"status": "ok", **res, "versions": out["versions"]}


# ------------------------------------------------------------------ report


def _row(name, ours, peer, peer_name, base) -> dict:
    ok = ours["status"] == "ok" and peer["status"] == "ok"
    return {"name": name, **base,
            "ours": round(ours["sps"]) if ours["status"] == "ok" else None,
            "peer": round(peer["sps"]) if peer["status"] == "ok" else None,
            "peer_name": peer_name, "ratio": round(ours["sps"] / peer["sps"], 2) if ok else None,
            "status": ours["status"] if ours["status"] != "ok" else peer["status"],
            "ours_compile_s": round(ours.get("compile_s", 0.0), 2),
            "peer_compile_s": round(peer["compile_s"], 2) if "compile_s" in peer else None,
            "steps_per_run": ours.get("steps"), "load_avg_1m": ours.get("load"),
            "peer_load_avg_1m": peer.get("load")}  # fmt: skip


def _fmt(v, spec=",.0f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(rows: list[dict]) -> str:
    head = ("| workload | mode | B | unit | ours | peer | peer/s | ours / peer | load (1 min) |\n"
            "|---|---|---:|---|---:|---|---:|---:|---:|")  # fmt: skip
    lines = [head]
    for r in rows:
        ours = _fmt(r["ours"]) if r["status"] == "ok" or r["ours"] else r["status"]
        peer = r["peer_name"].split(" (")[0]
        ratio = _fmt(r["ratio"], ".2f")
        lines.append(f"| {r['set']} | {r['mode']} | {r['batch']} | {r['unit']} | {ours} | {peer} "
                     f"| {_fmt(r['peer'])} | {ratio} | {r['load_avg_1m']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def verdicts(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        peer = r["peer_name"].split()[0].lower()
        target = TARGETS.get((r["set"], peer))
        if target and r["batch"] == 4096 and r["mode"] == "scan":
            ok = r["ratio"] is not None and r["ratio"] >= target
            out.append(f"target {r['set']} vs {peer} at B=4096: {_fmt(r['ratio'], '.2f')}x "
                       f"(>= {target}x) {'meets' if ok else 'MISSES'}")  # fmt: skip
    ours = {(r["set"], r["mode"], r["batch"]): r["ours"] for r in rows}
    for (s, m, b), v in sorted(ours.items(), key=str):
        if b == 16384 and m == "scan" and ours.get((s, m, 4096)):
            ok = v is not None and v >= ours[(s, m, 4096)]
            out.append(f"scaling {s}: B=16384 {_fmt(v)} vs B=4096 {_fmt(ours[(s, m, 4096)])} "
                       f"{'meets' if ok else 'MISSES'}")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scan mode, B = 4096 and 16384")
    parser.add_argument("--no-navix", action="store_true", help="skip the navix peer")
    parser.add_argument("--no-traffic", action="store_true", help="skip signal / eco vs SUMO")
    parser.add_argument("--only-traffic", action="store_true", help="only signal / eco")
    parser.add_argument("--navix-venv", default="~/.cache/mtrl_bench/navix-4.0.0-py312")
    parser.add_argument("--python312", help="Python 3.12 used to build the navix venv")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (best counts)")
    parser.add_argument(
        "--limit",
        type=float,
        default=None,
        help="seconds per measurement (default 240 quick, 600 full)",
    )
    parser.add_argument("--batches", help="comma-separated batch sizes")
    parser.add_argument("--slots", help="comma-separated K of optimistic resets to measure")
    parser.add_argument("--out", default=str(OUT / "env_throughput.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    import importlib.metadata as md

    args.limit = args.limit or (240.0 if args.quick else 600.0)
    repeats = args.repeats or (2 if args.quick else 3)
    batches = ([int(b) for b in args.batches.split(",")] if args.batches
               else QUICK_BATCHES if args.quick else BATCHES)  # fmt: skip
    modes = ("scan",) if args.quick else ("scan", "step", "gym")
    slot_list = [int(k) for k in args.slots.split(",")] if args.slots else [None]
    sets = [] if args.only_traffic else list(SETS)
    sets += [] if args.no_traffic else list(TRAFFIC)
    when, where, rows = datetime.now(UTC).isoformat(timespec="seconds"), machine(), []
    mg_version = md.version("minigrid")
    for set_name in sets:
        traffic = set_name in TRAFFIC
        unit = "simulated s per wall s" if traffic else "env steps/s"
        if traffic:
            sumo = measure({"kind": "libsumo", "set": set_name, "quick": args.quick,
                            "repeats": 1}, args.limit)  # fmt: skip
            peers = {"libsumo": (sumo, "SUMO libsumo, one simulation")}
        else:
            mg_rates = {}
            for b in QUICK_MINIGRID_BATCHES if args.quick else MINIGRID_BATCHES:
                mg_rates[b] = measure({"kind": "minigrid", "set": set_name, "batch": b,
                                       "repeats": repeats}, args.limit)  # fmt: skip
        for batch in batches:
            for mode in ("scan",) if traffic else modes:
                if mode != "scan" and batch > 16384:
                    continue  # a Python call per step: minutes per measurement
                if not traffic:
                    b_mg = max(b for b in mg_rates if b <= batch)
                    peers = {"minigrid": (mg_rates[b_mg], f"minigrid {mg_version} "
                                          f"SyncVectorEnv B={b_mg}")}  # fmt: skip
                    if not args.no_navix and mode != "gym":
                        nx = measure_navix(args, set_name, mode, batch, repeats)
                        version = nx.get("versions", {})
                        peers["navix"] = (
                            nx,
                            f"navix {version.get('navix', '4.0.0')} (jax "
                            f"{version.get('jax', '-')}, symbolic_first_person)",
                        )
                for slots in slot_list:
                    ours = measure({"kind": "ours", "set": set_name, "mode": mode,
                                    "batch": batch, "repeats": repeats, "slots": slots},
                                   args.limit)  # fmt: skip
                    base = {"set": set_name, "mode": mode, "batch": batch, "unit": unit,
                            "slots": slots, "machine": where, "when": when,
                            "quick": args.quick}  # fmt: skip
                    for peer, (res, peer_name) in peers.items():
                        name = f"{set_name}/{mode}/B={batch}" + (f"/K={slots}" if slots else "")
                        rows.append(_row(f"{name} vs {peer}", ours, res, peer_name, base))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    table = markdown(rows)
    out.with_suffix(".md").write_text(
        f"Written by `python benchmarks/env_throughput.py{' --quick' if args.quick else ''}` "
        f"({when}; {where}).\n\n{table}"
    )
    print("\n" + table)
    print("\n".join(verdicts(rows)))
    if not args.no_navix and not args.quick and not args.only_traffic:
        coverage(args)
    print(f"\nwrote {out} and {out.with_suffix('.md')} ({len(rows)} rows); machine: {where}")


def coverage(args) -> None:
    """navix's coverage of our 14 MiniGrid tasks and its fidelity (``navix_coverage.json``)."""
    from navix_peer import minigrid_facts, print_coverage, run_navix

    from mtrl_bench.registry import get_suite

    tasks = [t.name for t in get_suite("minigrid/mt7-v1").tasks]
    cfg = {"sets": {}, "batches": [], "modes": [], "steps": {}, "repeats": 1,
           "coverage": tasks, "observe": tasks}  # fmt: skip
    nx = run_navix(args, cfg, timeout=args.limit)
    if not nx or nx.get("timed_out"):
        return
    cov = print_coverage(nx["coverage"], {n: minigrid_facts(n) for n in tasks})
    OUT.mkdir(exist_ok=True)
    (OUT / "navix_coverage.json").write_text(
        json.dumps({"navix": nx["versions"], "python": nx["python"], "tasks": cov}, indent=1)
    )


if __name__ == "__main__":
    main()
