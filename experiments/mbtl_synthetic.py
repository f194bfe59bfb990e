"""MBTL on synthetic transfer matrices with a known structure (issue 16: does MBTL's GP work?).

    python -m experiments.mbtl_synthetic            # every matrix, every GP variant (minutes)
    python -m experiments.mbtl_synthetic --quick    # 6 matrices, for a look

A matrix is J(x, x') = p(x) + e_x - g |x - x'| (1 + s sign(x' - x)) + noise on a grid of N
contexts in [0, 1]: p is the smooth training performance along the context axis (one of five
shapes), e_x a per-source training noise, g the generalisation gap per unit context (s makes it
lopsided), optionally floored. Specs cycle through N in 30-100, offsets 0 / 0.5 / 1.2 (Pendulum's
scores sit near 1.2), amplitudes, smoothness, flat to steep gaps and noise; MBTL gets theta =
the true slope per grid step times a factor, 1 in most specs and 0.2 or 5 in some (the committed
matrices' per-domain thetas are off by such factors). Budget K = N // 2; the score of a selector
is its generalized performance averaged over k = 1..K.

Compared: MBTL with every GP variant of ``agents/mbtl.py:GPS`` (``reference`` is the released
code's GP), random (100 orders), pseudogreedy, equidistant and the sequential oracle. Writes
``results/transfer/mbtl-synthetic/synthetic.json`` (specs, per matrix and method the average
over k, MBTL's first picks) and ``table.md`` (per matrix; the mean over matrices and the mean
paired difference to random, each with a 95 % percentile-bootstrap CI over matrices).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the machine's cores belong to the sweeps

import argparse  # noqa: E402
import sys  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mtrl_bench.agents import mbtl  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "results" / "transfer" / "mbtl-synthetic"
SHAPES = ("gp", "sines", "peak", "ramp", "flat")
BOOTSTRAP = 10_000


@dataclass(frozen=True)
class Spec:
    name: str
    shape: str  # of the training performance p(x)
    n: int  # contexts
    offset: float  # level of p
    amplitude: float  # of p's variation
    smooth: float  # length scale of p's variation (unit context)
    slope: float  # generalisation gap g per unit context
    skew: float  # gap lopsidedness s in [0, 1)
    noise: float  # iid noise on every entry
    row_noise: float  # per-source training noise e_x
    floor: float | None  # J clipped from below (a failed policy), or None
    theta_factor: float  # theta given to MBTL / the true slope per grid step
    seed: int


def specs(count: int = 30) -> list[Spec]:
    """``count`` specs; parameters cycle with different periods so combinations vary."""
    out = []
    for i in range(count):
        shape = SHAPES[i % 5]
        offset = (0.0, 0.5, 1.2)[i % 3]
        slope = (0.05, 0.3, 1.0, 2.5)[i % 4]
        out.append(Spec(
            name=f"{i:02d}-{shape}", shape=shape, n=(30, 50, 75, 100)[(i // 2) % 4],
            offset=offset, amplitude=0.0 if shape == "flat" else (0.05, 0.2, 0.5)[(i // 3) % 3],
            smooth=(0.05, 0.15, 0.4)[(i // 5) % 3], slope=slope, skew=(0.0, 0.0, 0.5)[i % 3],
            noise=(0.0, 0.01, 0.03)[(i // 4) % 3], row_noise=(0.0, 0.02, 0.05)[(i // 6) % 3],
            floor=offset - 0.5 if i % 7 == 3 else None,
            theta_factor=(1.0, 1.0, 0.2, 1.0, 5.0)[(i // 2) % 5], seed=i))  # fmt: skip
    return out


def matrix(spec: Spec) -> np.ndarray:
    """The spec's N x N transfer matrix (rows: sources, columns: targets)."""
    rng = np.random.default_rng(spec.seed)
    x = np.linspace(0.0, 1.0, spec.n)
    if spec.shape == "gp":  # a draw from an RBF GP of length scale ``smooth``
        cov = np.exp(-0.5 * ((x[:, None] - x[None, :]) / spec.smooth) ** 2)
        shape = np.linalg.cholesky(cov + 1e-8 * np.eye(spec.n)) @ rng.standard_normal(spec.n)
        shape = shape / max(np.abs(shape).max(), 1e-12)
    elif spec.shape == "sines":
        f = rng.uniform(0.2, 1.0, 3) / spec.smooth
        shape = sum(np.sin(2 * np.pi * fi * x + rng.uniform(0, 2 * np.pi)) for fi in f) / 3
    elif spec.shape == "peak":
        shape = np.exp(-0.5 * ((x - rng.uniform(0.1, 0.9)) / spec.smooth) ** 2)
    elif spec.shape == "ramp":
        shape = 1 / (1 + np.exp(-(x - rng.uniform(0.2, 0.8)) / (spec.smooth / 4)))
    else:
        shape = np.zeros(spec.n)
    p = spec.offset + spec.amplitude * shape + spec.row_noise * rng.standard_normal(spec.n)
    d = x[None, :] - x[:, None]  # target - source
    gap = spec.slope * np.abs(d) * (1 + spec.skew * np.sign(d))
    m = p[:, None] - gap + spec.noise * rng.standard_normal((spec.n, spec.n))
    return m if spec.floor is None else np.maximum(m, spec.floor)


