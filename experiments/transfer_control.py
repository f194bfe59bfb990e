"""Transfer matrices and MBTL on the contextual control suites (issue 6).

    python -m experiments.transfer_control            # compute / resume everything, then report
    python -m experiments.transfer_control --report   # MBTL reports from the finished files

CartPole (cart mass) and Pendulum (dt), 100 contexts each (0.1x-10x the default), SB3's PPO
defaults (``agents/transfer_ppo.py``, preset ``sb3``), 3 seeds; every source trained with the
budget below and evaluated zero-shot on all 100 targets (4 greedy episodes each). MBTL used 5M
(CartPole) and 1M (Pendulum) steps per source; these budgets are what one CPU core does in
minutes. The multi-task baselines (``ppo``: no context in the observation, ``ppo-context``: with
it) get the same total budget as independent training (100 x the per-source budget). Files go
to ``results/transfer/<suite>/<agent>/seed<k>/transfer.json``; the MBTL reports (tables,
curves, multipliers) to ``results/transfer/mbtl-<name>/``. Every step resumes where it stopped.
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
# a chunk takes 2-5 min here; jaxlib sometimes hangs on it (mtrl_bench/transfer.py, _isolated)
TIMEOUT_S = 900
DOMAINS = {"cartpole-masscart": ("control-jax/cartpole-masscart-v1", 100_000),
           "pendulum-dt": ("control-jax/pendulum-dt-v1", 200_000)}  # fmt: skip


def main(argv: list[str]) -> int:
    for name, (suite, steps) in DOMAINS.items():
        cfg = TransferConfig(suite, "ppo", "sb3", steps)
        if "--report" not in argv:
            transfer_matrix(cfg, OUT, timeout_s=TIMEOUT_S)
            for agent in ("ppo", "ppo-context"):
                multitask_row(
                    TransferConfig(suite, agent, "sb3", 100 * steps), OUT, timeout_s=4 * TIMEOUT_S
                )
        run = OUT / suite.replace("/", "__")
        matrices = sorted((run / "ppo").glob("seed*/transfer.json"))
        rows = sorted(run.glob("ppo*-multitask/seed*/transfer.json"))
        if matrices:
            mbtl_report.main(["--matrices", *map(str, matrices), "--multitask",
                              *map(str, rows), "--out", str(OUT / f"mbtl-{name}")])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
