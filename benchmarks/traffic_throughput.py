"""Traffic env throughput: our JAX signal-control (CTM) and eco-driving (IDM) backends against
the SUMO reference (libsumo) on the same scenario, in one run (benchmarks/README.md).

    python benchmarks/traffic_throughput.py [--quick]

Unit on both sides: **simulated seconds per wall second**, summed over the batch. Workload: the
default context of each family (signal: inflow 1000 veh per episode, 750 m, 13.89 m/s; eco:
400 veh/h, penetration 0.2, green 10 s) under a fixed controller, so that both simulators do the
same work: signal control runs fixed-time (every phase for 2 decisions in turn: 14 + 10
simulated seconds per phase), eco-driving lets IDM drive every vehicle (every step is 0.5 s).

- ours: ``B`` envs (B = 1, 64, 1024, 4096) stepped by one jitted ``lax.scan`` over
  ``vmap(step)`` (autoreset included), compile time excluded (AOT) and reported;
- peer: one libsumo simulation driven in this process by the same driver the SUMO suites use
  (``signal.SignalDriver`` / ``eco.EcoDriver``: observation, reward and delay bookkeeping
  included, without the pipe of ``SumoProcess``). libsumo runs one simulation per process, so
  SUMO's rate does not grow with B inside a process; a process pool could at most multiply it
  by the core count (2 here). The ratio at batch B is ours(B) / SUMO(one simulation).

Writes ``benchmarks/out/traffic_throughput.json`` (rows: name, ours, peer, peer_name, unit,
ratio, machine, when). Target: ratio >= 100 at B = 4096.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from env_throughput import _load, machine  # noqa: E402

from mtrl_bench.envs.traffic import eco, eco_jax, signal, signal_jax  # noqa: E402
from mtrl_bench.jax_env import stack_params  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
BATCHES = (1, 64, 1024, 4096)


def _jax_rate(env, suite, policy, sim_per_step: float, batch: int, steps: int) -> dict:
    """``policy(i)``: the action of decision ``i`` (the same for every env)."""
    task = suite.tasks[int(np.argmin([abs(t.kwargs[1][1] - suite.options["context_default"])
                                      for t in suite.tasks]))]  # fmt: skip
    params = stack_params(env, [task] * batch)
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    _, state = jax.vmap(env.reset)(keys, params)

    def run(carry):
        def body(c, i):
            st, k = c
            k, sub = jax.random.split(k)
            step_keys = jax.random.split(sub, batch)
            action = jnp.asarray(policy(i))
            actions = jnp.broadcast_to(action, (batch, *action.shape))
            _, st, *_ = jax.vmap(env.step)(step_keys, st, actions, params)
            return (st, k), None

        return jax.lax.scan(body, carry, jnp.arange(steps))[0]

    carry = (state, jax.random.PRNGKey(1))
    start = time.perf_counter()
    compiled = jax.jit(run).lower(carry).compile()
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        jax.block_until_ready(compiled(carry))
        best = min(best, time.perf_counter() - start)
    return {"batch": batch, "sim_s_per_s": batch * steps * sim_per_step / best,
            "compile_s": compile_s, "load": _load()}  # fmt: skip


def _sumo_rate(driver, policy, sim_per_step: float, steps: int) -> float:
    driver.reset(0)
    start = time.perf_counter()
    for i in range(steps):
        *_, truncated, _ = driver.step(policy(i))
        if truncated:
            driver.reset(1)
    elapsed = time.perf_counter() - start
    driver.close()
    return steps * sim_per_step / elapsed


def _fixed_time(i):
    return (i // 2) % signal.NUM_PHASES


def signal_family(quick: bool) -> tuple[list[dict], float]:
    env, suite = signal_jax.SignalJax(), signal_jax.INFLOW
    steps = (
        {1: 450, 64: 200, 1024: 40, 4096: 12} if quick else {1: 1800, 64: 450, 1024: 100, 4096: 30}
    )
    per = (signal.GREEN_S + signal.YELLOW_S + signal.GREEN_S) / 2  # fixed-time: 12 s a decision
    ours = [_jax_rate(env, suite, _fixed_time, per, b, steps[b]) for b in BATCHES]
    driver = signal.SignalDriver(**signal.DEFAULTS)
    return ours, _sumo_rate(driver, _fixed_time, per, 450 if quick else 1350)


def eco_family(quick: bool) -> tuple[list[dict], float]:
    env, suite = eco_jax.EcoJax(), eco_jax.GREEN
    steps = (
        {1: 2000, 64: 600, 1024: 100, 4096: 30}
        if quick
        else {1: 6000, 64: 1200, 1024: 300, 4096: 100}
    )
    act = np.full(eco.MAX_VEHICLES, eco.MAX_ACTION, np.float32)
    ours = [_jax_rate(env, suite, lambda i: act, eco.DT, b, steps[b]) for b in BATCHES]
    driver = eco.EcoDriver(**eco.DEFAULTS)
    return ours, _sumo_rate(driver, lambda i: act, eco.DT, 600 if quick else 1800)


FAMILIES = {"signal": signal_family, "eco": eco_family}


def main() -> None:
    quick = "--quick" in sys.argv
    when, where = datetime.now(UTC).isoformat(timespec="seconds"), machine()
    rows = []
    cols = ("family", "B", "ours sim-s/s", "compile", "SUMO sim-s/s", "ratio")
    print("{:8} {:>5} {:>14} {:>8} {:>13} {:>8}".format(*cols))
    for family, fn in FAMILIES.items():
        ours, sumo = fn(quick)
        for r in ours:
            ratio = r["sim_s_per_s"] / sumo
            print(f"{family:8} {r['batch']:5} {r['sim_s_per_s']:14,.0f} {r['compile_s']:7.1f}s "
                  f"{sumo:13,.0f} {ratio:7.1f}x")  # fmt: skip
            rows.append({"name": f"{family}/B={r['batch']} vs libsumo",
                         "ours": round(r["sim_s_per_s"]),
                         "peer": round(sumo), "peer_name": "SUMO 1.28 libsumo, one simulation",
                         "unit": "simulated s per wall s", "ratio": round(ratio, 2),
                         "ours_compile_s": round(r["compile_s"], 2), "machine": where,
                         "when": when, "quick": quick, "load_avg_1m": r["load"]})  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "traffic_throughput.json").write_text(json.dumps(rows, indent=1))
    print(f"\nwrote {OUT / 'traffic_throughput.json'} ({len(rows)} rows); machine: {where}")


if __name__ == "__main__":
    main()
