"""Meta-World throughput: our suite's vector env vs upstream's, in one run (DESIGN §7).

    python benchmarks/metaworld_throughput.py [--quick]

Section ``env_rows``: env steps/s of ``metaworld/mt10-v1`` (``Suite.make("train", vector=...)``)
vs raw ``gymnasium.make_vec("Meta-World/MT10", vector_strategy=...)`` (metaworld 3.1.1), both
with uniformly random actions (the same pre-drawn array), 500-step episodes and SAME_STEP
autoresets included, ``sync`` and ``async``. Ours ``async`` runs the 10 envs in one worker per
core (``AsyncMultiTaskVectorEnv``); upstream's in one process per env (gymnasium
``AsyncVectorEnv``). Ours and the peer alternate within each repeat, and the best repeat counts
(other work on the machine slows both). Construction times are reported beside the rates.
Target: our overhead <= 5 %, i.e. ratio >= 0.95.

Rows go to ``benchmarks/out/metaworld_throughput.json``; ``main`` collects them from the section
functions in ``SECTIONS`` (each ``f(quick) -> list[dict]``), so more sections can be added.
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

    from mtrl_bench.registry import get_suite

    suite = get_suite("metaworld/mt10-v1")
    steps, repeats = (300, 2) if quick else (1500, 3)
    rng = np.random.default_rng(0)
    rows, when = [], datetime.now(UTC).isoformat(timespec="seconds")
    for strategy in ("sync", "async"):
        log(f"MT10 {strategy}: constructing ours and upstream's")
        ours, ours_s = _timed(lambda s=strategy: suite.make("train", seed=0, vector=s))
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


SECTIONS: list[Callable[[bool], list[dict]]] = [env_rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced run (~1 min)")
    args = parser.parse_args()
    rows = [row for section in SECTIONS for row in section(args.quick)]
    OUT.mkdir(exist_ok=True)
    (OUT / "metaworld_throughput.json").write_text(json.dumps(rows, indent=1))
    print(f"\nwrote {OUT / 'metaworld_throughput.json'} ({len(rows)} rows); machine: {machine()}")


if __name__ == "__main__":
    main()
