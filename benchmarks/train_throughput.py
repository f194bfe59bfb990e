"""Training throughput on MiniGrid MT3: our JAX MTPPO / MOORE against SB3 PPO, and the FLOP/s
our update step reaches as a fraction of this CPU's peak (issue 4).

    python benchmarks/train_throughput.py [--quick] [--skip camrl,lax-conv] [--out PATH]

Measurements, all in this process, each after a warm-up (compile for JAX, one rollout for SB3):

1. **CNN**: env-steps/s of whole updates (rollout of 2000 steps per task + PPO update, MOORE's
   paper settings: 8 epochs, minibatch 256 x 3) for our ``mtppo`` and ``moore`` on
   ``minigrid-jax/mt3-v1``, against SB3 PPO with MOORE's CNN (``sb3`` baseline preset
   ``minigrid_cnn``: same rollout size, minibatch, epochs, lr) on the python ``minigrid/mt3-v1``
   through the foundation adapter. SB3 shares one CNN between actor and critic; ours has two
   (MOORE's design), so ours does about twice the network work per sample. Target >= 3x.
2. **MLP**: the same with SB3's default small MLP (64, 64) on the flattened grid on both sides
   (ours: ``encoder="mlp"``, per-task heads of width 64), where env stepping and Python
   overhead dominate. Target >= 20x.
3. **CAMRL**: env-steps/s of CAMRL (``paper`` preset, mode switch without the warm-up) against
   our MTPPO, and the share of its wall time spent in curriculum iterations (their count in the
   switch run times the time of one, from all-curriculum and all-independent runs).
4. **FLOP/s**: analytic FLOPs of one update (forward 2 x MACs; backward counted as 2 x forward)
   divided by the time of the jitted update alone, against the peak of a 2048^3 float32
   matmul. Also the update time with ``lax.conv`` instead of our im2col matmuls. Target 50 %.

torch uses every core (``torch.set_num_threads(os.cpu_count())``); XLA uses its defaults.
``--skip`` leaves out measurements: ``camrl`` (3.) and ``lax-conv`` (the ``lax.conv`` update of
4., 15-30x slower than ours, which takes most of a run on a loaded machine).
Rows go to ``--out`` (default ``benchmarks/out/train_throughput.json``; the fields of
benchmarks/README.md, plus ``load``, the 1-minute load average when the row was written), with
a Markdown table beside it (same name, ``.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from env_throughput import _load, log, machine  # noqa: E402

from mtrl_bench.agents import mtppo, nets  # noqa: E402
from mtrl_bench.agents.rollout import Batch, run_keys  # noqa: E402
from mtrl_bench.registry import get_suite  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def ours_sps(config: mtppo.Config, suite_id: str, updates: int) -> float:
    """Env-steps/s of ``updates`` whole updates (one jitted scan), after compiling it."""
    suite = get_suite(suite_id)
    algo = mtppo.build(config, suite)
    start, run = mtppo.make_chunk(algo, suite)
    learner, env = jax.jit(start)(*run_keys(0, len(algo.task_ids)))
    run = jax.jit(run, static_argnums=2)
    jax.block_until_ready(run(learner, env, updates))  # compile + warm-up
    t0 = time.perf_counter()
    jax.block_until_ready(run(learner, env, updates))
    return updates * config.steps_per_task * len(algo.task_ids) / (time.perf_counter() - t0)


def camrl_run(mode: str, updates: int) -> tuple[float, int]:
    """CAMRL (``paper`` preset, no warm-up) on MT3: seconds of ``updates`` iterations (one jitted
    scan, after compiling it) and how many of them were curriculum iterations."""
    from mtrl_bench.agents import camrl

    suite = get_suite("minigrid-jax/mt3-v1")
    algo = camrl.build(camrl.Config(mode=mode, warmup=0), suite)  # type: ignore[arg-type]
    start, run = camrl.make_chunk(algo, suite)
    state, env = jax.jit(start)(*run_keys(0, 3))
    run = jax.jit(run, static_argnums=2)
    jax.block_until_ready(run(state, env, updates))  # compile + warm-up
    t0 = time.perf_counter()
    (state, _), _ = jax.block_until_ready(run(state, env, updates))
    return time.perf_counter() - t0, int(state.curriculum_iters)


def sb3_sps(features: str, net_arch: tuple[int, ...], updates: int) -> float:
    import torch

    from mtrl_bench.baselines import sb3

    torch.set_num_threads(os.cpu_count() or 1)
    suite = get_suite("minigrid/mt3-v1")
    config = sb3.Config(n_steps=2000, batch_size=768, n_epochs=8, learning_rate=1e-3,
                        envs_per_task=1, features=features, net_arch=net_arch,
                        torch_threads=os.cpu_count() or 1)  # fmt: skip
    env = sb3._make_envs(config, suite, 0, independent=False)[-1]
    model = sb3._make_model(config, env, 0)
    model.learn(6000)  # warm-up: one rollout + update
    t0 = time.perf_counter()
    model.learn(6000 * updates, reset_num_timesteps=False)
    sps = 6000 * updates / (time.perf_counter() - t0)
    env.close()
    return sps


def forward_macs(net: nets.MultiTaskNet, obs_shape: tuple[int, ...]) -> int:
    """MACs of one sample's forward pass (its own head only, as the grouped matmuls compute)."""
    h, w, c = obs_shape
    k = 1 if net.kind == "mtppo" else net.n_experts
    macs = 0
    for cout in nets.CHANNELS:
        h, w = h - 1, w - 1
        macs += h * w * 4 * c * cout * k
        c = cout
    d = h * w * c
    macs += (k * k * d if net.kind == "moore" else 0) + k * d  # Gram-Schmidt, mixing
    return macs + d * net.hidden + net.hidden * net.out


