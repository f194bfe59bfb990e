"""Transfer matrices and MBTL on the JAX traffic suites (issue 6).

    python -m experiments.transfer_traffic            # compute / resume everything, then report
    python -m experiments.transfer_traffic signal-length   # one domain (names: DOMAINS)
    python -m experiments.transfer_traffic --report   # MBTL reports from the finished files

Signal control (inflow, lane length, speed limit) and eco-driving (green phase, CAV penetration
rate), 50 contexts each (MBTL's grids), on the JAX backends (cell-transmission model, IDM), SB3's
PPO defaults (``agents/transfer_ppo.py``, preset ``sb3``; MBTL trained DQN on signal control and PPO
on eco-driving), 3 seeds; every source trained with the budget below (agent decisions) and evaluated
zero-shot on all 50 targets (2 greedy episodes each). The multi-task baselines (``ppo``: no context
in the observation, ``ppo-context``: with it) get the total budget of independent training (50 x the
per-source budget). Files go to ``results/transfer/<suite>/<agent>/seed<k>/transfer.json``; the MBTL
reports (tables, curves, multipliers; K = 50, MBTL's slopes theta 0.001 / 0.005) to
``results/transfer/mbtl-<name>/``. Every step resumes where it stopped. A matrix and its multi-task
rows can take longer than a session leaves free, so finished chunks
(``partial/chunk<i>.npz``, a few kB each, with the run's ``config.json``) are committed as they
come and the next session resumes from them; the chunks are keyed by source, so a matrix built
across sessions equals one built in one go.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# one XLA thread: shares the 2 cores with the other work on this machine
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")  # fmt: skip

from mtrl_bench.agents import mbtl_report  # noqa: E402
from mtrl_bench.transfer import TransferConfig, multitask_row, transfer_matrix  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "results" / "transfer"
TIMEOUT_S = 600  # a chunk takes 2-5 min here; jaxlib sometimes hangs on one (transfer.py)
# name -> (suite, decisions per source, MBTL's slope theta); theta is MBTL's per family (signal
# control 0.001, eco-driving 0.005), the same for every context of a family
DOMAINS = {"signal-inflow": ("traffic-jax/signal-inflow-v1", 20_480, 0.001),
           "eco-green": ("traffic-jax/eco-green-v1", 20_480, 0.005),
           "signal-length": ("traffic-jax/signal-length-v1", 20_480, 0.001),
           "signal-speed": ("traffic-jax/signal-speed-v1", 20_480, 0.001),
           "eco-penrate": ("traffic-jax/eco-penrate-v1", 20_480, 0.005)}  # fmt: skip


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in DOMAINS and a != "--report"]
    if unknown:
        print(f"transfer_traffic: unknown argument {unknown[0]!r}; expected domain names "
              f"({', '.join(DOMAINS)}) or --report", file=sys.stderr)  # fmt: skip
        return 2
    only = [a for a in argv if a in DOMAINS]
    for name, (suite, steps, theta) in DOMAINS.items():
        if only and name not in only:
            continue
        cfg = TransferConfig(suite, "ppo", "sb3", steps, episodes=2, chunk=5)
        if "--report" not in argv:
            transfer_matrix(cfg, OUT, timeout_s=TIMEOUT_S)
            for agent in ("ppo", "ppo-context"):
                multitask_row(TransferConfig(suite, agent, "sb3", 50 * steps, episodes=2), OUT,
                              timeout_s=2 * TIMEOUT_S)  # fmt: skip
        run = OUT / suite.replace("/", "__")
        matrices = sorted((run / "ppo").glob("seed*/transfer.json"))
        rows = sorted(run.glob("ppo*-multitask/seed*/transfer.json"))
        if matrices:
            mbtl_report.main(["--matrices", *map(str, matrices), "--multitask",
                              *map(str, rows), "--theta", str(theta),
                              "--out", str(OUT / f"mbtl-{name}")])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
