"""XLA CPU flags against the MiniGrid PPO update (issue 17: "consider ... XLA flags").

    python benchmarks/xla_flags.py --out benchmarks/results/xla_flags.json

Times the jitted update step alone of ``moore`` and ``mtppo`` on MiniGrid MT3 (MOORE's settings,
``train_throughput.update_seconds``: best of 3 after compiling) once per flag setting, each in its
own process (XLA reads ``XLA_FLAGS`` once per process), both cores with XLA's default threading.
The default setting runs first and last, so the spread of the two shows the noise. Settings: the
flags this jaxlib's CPU backend offers that could speed up dots and elementwise passes without
changing the algorithm -- 512-bit vectors (this CPU has AVX-512), YNNPACK fusion of elementwise
and reduction ops as well as dots, XNNPACK graph fusion, oneDNN. Fast-math flags are left out:
they change results. The JSON rows carry the load average; a Markdown table goes beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
YNN = ",".join(f"LIBRARY_FUSION_TYPE_{t}" for t in ("INDIVIDUAL_DOT", "DOT", "ELTWISE", "REDUCE"))
SETTINGS = {
    "default": "",
    "vector width 512": "--xla_cpu_prefer_vector_width=512",
    "YNNPACK dot + eltwise + reduce fusion": f"--xla_cpu_experimental_ynn_fusion_type={YNN}",
    "XNNPACK greedy graph fusion": "--xla_cpu_experimental_xnn_graph_fusion_mode="
    "XNN_GRAPH_FUSION_MODE_GREEDY",
    "oneDNN": "--xla_cpu_use_onednn=true",
    "default (again)": "",
}


def _child() -> None:
    sys.path.insert(0, str(HERE))
    from train_throughput import update_seconds

    from mtrl_bench.agents import mtppo

    out = {n: update_seconds(mtppo.Config(network=n), repeats=3) for n in ("moore", "mtppo")}
    print(json.dumps(out))


def main() -> int:
    if "--child" in sys.argv:
        _child()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "out" / "xla_flags.json")
    args = parser.parse_args()
    rows = []
    for name, flags in SETTINGS.items():
        env = {**os.environ, "XLA_FLAGS": flags}
        proc = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        if proc.returncode != 0:
            print(f"xla_flags: {name!r} failed: {proc.stderr.strip().splitlines()[-1:]}",
                  file=sys.stderr)  # fmt: skip
            return 1
        sec = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"setting": name, "xla_flags": flags, "moore_update_s": round(sec["moore"], 3),
                     "mtppo_update_s": round(sec["mtppo"], 3), "load": os.getloadavg()[0],
                     "when": datetime.now(UTC).isoformat(timespec="seconds")})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    lines = ["| setting | `XLA_FLAGS` | moore update (s) | vs default | mtppo update (s) | "
             "vs default | load |", "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        m, t = r["moore_update_s"], r["mtppo_update_s"]
        flags, m0, t0 = r["xla_flags"] or "(none)", base["moore_update_s"], base["mtppo_update_s"]
        lines.append(f"| {r['setting']} | `{flags}` | {m:.2f} | {m0 / m:.2f}x "
                     f"| {t:.2f} | {t0 / t:.2f}x | {r['load']:.2f} |")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(
        f"Written by `python benchmarks/xla_flags.py` ({base['when']}); update step alone, best "
        "of 3, MiniGrid MT3, MOORE's settings; 'vs default' > 1 is faster.\n\n"
        + "\n".join(lines) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