def update_flops(algo: mtppo.Algo, obs_shape) -> float:
    n = algo.config.steps_per_task * len(algo.task_ids)
    actor, critic = forward_macs(algo.actor, obs_shape), forward_macs(algo.critic, obs_shape)
    # critic: V(s), V(s') and one fwd+bwd step; actor: old log-probs and epochs x fwd+bwd
    return 2.0 * n * (critic * (2 + 3) + actor * (1 + 3 * algo.config.epochs))


def update_seconds(config: mtppo.Config, conv=nets.conv2x2, repeats: int = 2) -> float:
    suite = get_suite("minigrid-jax/mt3-v1")
    algo = mtppo.build(config, suite, conv=conv)
    start, _ = mtppo.make_chunk(algo, suite)
    learner, _ = jax.jit(start)(*run_keys(0, 3))
    n, shape = config.steps_per_task, (3, config.steps_per_task, 7, 7, 3)
    key = jax.random.key(1)
    obs = jax.random.randint(key, shape, 0, 11).astype(jnp.uint8)
    dones = jnp.arange(3 * n).reshape(3, n) % 97 == 0
    batch = Batch(obs, jax.random.randint(key, (3, n), 0, 7), jnp.zeros((3, n)),
                  jnp.zeros((3, n), bool), dones, obs)  # fmt: skip
    update = jax.jit(algo.update)
    jax.block_until_ready(update(learner, batch))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(update(learner, batch))
        best = min(best, time.perf_counter() - t0)
    return best


def peak_flops(size: int = 2048, repeats: int = 5) -> float:
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best