def theta(spec: Spec) -> float:
    """The theta MBTL is given: the true slope per grid step times ``theta_factor``."""
    return spec.theta_factor * spec.slope / (spec.n - 1)


def run(spec: Spec, gps: list[str], seed: int = 0) -> dict:
    m = matrix(spec)
    n, budget = spec.n, spec.n // 2
    scores, picks = {}, {}
    for gp in gps:
        order = mbtl.mbtl_order(m.__getitem__, n, budget, theta=theta(spec), seed=seed, gp=gp)
        scores[f"mbtl:{gp}"] = float(mbtl.curve(m, order).mean())
        picks[gp] = order[:5]
    rand = mbtl.random_orders(n, budget, seed=seed)
    scores["random"] = float(np.mean([mbtl.curve(m, o).mean() for o in rand]))
    scores["pseudogreedy"] = float(mbtl.curve(m, mbtl.pseudogreedy_order(n, budget)).mean())
    scores["equidistant"] = float(np.mean([mbtl.curve(m, mbtl.equidistant_set(n, k))[-1]
                                           for k in range(1, budget + 1)]))  # fmt: skip
    scores["sequential-oracle"] = float(
        mbtl.curve(m, mbtl.sequential_oracle_order(m, budget)).mean()
    )
    return {"spec": asdict(spec), "theta": theta(spec), "budget": budget,
            "average_over_k": scores, "mbtl_first_picks": picks}  # fmt: skip


def bootstrap_mean_ci(values: np.ndarray, seed: int = 0) -> list[float]:
    """95 % percentile-bootstrap CI of the mean over matrices."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), (BOOTSTRAP, len(values)))
    return np.percentile(values[idx].mean(axis=1), [2.5, 97.5]).tolist()


def summarise(rows: list[dict]) -> dict:
    methods = list(rows[0]["average_over_k"])
    vals = {k: np.array([r["average_over_k"][k] for r in rows]) for k in methods}
    out = {}
    for k in methods:
        diff = vals[k] - vals["random"]
        out[k] = {"mean": float(vals[k].mean()), "ci": bootstrap_mean_ci(vals[k]),
                  "minus_random": float(diff.mean()), "minus_random_ci": bootstrap_mean_ci(diff),
                  "matrices_below_random": int((diff < -1e-9).sum())}  # fmt: skip
    # how far MBTL's second pick lands from its first, in units of the range
    for gp in rows[0]["mbtl_first_picks"]:
        d = [abs(r["mbtl_first_picks"][gp][1] - r["mbtl_first_picks"][gp][0])
             / (r["spec"]["n"] - 1) for r in rows]  # fmt: skip
        out[f"mbtl:{gp}"]["second_pick_distance"] = float(np.mean(d))
    return out


def table(rows: list[dict], summary: dict, command: str) -> str:
    methods = list(summary)
    lines = [f"# MBTL on {len(rows)} synthetic transfer matrices (`{command}`)", "",
             "Average over k = 1..N//2 of the generalized performance; `mbtl:<gp>` is MBTL with "
             "that GP variant (`agents/mbtl.py:GPS`; `reference` = the released code's GP). "
             "Generators: `experiments/mbtl_synthetic.py`.", "",
             "| | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods),
             "| mean over matrices [95 % CI] | " + " | ".join(
                 f"{s['mean']:.4f} [{s['ci'][0]:.4f}, {s['ci'][1]:.4f}]"
                 for s in summary.values()) + " |",
             "| minus random [95 % CI] | " + " | ".join(
                 f"{s['minus_random']:+.4f} [{s['minus_random_ci'][0]:+.4f}, "
                 f"{s['minus_random_ci'][1]:+.4f}]" for s in summary.values()) + " |",
             "| matrices below random | " + " | ".join(
                 str(s["matrices_below_random"]) for s in summary.values()) + " |",
             "| 2nd pick's distance from the 1st (range units) | " + " | ".join(
                 f"{s['second_pick_distance']:.2f}" if "second_pick_distance" in s else ""
                 for s in summary.values()) + " |",
             "", "Per matrix (N, offset, gap slope g, noise, theta factor):", "",
             "| matrix | N | offset | g | noise | theta x | " + " | ".join(methods) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(methods)]  # fmt: skip
    for r in rows:
        s = r["spec"]
        lines.append(f"| {s['name']} | {s['n']} | {s['offset']:g} | {s['slope']:g} | "
                     f"{s['noise']:g} | {s['theta_factor']:g} | " + " | ".join(
                         f"{r['average_over_k'][k]:.4f}" for k in methods) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from mtrl_bench.results import atomic_write_json, atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 matrices instead of 30")
    parser.add_argument("--gps", nargs="+", default=list(mbtl.GPS), choices=list(mbtl.GPS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = []
    for spec in specs(6 if args.quick else 30):
        rows.append(run(spec, args.gps))
        print(spec.name, {k: round(v, 4) for k, v in rows[-1]["average_over_k"].items()},
              flush=True)  # fmt: skip
    summary = summarise(rows)
    command = (
        "python -m experiments.mbtl_synthetic"
        + (" --quick" if args.quick else "")
        + ("" if args.gps == list(mbtl.GPS) else " --gps " + " ".join(args.gps))
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "synthetic.json", {"schema": 1, "kind": "mbtl_synthetic",
                                                    "command": command, "summary": summary,
                                                    "matrices": rows})  # fmt: skip
    atomic_write_text(args.out / "table.md", table(rows, summary, command))
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
