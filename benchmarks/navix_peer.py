"""The navix peer of ``env_throughput.py``: coverage / fidelity probes and a worker that runs
inside a separate Python >= 3.12 venv with navix (never a project dependency).

``run_navix`` builds that venv on first use and runs this file in it as
``python navix_peer.py CONFIG_JSON``; the worker prints one JSON line with the results.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from env_throughput import _split, _time_jax, log, machine

NAVIX_VERSION = "4.0.0"


def navix_id(name: str) -> str:
    return "Navix-" + name.removeprefix("MiniGrid-").rsplit("-v", 1)[0] + "-v0"


def navix_worker(cfg: dict) -> dict:
    """Runs in the navix venv: throughput per (set, mode, batch) and coverage of ``cfg``'s tasks."""
    import importlib.metadata as md

    import jax
    import jax.numpy as jnp
    import navix as nx

    def make(name):
        return nx.make(navix_id(name), observation_fn=nx.observations.symbolic_first_person)

    results = []
    for set_name, names in cfg["sets"].items():
        envs = [make(n) for n in names]
        for batch in cfg["batches"]:
            sizes = [(e, b) for e, b in zip(envs, _split(batch, len(envs)), strict=True) if b]

            def step(c, sizes=sizes):
                key, *keys = jax.random.split(c["key"], len(sizes) + 1)
                ts, ret = [], c["ret"]
                for (env, b), k, t in zip(sizes, keys, c["ts"], strict=True):
                    actions = jax.random.randint(k, (b,), 0, len(env.action_set))
                    ts.append(jax.vmap(env.step)(t, actions))
                    ret = ret + ts[-1].reward.sum()
                return {"key": key, "ts": tuple(ts), "ret": ret}

            keys = jax.random.split(jax.random.key(0), len(sizes))
            ts = tuple(jax.jit(jax.vmap(e.reset))(jax.random.split(k, b))
                       for (e, b), k in zip(sizes, keys, strict=True))  # fmt: skip
            carry = {"key": jax.random.key(1), "ts": ts, "ret": jnp.zeros(())}
            for mode in cfg["modes"]:
                n = cfg["steps"][mode][str(batch)]
                results.append({"set": set_name, **_time_jax(step, carry, mode, batch, n,
                                                            cfg["repeats"])})  # fmt: skip
                log(
                    f"navix {set_name} {mode} B={batch}: {results[-1]['sps']:,.0f} steps/s "
                    f"(compile {results[-1]['compile_s']:.1f} s)"
                )
    log("navix coverage of the suite tasks")
    coverage = [_navix_coverage(n, make, n in cfg["observe"]) for n in cfg["coverage"]]
    return {"results": results, "coverage": coverage,
            "versions": {p: md.version(p) for p in ("navix", "jax", "jaxlib")},
            "python": platform.python_version(), "machine": machine()}  # fmt: skip


def _navix_coverage(name: str, make, observe: bool) -> dict:
    import jax
    import numpy as np

    row = {"task": name, "navix_id": navix_id(name)}
    try:
        env = make(name)
    except NotImplementedError:
        return {**row, "present": False}
    row |= {"present": True, "obs_shape": list(env.observation_space.shape),
            "max_steps": int(env.max_steps), "grid_wh": [int(env.width), int(env.height)],
            "n_actions": len(env.action_set),
            "penalty_coeff": float(env.penalty_coeff)}  # fmt: skip
    if observe:  # share of unseen (type 0) view cells at reset, over 64 layouts (one compile)
        obs = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 64)).observation
        row["unseen_cells"] = float((np.asarray(obs)[..., 0] == 0).mean())
    return row


def minigrid_facts(name: str) -> dict:
    """The same facts for minigrid (this process), to set against navix's."""
    import gymnasium as gym
    import minigrid  # noqa: F401
    import numpy as np

    env = gym.make(name)
    unseen = [float((env.reset(seed=seed)[0]["image"][..., 0] == 0).mean()) for seed in range(64)]
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    return {"max_steps": int(u.max_steps), "grid_wh": [u.width, u.height],
            "obs_shape": list(obs["image"].shape),
            "unseen_cells": float(np.mean(unseen))}  # fmt: skip


