"""Env throughput: our JAX MiniGrid backend vs minigrid (Python) and navix, in one run.

    python benchmarks/env_throughput.py [--quick] [--no-navix] [--navix-venv DIR]

Workloads: ``MiniGrid-DoorKey-6x6-v0``, and MT3 mixed (LavaGapS7, RedBlueDoors-6x6, MemoryS11;
sub-env ``i`` runs task ``i % 3``). Uniformly random actions, batch sizes 1, 64, 1024, 4096.

Modes (steps/s = batch * steps / best wall time over repeats; compile time measured AOT with
``jit(f).lower(...).compile()``, excluded from steps/s and reported beside it):

- ``scan``: N steps in one jitted ``lax.scan`` over ``vmap(step)``, actions drawn inside (the
  PureJaxRL / xminigrid benchmark style; what a jitted training loop sees);
- ``step``: one jitted ``vmap(step)`` call per step from Python (arrays stay on the device);
- ``gym`` (ours only): ``JaxVectorEnv.step`` with numpy actions in and numpy obs out, the
  gymnasium adapter the harness and SB3 use; its peer is minigrid at the same batch size.

Ours: ``mtrl_bench.envs.minigrid_jax.env.MiniGridJax(tasks)`` (grid padded to the workload's
largest task), params passed as arguments (as ``JaxVectorEnv`` does), not folded constants.

Peers, measured in this run:

- minigrid 3.2.0: ``gymnasium.vector.SyncVectorEnv`` of the numpy suites' envs (``ImgObsWrapper``
  observation), ``action_space.sample()`` actions. ``--quick`` measures batch 1 and 64 only and
  uses the batch-64 rate for larger batches (it is flat in the batch size: one Python step per
  env); the full run measures every batch size with few steps.
- navix 4.0.0 with ``observation_fn=symbolic_first_person`` (its 7x7x3 egocentric view). navix
  >= 0.7.5 requires Python >= 3.12 and this project is on 3.11; 0.7.4 (the last for 3.11) has no
  RedBlueDoors, Memory or MultiRoom, so it cannot run MT3. So navix runs in a separate 3.12 venv
  (built on first use at ``--navix-venv``, ~1 min, ~1 GB; never a project dependency), pinned
  to this process's jax/jaxlib version so that both sides compile with the same XLA, and is
  measured by a subprocess running ``navix_peer.py`` in that venv. A navix env is one task
  (its grid size and class are static), so navix MT3 is three vmapped sub-batches (the batch
  split as evenly as possible) inside one jit. The worker also reports navix's coverage of our
  14 MiniGrid tasks and its fidelity (view, occlusion, max_steps, grid size, reward).

Autoreset: ours SAME_STEP (reset computed every step, selected where done); navix resets one
call late via ``lax.cond`` (both branches under ``vmap``); minigrid's SyncVectorEnv NEXT_STEP.
Writes ``benchmarks/out/env_throughput.json`` (rows as in ``benchmarks/README.md``) and
``navix_coverage.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

SETS = {
    "DoorKey-6x6": ["MiniGrid-DoorKey-6x6-v0"],
    "MT3": ["MiniGrid-LavaGapS7-v0", "MiniGrid-RedBlueDoors-6x6-v0", "MiniGrid-MemoryS11-v0"],
}
BATCHES = (1, 64, 1024, 4096)
#: steps per timed run, per mode and batch size (full run)
STEPS = {"scan": {1: 10000, 64: 2000, 1024: 200, 4096: 50},
         "step": {1: 1000, 64: 500, 1024: 100, 4096: 30},
         "gym": {1: 500, 64: 200, 1024: 30, 4096: 10},
         "minigrid": {1: 3000, 64: 60, 1024: 5, 4096: 2}}  # fmt: skip
QUICK = {"batches": (4096,), "modes": ("scan",), "minigrid": (1, 64), "repeats": 2,
         "steps": {"scan": {4096: 30}, "minigrid": {1: 2000, 64: 30}}}  # fmt: skip
OUT = Path(__file__).resolve().parent / "out"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # navix_peer, also when imported
T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress on stderr, stamped with seconds since start."""
    print(f"[{time.perf_counter() - T0:5.0f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ timing (both processes)


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


# ------------------------------------------------------------------ ours and minigrid


def bench_ours(names: list[str], set_name: str, batches, modes, steps, repeats) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from mtrl_bench.envs.minigrid_jax.env import MiniGridJax
    from mtrl_bench.jax_env import stack_params
    from mtrl_bench.jax_vector import JaxVectorEnv
    from mtrl_bench.registry import get_suite

    by_name = {t.name: t for s in ("minigrid/mt7-v1",) for t in get_suite(s).tasks}
    tasks = [by_name[n] for n in names]
    env, results = MiniGridJax(tasks), []
    starts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), len(tasks)),
                                          stack_params(env, tasks))  # fmt: skip
    for batch in batches:
        subs = [tasks[i % len(tasks)] for i in range(batch)]
        params = stack_params(env, subs)

        def step(c, batch=batch):
            key, k_act, k_env = jax.random.split(c["key"], 3)
            actions = jax.random.randint(k_act, (batch,), 0, 7)
            obs, state, reward, *_ = jax.vmap(env.step)(
                jax.random.split(k_env, batch), c["state"], actions, c["params"]
            )
            return {**c, "key": key, "state": state, "obs": obs, "ret": c["ret"] + reward}

        # One start per task, gathered to the batch: one reset compile per workload, not per B.
        which = np.arange(batch) % len(tasks)
        obs, state = jax.tree.map(lambda x, which=which: x[which], starts)
        carry = {"key": jax.random.key(1), "state": state, "obs": obs, "params": params,
                 "ret": jnp.zeros(batch)}  # fmt: skip
        for mode in modes:
            n = steps[mode][batch]
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
                res = {"mode": mode, "batch": batch, "steps": n, "compile_s": compile_s,
                       "sps": batch * n / best, "load": _load()}  # fmt: skip
            else:
                res = _time_jax(step, carry, mode, batch, n, repeats)
            results.append({"set": set_name, **res})
            log(
                f"ours {set_name} {mode} B={batch}: {res['sps']:,.0f} steps/s "
                f"(compile {res['compile_s']:.1f} s)"
            )
    return results


