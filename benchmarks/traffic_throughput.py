"""Traffic env throughput: our JAX signal-control (CTM) and eco-driving (IDM) backends against
the SUMO reference (libsumo) on the same scenario (benchmarks/README.md).

    python benchmarks/traffic_throughput.py [--quick] [other env_throughput.py options]

is ``env_throughput.py --only-traffic``: the measurements live here, the runner (one process per
measurement, time limits, rows, table) there.

Unit on both sides: **simulated seconds per wall second**, summed over the batch. Workload: the
default context of each family (signal: inflow 1000 veh per episode, 750 m, 13.89 m/s; eco:
400 veh/h, penetration 0.2, green 10 s) under a fixed controller, so that both simulators do the
same work: signal control runs fixed-time (every phase for 2 decisions in turn: 10 + 14
simulated seconds per phase), eco-driving lets IDM drive every vehicle (every step is 0.5 s).

- ours: ``B`` envs stepped by ``jax_vector.vector_step`` (autoreset with optimistic resets) in
  one jitted ``lax.scan``, sub-envs at uniformly staggered points of their episodes (the steady
  state of a long run: a short window pays its share of resets), compile time excluded (AOT);
- peer: one libsumo simulation driven in this process by the same driver the SUMO suites use
  (``signal.SignalDriver`` / ``eco.EcoDriver``: observation, reward and delay bookkeeping
  included, without the pipe of ``SumoProcess``). libsumo runs one simulation per process, so
  SUMO's rate does not grow with B inside a process; a process pool could at most multiply it
  by the core count (2 here). The ratio at batch B is ours(B) / SUMO(one simulation).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: decisions (signal) or steps (eco) per timed run: about this many summed over the batch
WORK = {"signal": 2**17, "eco": 2**21}  # signal: 2**19 ran past 240 s at B = 16384


def _fixed_time(i):
    from mtrl_bench.envs.traffic import signal

    return (i // 2) % signal.NUM_PHASES


def _family(family: str):
    """``(env, suite, policy(i), simulated s per step, stagger(state, key, batch))``."""
    import jax
    import jax.numpy as jnp

    from mtrl_bench.envs.traffic import eco, eco_jax, signal, signal_jax

    if family == "signal":

        def stagger(st, key, batch):
            t = jax.random.randint(key, (batch,), 0, signal.HORIZON_S // 12) * 12
            st = st._replace(t=t.astype(st.t.dtype), steps=(t // 12).astype(st.steps.dtype))
            if hasattr(st, "arrived"):  # the sorted schedule: vehicles due before t have left
                st = st._replace(arrived=(st.dep < t[:, None]).sum(1).astype(jnp.int32))
            return st

        per = (signal.GREEN_S + signal.YELLOW_S + signal.GREEN_S) / 2  # 12 s a decision
        return signal_jax.SignalJax(), signal_jax.INFLOW, _fixed_time, per, stagger
    act = np.full(eco.MAX_VEHICLES, eco.MAX_ACTION, np.float32)

    def stagger_eco(st, key, batch):
        t = jax.random.randint(key, (batch,), 0, eco.MAX_STEPS)
        return st._replace(t=t.astype(st.t.dtype))

    return eco_jax.EcoJax(), eco_jax.GREEN, lambda i: act, eco.DT, stagger_eco


def ours_rate(family: str, batch: int, repeats: int, slots: int | None) -> dict:
    import jax
    import jax.numpy as jnp
    from env_throughput import _load

    from mtrl_bench.jax_env import stack_params
    from mtrl_bench.jax_vector import env_keys, reset_one, vector_step

    env, suite, policy, per, stagger = _family(family)
    task = suite.tasks[int(np.argmin([abs(t.kwargs[1][1] - suite.options["context_default"])
                                      for t in suite.tasks]))]  # fmt: skip
    params = stack_params(env, [task] * batch)
    keys, _, state = jax.jit(jax.vmap(lambda k, p: reset_one(env, k, p)))(env_keys(0, batch),
                                                                          params)  # fmt: skip
    state = stagger(state, jax.random.key(2), batch)
    steps = max(WORK[family] // batch, 8)
    kw = {} if slots is None else {"slots": slots}

    def run(carry):
        def body(c, i):
            keys, st = c
            action = jnp.asarray(policy(i))
            actions = jnp.broadcast_to(action, (batch, *action.shape))
            out = vector_step(env, keys, st, actions, params, **kw)
            return (out.keys, out.state), None

        return jax.lax.scan(body, carry, jnp.arange(steps))[0]

    carry = (keys, state)
    start = time.perf_counter()
    compiled = jax.jit(run).lower(carry).compile()
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(carry))
        best = min(best, time.perf_counter() - start)
    return {"steps": steps, "sps": batch * steps * per / best, "compile_s": compile_s,
            "load": _load()}  # fmt: skip


def sumo_rate(family: str, quick: bool) -> dict:
    from env_throughput import _load

    from mtrl_bench.envs.traffic import eco, signal

    _, _, policy, per, _ = _family(family)
    if family == "signal":
        driver, steps = signal.SignalDriver(**signal.DEFAULTS), 450 if quick else 1350
    else:
        driver, steps = eco.EcoDriver(**eco.DEFAULTS), 600 if quick else 1800
    driver.reset(0)
    start = time.perf_counter()
    for i in range(steps):
        *_, truncated, _ = driver.step(policy(i))
        if truncated:
            driver.reset(1)
    elapsed = time.perf_counter() - start
    driver.close()
    return {"steps": steps, "sps": steps * per / elapsed, "load": _load()}


if __name__ == "__main__":
    import env_throughput

    sys.argv.append("--only-traffic")
    env_throughput.main()
