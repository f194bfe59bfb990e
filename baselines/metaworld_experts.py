"""Meta-World's scripted experts (``metaworld.policies``) as one policy: the upper reference point.

Each sub-env runs the expert of its task, looked up by task id in upstream's own map
(``metaworld.policies.ENV_POLICY_MAP``, e.g. ``reach-v3 -> SawyerReachV3Policy``). The experts
are deterministic functions of the observation and read the goal from its last three entries,
so they work on the MT suites (goal visible) and are refused on the ML suites (goal hidden).
"Training" writes nothing. Upstream's own tests accept an expert at >= 80 % success on its task;
``python -m mtrl_bench.baselines.metaworld_experts --suite metaworld/mt50-v1 --episodes 50``
prints the per-task success table through our suites, wrappers and ``evaluate``.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtrl_bench.errors import UsageError
from mtrl_bench.types import AgentSpec, Suite


@dataclass(frozen=True)
class Config:
    """The experts have no hyperparameters."""


class ExpertPolicy:
    def __init__(self, suite: Suite) -> None:
        if not suite.id.startswith("metaworld/"):
            raise UsageError(f"metaworld-expert runs on metaworld/* suites only, got {suite.id}")
        if not suite.options.get("goal_observable"):
            raise UsageError(
                f"metaworld-expert needs the goal in the observation; {suite.id} hides it "
                "(ML suites); use an MT suite (metaworld/mt10-v1, metaworld/mt1-*-v1 ...)"
            )
        from metaworld.policies import ENV_POLICY_MAP

        self.experts = {t.index: ENV_POLICY_MAP[t.name]() for t in suite.tasks}

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        with warnings.catch_warnings():  # upstream's move() warns whenever its gain saturates
            warnings.simplefilter("ignore", UserWarning)
            actions = [
                self.experts[int(t)].get_action(o) for o, t in zip(obs, task_ids, strict=True)
            ]
        # in the action space, as the Policy contract asks (the env clips the same way)
        return np.clip(np.stack(actions), -1.0, 1.0).astype(np.float32)

    def reset(self, mask: np.ndarray) -> None:
        pass  # the experts keep no per-episode state


def train(config: Config, suite: Suite, seed: int, run_dir: Path, steps: int, progress: bool):
    return ExpertPolicy(suite)


def load(run_dir: Path, suite: Suite) -> ExpertPolicy:
    return ExpertPolicy(suite)


SPEC = AgentSpec(
    id="metaworld-expert", config_cls=Config, presets={"default": Config()}, train=train,
    load=load, description="Meta-World's scripted expert of each task (MT suites only)",
)  # fmt: skip


def main() -> None:
    from mtrl_bench.evaluation import evaluate
    from mtrl_bench.registry import get_suite

    parser = argparse.ArgumentParser(description="Per-task success of Meta-World's experts.")
    parser.add_argument("--suite", default="metaworld/mt10-v1")
    parser.add_argument("--split", default="train")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task")
    parser.add_argument("--envs-per-task", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    suite = get_suite(args.suite)
    result = evaluate(ExpertPolicy(suite), suite, args.split, args.episodes, args.seed,
                      envs_per_task=args.envs_per_task, progress=True)  # fmt: skip
    print(f"| task | success ({args.episodes} episodes) | mean return |\n|---|---:|---:|")
    for t in result.tasks:
        print(f"| {t.task} | {100 * t.success:.0f} % | {t.mean_return:.0f} |")
    print(f"| **mean** | **{100 * result.success:.1f} %** | |")


if __name__ == "__main__":
    main()
