"""``mtrl verify``: re-evaluate a bundle's submitted checkpoints under its leaderboard's protocol.

Steps, each a one-line refusal when it fails:

1. Every checkpoint file named in the bundle exists under ``DIR/<seed>/ckpt/`` with exactly the
   bundle's SHA-256 (a swapped or tampered file is caught here), and no file there is unlisted.
2. Only safe formats are read: ``.npz`` (``allow_pickle=False``), ``.json`` and
   ``.safetensors``; a checkpoint in any other format (a pickle, a torch zip) is refused.
3. Each seed's ``config.json`` names the bundle's suite and has the config hash the bundle's
   provenance records; the agent's ``load`` rebuilds the policy from it.
4. Every protocol that needs no adaptation (``mt``, ``zero_shot``) is evaluated again with the
   definition's episodes and the run's seed; ``few_shot`` is not re-run (it trains).

The entry is verified when, for every re-evaluated protocol, the mean normalised score differs
from the bundle's by at most ``tolerance`` (default 0.02). Evaluation is seeded, so on the same
software stack the scores are equal; the tolerance absorbs float differences across machines
that flip a sampled action. The result is written next to the bundle as
``<name>.verify.json`` with the bundle's digest, so editing the bundle afterwards un-verifies it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from mtrl_bench import bundle as bundles
from mtrl_bench.errors import UsageError
from mtrl_bench.results import atomic_write_text, config_hash

SAFE_SUFFIXES = (".npz", ".json", ".safetensors")
TOLERANCE = 0.02


def _check_files(b: dict[str, Any], ckpt_root: Path) -> None:
    if not b["checkpoints"]:
        raise UsageError("the bundle lists no checkpoints, so there is nothing to verify")
    for name, digest in sorted(b["checkpoints"].items()):
        seed, _, rel = name.partition("/")
        path = ckpt_root / seed / "ckpt" / rel
        if not path.is_file():
            raise UsageError(f"checkpoint {name} is missing under {ckpt_root}")
        if not path.name.endswith(SAFE_SUFFIXES):
            raise UsageError(f"checkpoint {name} is not in a safe format; allowed: "
                             f"{', '.join(SAFE_SUFFIXES)}")  # fmt: skip
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise UsageError(f"checkpoint {name} does not have the bundle's SHA-256 "
                             "(swapped or modified)")  # fmt: skip
    for seed in b["seeds"]:
        for path in sorted((ckpt_root / str(seed) / "ckpt").rglob("*")):
            rel = f"{seed}/{path.relative_to(ckpt_root / str(seed) / 'ckpt').as_posix()}"
            if path.is_file() and rel not in b["checkpoints"]:
                raise UsageError(f"checkpoint file {rel} is not listed in the bundle")


def verify(bundle_path: Path, ckpt_root: Path, *, tolerance: float = TOLERANCE,
           progress: bool = False) -> dict[str, Any]:  # fmt: skip
    """Re-evaluate and write the ``.verify.json`` sidecar; returns its content."""
    from mtrl_bench.evaluation import get_protocol
    from mtrl_bench.registry import get_agent, get_suite

    if not 0 <= tolerance < 1:
        raise UsageError(f"tolerance must be in [0, 1), got {tolerance}")
    b, lb = bundles.load(bundle_path)
    ckpt_root = Path(ckpt_root)
    if not ckpt_root.is_dir():
        raise UsageError(f"--checkpoints {ckpt_root} is not a directory")
    _check_files(b, ckpt_root)
    protocols = sorted({r["protocol"] for r in b["results"]} - {"few_shot", "transfer"})
    reeval: dict[str, dict[tuple[int, int], float]] = {p: {} for p in protocols}
    for seed in b["seeds"]:
        run = ckpt_root / str(seed)
        try:
            config = json.loads((run / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {run / 'config.json'}: {exc}") from None
        want = b["provenance"].get(str(seed), {}).get("config_hash")
        if config.get("suite") != lb.suite or config_hash(config) != want:
            raise UsageError(f"{run / 'config.json'} is not the config the bundle records for "
                             f"seed {seed}")  # fmt: skip
        suite = get_suite(lb.suite)
        policy = get_agent(config["agent"]).load(run, suite)
        for name in protocols:
            result = get_protocol(name).run(policy, suite, lb.eval_episodes, seed,
                                            deterministic=lb.deterministic_eval,
                                            progress=progress)  # fmt: skip
            reeval[name].update({(seed, t.task_index): t.score for t in result.tasks})
    report: dict[str, Any] = {}
    for name in protocols:
        table = {(r["seed"], r["task_index"]): r["score"] for r in b["results"]
                 if r["protocol"] == name}  # fmt: skip
        if set(table) != set(reeval[name]):
            raise UsageError(f"{name}: the re-evaluation covers other (seed, task) pairs than the "
                             "bundle")  # fmt: skip
        stored = [table[k] for k in sorted(table)]
        again = [reeval[name][k] for k in sorted(table)]
        diff = float(abs(np.mean(again) - np.mean(stored)))
        report[name] = {"bundle_mean": float(np.mean(stored)), "reevaluated_mean":
                        float(np.mean(again)), "abs_diff": diff,
                        "max_task_abs_diff": float(np.max(np.abs(np.subtract(again, stored))))}
    passed = all(v["abs_diff"] <= tolerance for v in report.values())
    record = {"bundle_sha256": hashlib.sha256(Path(bundle_path).read_bytes()).hexdigest(),
              "leaderboard": lb.key, "tolerance": tolerance, "passed": passed,
              "protocols": report}  # fmt: skip
    side = Path(bundle_path).with_name(Path(bundle_path).stem + ".verify.json")
    atomic_write_text(side, json.dumps(record, sort_keys=True, indent=1) + "\n")
    return record