def camrl_rows(row, updates: int) -> None:
    log("CAMRL on minigrid-jax/mt3-v1: mode switch, then always / never curriculum iterations")
    seconds, n_curriculum = camrl_run("switch", updates)
    per_iter = {mode: camrl_run(mode, updates)[0] / updates for mode in ("always", "never")}
    spent = n_curriculum * per_iter["always"]
    share = spent / (spent + (updates - n_curriculum) * per_iter["never"])
    mtppo_sps = ours_sps(mtppo.Config(network="mtppo"), "minigrid-jax/mt3-v1", updates)
    row("mt3 train camrl", updates * 6000 / seconds, mtppo_sps, "our mtppo (cnn)", "env-steps/s",
        curriculum_share_of_time=share, curriculum_iterations=n_curriculum,
        iterations=updates, curriculum_iter_s=per_iter["always"],
        independent_iter_s=per_iter["never"])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed update per measurement")
    parser.add_argument("--skip", default="", help="comma-separated: camrl, lax-conv")
    parser.add_argument("--out", default=str(OUT / "train_throughput.json"))
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if skip - {"camrl", "lax-conv"}:
        parser.error(f"unknown --skip entries: {sorted(skip - {'camrl', 'lax-conv'})}")
    updates = 1 if args.quick else 3
    when, where, rows = datetime.now(UTC).isoformat(timespec="seconds"), machine(), []

    def row(name: str, ours: float, peer: float, peer_name: str, unit: str, **extra) -> None:
        rows.append({"name": name, "ours": ours, "peer": peer, "peer_name": peer_name,
                     "unit": unit, "ratio": ours / peer, "machine": where, "when": when,
                     "quick": args.quick, "load": _load(), **extra})  # fmt: skip
        print(f"{name:34s} ours {ours:12,.1f}  {peer_name:28s} {peer:12,.1f}  {unit:14s} "
              f"ratio {ours / peer:6.2f}", flush=True)  # fmt: skip

    log("SB3 PPO with MOORE's CNN on minigrid/mt3-v1")
    sb3_cnn = sb3_sps("minigrid_cnn", (128,), updates)
    for network in ("mtppo", "moore"):
        log(f"ours: {network} (CNN) on minigrid-jax/mt3-v1")
        sps = ours_sps(mtppo.Config(network=network), "minigrid-jax/mt3-v1", updates)
        row(f"mt3 train cnn {network}", sps, sb3_cnn, "sb3 ppo minigrid_cnn", "env-steps/s",
            target=3.0)  # fmt: skip

    log("SB3 PPO default MLP (64, 64) on minigrid/mt3-v1")
    sb3_mlp = sb3_sps("flatten", (64, 64), updates)
    log("ours: mtppo with MLP (64, 64) experts on the flattened grid")
    mlp = mtppo.Config(network="mtppo", encoder="mlp", mlp_widths=(64, 64), hidden=64)
    row("mt3 train mlp mtppo", ours_sps(mlp, "minigrid-jax/mt3-v1", updates), sb3_mlp,
        "sb3 ppo mlp (64, 64)", "env-steps/s", target=20.0)  # fmt: skip

    if "camrl" not in skip:
        camrl_rows(row, updates)

    log("peak: 2048^3 float32 matmul")
    peak = peak_flops()
    for network in ("mtppo", "moore"):
        config = mtppo.Config(network=network)
        algo = mtppo.build(config, get_suite("minigrid-jax/mt3-v1"))
        flops = update_flops(algo, (7, 7, 3))
        log(f"update step alone: {network}, im2col and lax.conv")
        seconds = update_seconds(config)
        row(f"mt3 update {network} flop/s", flops / seconds, peak, "matmul 2048 peak", "FLOP/s",
            target=0.5, update_s=seconds, update_gflop=flops / 1e9)  # fmt: skip
        if "lax-conv" not in skip:
            xla = update_seconds(config, nets.conv2x2_xla)
            row(f"mt3 update {network} im2col vs lax.conv", xla / seconds, 1.0, "lax.conv (=1)",
                "speedup", update_s=seconds, lax_conv_update_s=xla)  # fmt: skip

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    cmd = "python benchmarks/train_throughput.py" + (" --quick" if args.quick else "")
    cmd += f" --skip {args.skip}" if skip else ""
    out.with_suffix(".md").write_text(f"Written by `{cmd}` ({when}; {where}).\n\n{markdown(rows)}")
    print(f"\nwrote {out} and {out.with_suffix('.md')} ({len(rows)} rows); machine: {where}")


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (FLOP/s as GFLOP/s)."""
    lines = ["| measurement | unit | ours | peer | peer value | ours / peer | target | load |",
             "|---|---|---:|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        scale, unit = (1e9, "GFLOP/s") if r["unit"] == "FLOP/s" else (1.0, r["unit"])
        fmt = ",.1f" if scale > 1 or r["unit"] == "speedup" else ",.0f"
        target = "-" if r.get("target") is None else format(r["target"], "g")
        lines.append(
            f"| {r['name']} | {unit} | {r['ours'] / scale:{fmt}} | {r['peer_name']} "
            f"| {r['peer'] / scale:{fmt}} | {r['ratio']:.2f} | {target} | {r['load']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
