"""In-context learning on held-out DarkRoom goals: train AD or DPT on a learning-history dataset
and print the ``in_context`` curves (return per in-context episode) on held-out and training
goals next to a uniform-random policy's.

    python -m experiments.in_context_darkroom --model dpt --suite darkroom/dpt-v1 \
        --data data/in_context/darkroom__dpt-v1/seed0.npz --preset cpu [--set steps=2000 ...]
        [--out results/in_context/....json]
    python -m experiments.in_context_darkroom --table   # results/in_context/*.json -> table.md

The output JSON holds the config, the dataset's provenance, training losses and the curves
(mean over held-out tasks x trials per in-context episode index).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import jax
import numpy as np

from mtrl_bench.agents import ad, dpt, icl_data
from mtrl_bench.in_context import Context, curve, evaluate_in_context
from mtrl_bench.jax_env import stack_params
from mtrl_bench.jax_vector import suite_env
from mtrl_bench.registry import get_suite


class RandomPolicy:
    """Uniform-random actions (DarkRoom's 5), the in-context baseline."""

    def __init__(self, context_steps: int, n_actions: int, seed: int = 0) -> None:
        self.context_steps, self.n = context_steps, n_actions
        self.rng = np.random.default_rng(seed)

    def act_in_context(self, context: Context, task_ids, *, deterministic=False):
        return self.rng.integers(0, self.n, len(context.length))


def _parse(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def run(model: str, suite_id: str, data_path: str, preset: str, overrides: dict, seed: int,
        trials: int, episodes: int | None, log_every: int = 500) -> dict:  # fmt: skip
    suite = get_suite(suite_id)
    data = icl_data.load(data_path)
    mod = ad if model == "ad" else dpt
    known = {f.name for f in fields(mod.Config)}
    if bad := set(overrides) - known:
        raise SystemExit(f"unknown config fields {sorted(bad)}")
    config = replace(mod.PRESETS[preset], **overrides)
    losses = []

    def log(step, d):
        if step % log_every == 0 or step == config.steps:
            losses.append((step, d["loss"]))
            print(f"  step {step:6d} loss {d['loss']:.4f}", flush=True)

    t0 = time.perf_counter()
    if model == "ad":
        params, net = ad.train(config, data, seed, 5, True, log=log)
        policy = ad.ADPolicy(net, params, seed)
    else:
        env = suite_env(suite)
        goals = stack_params(env, suite.split_tasks("train"))
        params, net = dpt.train(config, data, goals, env.optimal_action, seed, 5, True, log=log)
        policy = dpt.DPTPolicy(net, params, seed)
    train_s = time.perf_counter() - t0
    n_eps = episodes or int(suite.options["in_context_episodes"])
    out = {"model": model, "suite": suite_id, "preset": preset, "config": asdict(config),
           "seed": seed, "trials": trials, "dataset": data_path,
           "dataset_git": data["meta"]["provenance"]["git_sha"],
           "dataset_config": data["meta"]["config"], "losses": losses,
           "train_seconds": round(train_s, 1), "curves": {}}  # fmt: skip
    rnd = RandomPolicy(policy.context_steps, 5, seed)
    for name, pol, split in (("test", policy, "test"), ("train", policy, "train"),
                             ("random_test", rnd, "test")):  # fmt: skip
        sub = replace(suite, options={**suite.options, "in_context_episodes": n_eps})
        res = evaluate_in_context(pol, sub, n_eps, seed=seed, trials=trials, split=split)
        c = curve(res)
        out["curves"][name] = [round(float(x), 4) for x in c.mean(0)]
        out["curves"][name + "_score"] = [round(float(x), 4) for x in
                                          curve_score(res, sub, split).mean(0)]  # fmt: skip
    return out


def curve_score(res, suite, split) -> np.ndarray:
    """Normalised score curve (tasks, episodes): each task's return curve through its bounds."""
    c = curve(res)
    tasks = suite.split_tasks(split)
    return np.stack(
        [np.array([t.normalize(float(x)) for x in row]) for t, row in zip(tasks, c, strict=True)]
    )


def summary(out: dict) -> str:
    lines = [f"{out['model']} {out['suite']} preset {out['preset']} seed {out['seed']} "
             f"(train {out['train_seconds']} s)"]  # fmt: skip
    for name in ("test", "train", "random_test"):
        c = np.asarray(out["curves"][name])
        k = max(1, len(c) // 10)
        pts = " ".join(f"{c[i : i + k].mean():.2f}" for i in range(0, len(c), k))
        lines.append(f"  {name:12s} first {c[0]:.2f} last-5 {c[-5:].mean():.2f} | {pts}")
    return "\n".join(lines)


RESULTS = Path("results/in_context")


def _bins(c: np.ndarray, n: int = 5) -> str:
    return " / ".join(f"{b.mean():.2f}" for b in np.array_split(c, n))


def table(root: Path = RESULTS) -> str:
    """Markdown table of every result JSON under ``root``: the in-context return curve on
    held-out goals (mean over tasks x trials), in 5 consecutive bins of in-context episodes,
    and the same for training goals and for a uniform-random policy on the held-out goals."""
    rows = ["| model | suite | preset | steps | context episodes | history lr | seed | "
        "in-context episodes | held-out: first | "
            "held-out, 5 bins | training goals, 5 bins | random, held-out, 5 bins |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for path in sorted(root.glob("*.json")):
        r = json.loads(path.read_text())
        c = {k: np.asarray(v) for k, v in r["curves"].items()}
        rows.append(
            f"| {r['model']} | `{r['suite']}` | {r['preset']} | {r['config']['steps']} | "
            f"{r['config']['episodes']} | {r['dataset_config']['lr']:g} | {r['seed']} | "
            f"{len(c['test'])} x {r['trials']} trials | {c['test'][0]:.2f} | "
            f"{_bins(c['test'])} | {_bins(c['train'])} | {_bins(c['random_test'])} |"
        )
    return ("# In-context return on DarkRoom (`experiments/in_context_darkroom.py`)\n\n"
            "Mean return per in-context episode, averaged over tasks and trials; the episodes "
            "cut into 5 consecutive bins (first bin = the earliest episodes).\n\n"
            + "\n".join(rows) + "\n")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("ad", "dpt"))
    p.add_argument("--suite")
    p.add_argument("--data")
    p.add_argument("--table", action="store_true", help="write results/in_context/table.md")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.table:
        (RESULTS / "table.md").write_text(table())
        print((RESULTS / "table.md").read_text())
        return
    if not (a.model and a.suite and a.data):
        p.error("--model, --suite and --data are required (or --table)")
    overrides = {k: _parse(v) for k, v in (s.split("=", 1) for s in a.set)}
    out = run(a.model, a.suite, a.data, a.preset, overrides, a.seed, a.trials, a.episodes)
    print(summary(out))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    jax.config.update("jax_platforms", "cpu")
    main()