def bench_minigrid(names: list[str], set_name: str, batches, steps, repeats) -> list[dict]:
    import gymnasium as gym

    from mtrl_bench.envs.minigrid import make_env
    from mtrl_bench.registry import get_suite

    by_name = {t.name: t for t in get_suite("minigrid/mt7-v1").tasks}
    results = []
    for batch in batches:
        subs = [by_name[names[i % len(names)]] for i in range(batch)]
        fns = [lambda t=t: make_env(t, None) for t in subs]
        env, n, best = gym.vector.SyncVectorEnv(fns), steps[batch], float("inf")
        env.reset(seed=0)
        env.action_space.seed(0)
        env.step(env.action_space.sample())
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(n):
                env.step(env.action_space.sample())
            best = min(best, time.perf_counter() - start)
        env.close()
        results.append({"set": set_name, "mode": "minigrid", "batch": batch, "steps": n,
                        "sps": batch * n / best})  # fmt: skip
        log(f"minigrid {set_name} B={batch}: {results[-1]['sps']:,.0f} steps/s")
    return results


# ------------------------------------------------------------------ report


def rows_and_table(ours, mg, nx, versions, quick) -> list[dict]:
    when, where = datetime.now(UTC).isoformat(timespec="seconds"), machine()
    mg_at = {(r["set"], r["batch"]): r for r in mg}
    nx_at = {(r["set"], r["mode"], r["batch"]): r for r in nx}
    rows = []
    head = (f"{'workload':12} {'mode':5} {'B':>5} {'ours/s':>12} {'compile':>8} {'minigrid/s':>11}"
            f" {'x mg':>8} {'navix/s':>12} {'compile':>8} {'x navix':>8}")  # fmt: skip
    print("\n" + head + "\n" + "-" * len(head))
    for r in ours:
        key = (r["set"], r["batch"])
        m = mg_at.get(key) or mg_at.get((r["set"], max(b for s, b in mg_at if s == r["set"])))
        x = nx_at.get((r["set"], r["mode"], r["batch"]))
        base = {"set": r["set"], "mode": r["mode"], "batch": r["batch"], "unit": "env steps/s",
                "ours_compile_s": round(r["compile_s"], 2), "steps_per_run": r["steps"],
                "machine": where, "when": when, "quick": quick,
                "load_avg_1m": r["load"]}  # fmt: skip
        mg_name = f"minigrid {versions['minigrid']} SyncVectorEnv B={m['batch']}"
        rows.append({"name": f"{r['set']}/{r['mode']}/B={r['batch']} vs minigrid",
                     "ours": round(r["sps"]), "peer": round(m["sps"]), "peer_name": mg_name,
                     "ratio": round(r["sps"] / m["sps"], 2), **base})  # fmt: skip
        if x:
            rows.append({"name": f"{r['set']}/{r['mode']}/B={r['batch']} vs navix",
                         "ours": round(r["sps"]), "peer": round(x["sps"]),
                         "peer_name": f"navix {versions['navix']} (jax {versions['navix_jax']}, "
                                      "symbolic_first_person)",
                         "ratio": round(r["sps"] / x["sps"], 2),
                         "peer_compile_s": round(x["compile_s"], 2),
                         "peer_load_avg_1m": x["load"], **base})  # fmt: skip
        nx_cols = (f"{x['sps']:12,.0f} {x['compile_s']:7.1f}s {r['sps'] / x['sps']:7.2f}x"
                   if x else f"{'-':>12} {'-':>8} {'-':>8}")  # fmt: skip
        print(f"{r['set']:12} {r['mode']:5} {r['batch']:5} {r['sps']:12,.0f} {r['compile_s']:7.1f}s"
              f" {m['sps']:11,.0f} {r['sps'] / m['sps']:7.1f}x {nx_cols}")  # fmt: skip
    return rows