def _python312(given: str | None) -> str | None:
    """A working Python >= 3.12: ``given``, ``python3.12`` on PATH, or a pyenv install."""
    found = [given] if given else []
    found += [shutil.which("python3.12")] + sorted(
        str(p) for p in Path("~/.pyenv/versions").expanduser().glob("3.1[2-9]*/bin/python")
    )
    check = "import sys; assert sys.version_info >= (3, 12)"
    for python in filter(None, found):
        if subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
            return python
    return None


def navix_python(args) -> Path | None:
    """The navix venv's Python, building the venv on first use (None if that fails)."""
    import jax
    import jaxlib

    venv = Path(args.navix_venv).expanduser()
    python = venv / "bin" / "python"
    ok = python.exists() and subprocess.run([python, "-c", "import navix"],
                                            capture_output=True).returncode == 0  # fmt: skip
    if not ok:
        base = _python312(args.python312)
        if not base:
            print("navix skipped: no Python >= 3.12 found (pass --python312 PATH)", file=sys.stderr)
            return None
        pins = [f"navix=={NAVIX_VERSION}", f"jax=={jax.__version__}",
                f"jaxlib=={jaxlib.__version__}"]  # fmt: skip
        print(
            f"building the navix venv at {venv} with {base}: {' '.join(pins)} "
            "(one-off, about a minute and 1 GB; never a project dependency)",
            file=sys.stderr,
        )
        built = (
            subprocess.run([base, "-m", "venv", str(venv)]).returncode == 0
            and subprocess.run([python, "-m", "pip", "install", "-q", *pins]).returncode == 0
        )
        if not built:
            print(f"navix skipped: building {venv} failed (pip output above)", file=sys.stderr)
            return None
    return python


def run_navix(args, cfg: dict, timeout: float | None = None) -> dict | None:
    """The worker's results for ``cfg`` (None if navix is unavailable or the worker failed;
    ``{"timed_out": True}`` if it ran past ``timeout`` seconds)."""
    python = navix_python(args)
    if python is None:
        return None
    try:
        proc = subprocess.run([python, __file__, json.dumps(cfg)], stdout=subprocess.PIPE,
                              text=True, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"timed_out": True}
    if proc.returncode != 0:
        print(f"navix worker failed (exit {proc.returncode}); navix skipped", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_coverage(coverage: list[dict], facts: dict) -> list[dict]:
    print(f"\nnavix coverage of our {len(coverage)} MiniGrid tasks "
          "(minigrid / navix; unseen: share of view cells of type 0 at reset):")  # fmt: skip
    out = []
    for c in coverage:
        f = facts[c["task"]]
        row = {**c, "minigrid": f}
        if c["present"]:
            seen = f"{c['unseen_cells']:.2f}" if "unseen_cells" in c else "-"
            print(
                f"  {c['task']:34} {c['navix_id']:28} max_steps {f['max_steps']:5}/"
                f"{c['max_steps']:<5} grid {f['grid_wh']}/{c['grid_wh']} obs {f['obs_shape']}/"
                f"{c['obs_shape']} unseen {f['unseen_cells']:.2f}/{seen}"
            )
        else:
            print(f"  {c['task']:34} {c['navix_id']:28} MISSING")
        out.append(row)
    present = sum(c["present"] for c in coverage)
    same_steps = sum(c["present"] and c["max_steps"] == facts[c["task"]]["max_steps"]
                     for c in coverage)  # fmt: skip
    same_grid = sum(c["present"] and c["grid_wh"] == facts[c["task"]]["grid_wh"] for c in coverage)
    penalties = sorted({c["penalty_coeff"] for c in coverage if c["present"]})
    print(
        f"  present {present}/{len(coverage)}; same max_steps {same_steps}; same grid size "
        f"{same_grid}; navix penalty_coeff {penalties} (0: reward 1 on success; minigrid pays "
        "1 - 0.9 t / max_steps)"
    )
    return out


if __name__ == "__main__":
    print(json.dumps(navix_worker(json.loads(sys.argv[1]))))
