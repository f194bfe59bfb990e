"""Meta-World throughput: our suite's vector env vs upstream's, in one run (benchmarks/README.md).

    python benchmarks/metaworld_throughput.py [--quick] [--out PATH]

Section ``env_rows``: env steps/s of ``metaworld/mt10-v1`` (``make_env(suite, "train",
vector=...)``) vs raw ``gymnasium.make_vec("Meta-World/MT10", vector_strategy=...)`` (metaworld
3.1.1), both with uniformly random actions (the same pre-drawn array), 500-step episodes and
SAME_STEP autoresets included, ``sync`` and ``async``. Ours ``async`` runs the 10 envs in one
worker per core (``AsyncMultiTaskVectorEnv``); upstream's in one process per env (gymnasium
``AsyncVectorEnv``). Ours and the peer alternate within each repeat, and the best repeat counts
(other work on the machine slows both). Construction times are reported beside the rates.
Target: our overhead <= 5 %, i.e. ratio >= 0.95.

Section ``sac_rows``: SAC updates/s at the MT10 batch (128 per task x 10 = 1280, Meta-World+'s
networks, 3 x 400 ReLU, twin critics, one actor, critic and temperature step per update) for our
``mtsac`` and ``moore-sac`` (k = 4 experts, each 3 x 400), against SB3's SAC with the same MLP on
observation + one-hot (``MultiInputPolicy``, ``net_arch=[400, 400, 400]``, batch 1280: MTSAC's
network, one temperature instead of ten) on our MT10 suite through the foundation's SB3 adapter.
Both sample from a filled replay buffer and use this process's default threads; compile time
is excluded. MOORE-SAC runs 4 experts per network, about 4x MTSAC's FLOPs, so its ratio to SB3's
MTSAC-sized SAC is not like for like (printed for scale). Each SAC row also gives the FLOPs of
one of our updates (XLA's cost analysis of the compiled update), the FLOP/s it reaches, its share
of this CPU's peak (a 2048^3 float32 matmul, ``train_throughput.peak_flops``), and the most
updates/s that FLOP count allows at that peak (``ceiling``): an update that needs more than the
peak to match SB3 cannot reach ratio 1 on this machine by scheduling alone.

Rows go to ``--out`` (default ``benchmarks/out/metaworld_throughput.json``) with a Markdown table
beside it (same name, ``.md``); ``main`` collects them from the section functions in
``SECTIONS`` (each ``f(quick) -> list[dict]``), so more sections can be added.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from env_throughput import _load, log, machine  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def _rate(env, actions: np.ndarray) -> float:
    """Env steps/s of stepping ``env`` through ``actions`` (steps, num_envs, 4) after a reset."""
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return actions.shape[0] * actions.shape[1] / (time.perf_counter() - start)


def _timed(make: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    env = make()
    return env, time.perf_counter() - start


def env_rows(quick: bool) -> list[dict]:
    import gymnasium as gym
    import metaworld  # noqa: F401  (registers Meta-World/*)

    from mtrl_bench import make_env
    from mtrl_bench.registry import get_suite

    suite = get_suite("metaworld/mt10-v1")
    steps, repeats = (300, 2) if quick else (1500, 3)
    rng = np.random.default_rng(0)
    rows, when = [], datetime.now(UTC).isoformat(timespec="seconds")
    for strategy in ("sync", "async"):
        log(f"MT10 {strategy}: constructing ours and upstream's")
        ours, ours_s = _timed(lambda s=strategy: make_env(suite, "train", seed=0, vector=s))
        peer, peer_s = _timed(
            lambda s=strategy: gym.make_vec("Meta-World/MT10", vector_strategy=s, seed=0)
        )
        actions = rng.uniform(-1, 1, (steps, ours.num_envs, 4)).astype(np.float32)
        best_ours = best_peer = 0.0
        for r in range(repeats):
            best_ours = max(best_ours, _rate(ours, actions))
            best_peer = max(best_peer, _rate(peer, actions))
            log(f"  repeat {r}: ours {best_ours:,.0f}, upstream {best_peer:,.0f} env steps/s")
        ours.close()
        peer.close()
        ratio = best_ours / best_peer
        print(f"MT10 {strategy:5}: ours {best_ours:7,.0f} env steps/s, upstream {best_peer:7,.0f}"
              f" -> ratio {ratio:.3f} ({'meets' if ratio >= 0.95 else 'MISSES'} >= 0.95);"
              f" construction ours {ours_s:.1f} s, upstream {peer_s:.1f} s")  # fmt: skip
        rows.append({
            "name": f"metaworld/mt10-v1 {strategy} vs Meta-World/MT10 {strategy}",
            "ours": round(best_ours), "peer": round(best_peer),
            "peer_name": f"gymnasium.make_vec('Meta-World/MT10', vector_strategy='{strategy}') "
                         f"metaworld {metaworld_version()}",
            "unit": "env steps/s", "ratio": round(ratio, 3), "when": when,
            "quick": quick, "steps_per_run": steps * ours.num_envs, "repeats": repeats,
            "ours_construct_s": round(ours_s, 2), "peer_construct_s": round(peer_s, 2),
            "load_avg_1m": _load(),
        })  # fmt: skip
    where = machine()  # imports jax: only after upstream's async envs fork their workers
    return [{**row, "machine": where} for row in rows]


def metaworld_version() -> str:
    import importlib.metadata as md

    return md.version("metaworld")


def sac_rows(quick: bool) -> list[dict]:
    import jax
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure

    from mtrl_bench import make_env
    from mtrl_bench.agents import mtsac
    from mtrl_bench.baselines.sb3 import OneHotTaskVecEnv
    from mtrl_bench.registry import get_agent, get_suite

    suite, n, when = get_suite("metaworld/mt10-v1"), 20 if quick else 100, _now()
    rng = np.random.default_rng(0)
    log("SAC updates at the MT10 batch: SB3 SAC (MTSAC-sized MLP)")
    venv = make_env(suite, "train", seed=0, vector="sync")
    venv = OneHotTaskVecEnv(venv, 10)  # 10 training tasks
    model = SAC("MultiInputPolicy", venv, batch_size=1280, learning_starts=0, seed=0,
                policy_kwargs={"net_arch": [400, 400, 400]})  # fmt: skip
    model.set_logger(configure(None, []))
    for _ in range(300):  # 3000 random transitions
        obs = {
            "obs": rng.normal(size=(10, 39)).astype(np.float32),
            "task": np.eye(10, dtype=np.float32),
        }
        model.replay_buffer.add(obs, obs, rng.uniform(-1, 1, (10, 4)), rng.normal(size=10),
                                np.zeros(10), [{}] * 10)  # fmt: skip
    model.train(gradient_steps=3, batch_size=1280)  # warm-up
    start = time.perf_counter()
    model.train(gradient_steps=n, batch_size=1280)
    peer = n / (time.perf_counter() - start)
    venv.close()
    log(f"  SB3 SAC: {peer:.1f} updates/s")
    from train_throughput import peak_flops

    peak = peak_flops()
    log(f"  peak: {peak / 1e9:.1f} GFLOP/s (2048^3 float32 matmul)")
    rows = []
    for agent in ("mtsac", "moore-sac"):
        algo = mtsac.build(get_agent(agent).presets["paper"], suite)
        learner = algo.init(jax.random.key(0))
        batch = {"obs": rng.normal(size=(10, 128, 39)), "actions": rng.uniform(-1, 1, (10, 128, 4)),
                 "rewards": rng.normal(size=(10, 128)), "next_obs": rng.normal(size=(10, 128, 39)),
                 "terminated": np.zeros((10, 128))}  # fmt: skip
        batch = {k: v.astype(np.float32) for k, v in batch.items()}
        update = jax.jit(algo.update, static_argnums=2)
        cost = update.lower(learner, batch, True).compile().cost_analysis()
        flops = float((cost[0] if isinstance(cost, list) else cost)["flops"])
        learner = jax.block_until_ready(update(learner, batch, True)[0])  # compile
        start = time.perf_counter()
        for _ in range(n):
            learner, _ = update(learner, batch, True)
        jax.block_until_ready(learner)
        ours = n / (time.perf_counter() - start)
        ratio = ours / peer
        print(
            f"SAC update, batch 1280: ours {agent:9} {ours:6.1f} updates/s, SB3 SAC {peer:6.1f}"
            f" -> ratio {ratio:.2f}; {flops / 1e9:.1f} GFLOP per update, "
            f"{ours * flops / peak:.0%} of peak, ceiling {peak / flops:.1f} updates/s"
        )
        rows.append({"name": f"{agent} update (MT10 batch 1280) vs SB3 SAC", "ours": round(ours, 1),
                     "peer": round(peer, 1), "peer_name": "stable-baselines3 SAC, MultiInputPolicy "
                     "net_arch [400, 400, 400], batch 1280", "unit": "updates/s",
                     "ratio": round(ratio, 3), "when": when, "quick": quick, "updates": n,
                     "gflop_per_update": round(flops / 1e9, 2),
                     "gflop_s": round(ours * flops / 1e9, 1), "peak_gflop_s": round(peak / 1e9, 1),
                     "peak_share": round(ours * flops / peak, 3),
                     "ceiling_updates_s": round(peak / flops, 1),
                     "load_avg_1m": _load()})  # fmt: skip
    where = machine()
    return [{**row, "machine": where} for row in rows]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


SECTIONS: list[Callable[[bool], list[dict]]] = [env_rows, sac_rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced run (~1 min)")
    parser.add_argument("--out", default=str(OUT / "metaworld_throughput.json"))
    args = parser.parse_args()
    out = Path(args.out)
    if out.suffix != ".json" or out.is_dir():
        parser.error(f"--out {args.out!r}: expected a path ending in .json")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [row for section in SECTIONS for row in section(args.quick)]
    out.write_text(json.dumps(rows, indent=1) + "\n")
    cmd = "python benchmarks/metaworld_throughput.py" + (" --quick" if args.quick else "")
    head = f"Written by `{cmd}` ({rows[0]['when']}; {rows[0]['machine']}).\n\n"
    out.with_suffix(".md").write_text(head + markdown(rows))
    print(f"\nwrote {out} and {out.with_suffix('.md')} ({len(rows)} rows); machine: {machine()}")


def markdown(rows: list[dict]) -> str:
    """Env rows and SAC rows as two Markdown tables."""
    env = [r for r in rows if "gflop_per_update" not in r]
    sac = [r for r in rows if "gflop_per_update" in r]
    lines = ["| measurement | ours | peer | ratio | construction ours / peer (s) | load |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in env:
        lines.append(
            f"| {r['name']} | {r['ours']:,.0f} | {r['peer']:,.0f} | {r['ratio']:.2f} | "
            f"{r['ours_construct_s']} / {r['peer_construct_s']} | {r['load_avg_1m']} |"
        )
    lines += ["", "| SAC update, MT10 batch 1280 | ours updates/s | SB3 SAC updates/s | ratio | "
              "GFLOP per update | GFLOP/s | share of peak | ceiling updates/s | load |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in sac:
        lines.append(
            f"| {r['name'].split()[0]} | {r['ours']} | {r['peer']} | {r['ratio']:.2f} | "
            f"{r['gflop_per_update']} | {r['gflop_s']} | {r['peak_share']:.0%} | "
            f"{r['ceiling_updates_s']} | {r['load_avg_1m']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