def main() -> None:
    from navix_peer import NAVIX_VERSION, minigrid_facts, print_coverage, run_navix

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced run (~1-2 min)")
    parser.add_argument("--no-navix", action="store_true", help="skip the navix peer")
    parser.add_argument("--navix-venv", default="~/.cache/mtrl_bench/navix-4.0.0-py312")
    parser.add_argument("--python312", help="Python 3.12 used to build the navix venv")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import importlib.metadata as md

    batches = QUICK["batches"] if args.quick else BATCHES
    modes = QUICK["modes"] if args.quick else ("scan", "step", "gym")
    mg_batches = QUICK["minigrid"] if args.quick else BATCHES
    repeats = QUICK["repeats"] if args.quick else args.repeats
    steps = {**STEPS, **QUICK["steps"]} if args.quick else STEPS
    from mtrl_bench.registry import get_suite

    coverage_tasks = [t.name for t in get_suite("minigrid/mt7-v1").tasks]  # our 14 tasks
    versions = {"minigrid": md.version("minigrid"), "navix": NAVIX_VERSION, "navix_jax": "-"}

    nx_out = None
    if not args.no_navix:
        log("navix (separate process)")
        jax_modes = [m for m in modes if m != "gym"]
        cfg = {"sets": SETS, "batches": list(batches), "modes": jax_modes,
               "steps": {m: {str(b): n for b, n in steps[m].items()} for m in jax_modes},
               "repeats": repeats, "coverage": coverage_tasks,
               "observe": [n for ns in SETS.values() for n in ns] if args.quick
               else coverage_tasks}  # fmt: skip
        nx_out = run_navix(args, cfg)
        if nx_out:
            versions.update(navix=nx_out["versions"]["navix"], navix_jax=nx_out["versions"]["jax"])
    ours, mg = [], []
    for set_name, names in SETS.items():
        log(f"ours / minigrid, {set_name}")
        ours += bench_ours(names, set_name, batches, modes, steps, repeats)
        mg += bench_minigrid(names, set_name, mg_batches, steps["minigrid"], repeats)
    rows = rows_and_table(ours, mg, nx_out["results"] if nx_out else [], versions, args.quick)
    OUT.mkdir(exist_ok=True)
    (OUT / "env_throughput.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        if r["batch"] == 4096 and r["mode"] == "scan":
            target = 200 if "minigrid" in r["peer_name"] else 1.0
            verdict = "meets" if r["ratio"] >= target else "MISSES"
            print(f"target {r['name']}: {r['ratio']}x (target >= {target}x) {verdict}")
    if nx_out:
        log("minigrid facts of the suite tasks")
        facts = {n: minigrid_facts(n) for n in coverage_tasks}
        cov = print_coverage(nx_out["coverage"], facts)
        (OUT / "navix_coverage.json").write_text(
            json.dumps(
                {"navix": nx_out["versions"], "python": nx_out["python"], "tasks": cov}, indent=1
            )
        )
    print(f"\nwrote {OUT / 'env_throughput.json'} ({len(rows)} rows); machine: {machine()}")


if __name__ == "__main__":
    main()
