"""Evaluation and protocols (docs/design.md, "Evaluation and results"; docs/protocols.md).

``evaluate`` builds a fresh vector env whose seeds are disjoint from training seeds (base seed
``EVAL_SEED_OFFSET + seed``), and counts exactly ``episodes_per_task`` episodes per task. Each
sub-env gets a fixed quota of episodes decided up front, so short episodes are not
over-represented. On a split with a fixed goal set (``Suite.options["goals_per_task"][split]``:
Meta-World's 50 training and 40 held-out goals) every episode plays a different goal: one
sub-env per task walks its seeded goal permutation, and a task plays
``min(episodes_per_task, goals)`` episodes (so ``zero_shot`` on Meta-World is 40 episodes, one
per held-out goal, and ``mt`` is 50, one per training goal). Runs made before this rule (commit
history of this file) split a task's episodes over 4 sub-envs with independent permutations,
so some goals repeated and others were skipped. An episode succeeds when ``info["success"]``
was seen at any step (the Meta-World rule). A task's normalised ``score`` is its normalised mean
return, or its success rate when the suite's ``options["score"] == "success"`` (Meta-World is
judged by success rate).
Stochastic policies that draw from numpy's or torch's global RNG are reproducible because
``evaluate`` seeds both before the first step.

Protocols are small named functions; their name and version go into every record:

- ``mt`` (v1): evaluate on the ``train`` split;
- ``zero_shot`` (v1): evaluate on the held-out ``test`` split, without any adaptation;
- ``few_shot`` (v1): the agent first adapts on the ``test`` tasks within a fixed budget of env
  steps (``RunConfig.few_shot_steps``, recorded), with its own ``AgentSpec.adapt``, then is
  evaluated there. The runner does the adaptation; agents without ``adapt`` are refused.
- ``meta_test`` (v1): Meta-World's ML10 / ML45 protocol for held-out tasks: for every ``test``
  task and each of its held-out goals (``Suite.options["goals_per_task"]["test"]``, 40), the
  trained policy adapts on that task pinned to that goal (``pin_goal``) within
  ``RunConfig.few_shot_steps`` env steps, then plays ``META_TEST_EPISODES`` = 3 evaluation
  episodes there; a task's result averages its goals. ``RunConfig.meta_test_goals`` /
  ``meta_test_tasks`` take the first N goals / test tasks for a cheaper, recorded evaluation.
- ``in_context`` (v1): in-context RL on the ``test`` tasks: consecutive episodes with a context
  the harness keeps (re-sorted by return), scored as a curve over the episode index
  (``mtrl_bench/in_context.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from tqdm.auto import tqdm

from mtrl_bench.errors import UsageError, require_positive
from mtrl_bench.types import EVAL_SEED_OFFSET, SEED_STRIDE, Policy, Suite


@dataclass(frozen=True)
class TaskResult:
    task: str
    task_index: int
    episodes: int
    success: float
    mean_return: float
    score: float
    per_episode: dict[str, tuple[float, ...]] | None = None
    """``return``, ``length``, ``success`` and the ``env_seed`` / ``env_episode`` that identify
    each episode (its sub-env's reset seed, and its ordinal in that sub-env); the aggregates
    above are computed from these."""


@dataclass(frozen=True)
class EvalResult:
    suite: str
    split: str
    tasks: tuple[TaskResult, ...]

    @property
    def score(self) -> float:
        return float(np.mean([t.score for t in self.tasks]))

    @property
    def success(self) -> float:
        return float(np.mean([t.success for t in self.tasks]))


def _seed_global_rngs(seed: int) -> None:
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def evaluate(
    policy: Policy,
    suite: Suite,
    split: str,
    episodes_per_task: int,
    seed: int,
    *,
    envs_per_task: int = 4,
    deterministic: bool = False,
    progress: bool = False,
) -> EvalResult:
    require_positive("episodes_per_task", episodes_per_task)
    require_positive("envs_per_task", envs_per_task)
    tasks = suite.split_tasks(split)
    if goals := dict(suite.options.get("goals_per_task", {})).get(split):
        # A fixed goal set (Meta-World): one sub-env per task walks its seeded permutation of
        # the goals, so the episodes play distinct goals (each goal once), never a repeat.
        episodes_per_task, envs_per_task = min(episodes_per_task, goals), 1
    envs_per_task = min(envs_per_task, episodes_per_task)
    from mtrl_bench.make import make_env  # here: `mtrl list` imports this module, not gymnasium

    env = make_env(suite, split, envs_per_task=envs_per_task, seed=EVAL_SEED_OFFSET + seed)
    n = env.num_envs
    # Quota of env j within its task: episodes split as evenly as possible, decided up front.
    quota = np.tile(
        [episodes_per_task // envs_per_task + (j < episodes_per_task % envs_per_task)
         for j in range(envs_per_task)], len(tasks),
    )  # fmt: skip
    finished = np.zeros(n, int)
    returns: list[list[float]] = [[] for _ in range(n)]
    successes: list[list[bool]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    ep_return, ep_success, ep_length = np.zeros(n), np.zeros(n, bool), np.zeros(n, int)

    _seed_global_rngs(seed)
    obs, _ = env.reset()
    policy.reset(np.ones(n, bool))
    bar = tqdm(total=int(quota.sum()), desc=f"eval {suite.id} {split}", disable=not progress)
    while (finished < quota).any():
        actions = policy.act(obs, env.task_ids, deterministic=deterministic)
        obs, rewards, terminated, truncated, info = env.step(actions)
        ep_return += rewards
        ep_success |= info["success"]
        ep_length += 1
        done = terminated | truncated
        for i in np.flatnonzero(done & (finished < quota)):
            returns[i].append(float(ep_return[i]))
            successes[i].append(bool(ep_success[i]))
            lengths[i].append(int(ep_length[i]))
            finished[i] += 1
            bar.update(1)
        ep_return[done], ep_success[done], ep_length[done] = 0.0, False, 0
        if done.any():
            policy.reset(done)
    bar.close()
    env.close()

    results = []
    for k, task in enumerate(tasks):
        block = range(k * envs_per_task, (k + 1) * envs_per_task)
        rets = np.concatenate([returns[i] for i in block])
        succ = np.concatenate([successes[i] for i in block])
        assert len(rets) == episodes_per_task
        mean_return, success = float(rets.mean()), float(succ.mean())
        score = success if suite.options.get("score") == "success" else task.normalize(mean_return)
        base = (EVAL_SEED_OFFSET + seed) * SEED_STRIDE  # sub-env i was reset with base + i
        per_episode = {
            "return": tuple(float(x) for x in rets), "success": tuple(float(x) for x in succ),
            "length": tuple(float(x) for i in block for x in lengths[i]),
            "env_seed": tuple(float(base + i) for i in block for _ in returns[i]),
            "env_episode": tuple(float(k) for i in block for k in range(len(returns[i]))),
        }  # fmt: skip
        results.append(TaskResult(task.name, task.index, episodes_per_task, success, mean_return,
                                  score, per_episode))  # fmt: skip
    return EvalResult(suite.id, split, tuple(results))


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    split: str
    run: Callable[..., EvalResult]
    adapts: bool = False
    """The runner adapts the policy on ``split`` (``AgentSpec.adapt``) before ``run``."""
    per_goal: bool = False
    """Adapt and evaluate once per (held-out task, goal) (``meta_test``)."""


def mt(policy: Policy, suite: Suite, episodes_per_task: int, seed: int, **kw) -> EvalResult:
    """Multi-task performance on the training tasks."""
    return evaluate(policy, suite, "train", episodes_per_task, seed, **kw)


def zero_shot(policy: Policy, suite: Suite, episodes_per_task: int, seed: int, **kw) -> EvalResult:
    """Held-out tasks, no adaptation: the policy sees the held-out task ids it never trained on."""
    return evaluate(policy, suite, "test", episodes_per_task, seed, **kw)


def in_context(policy: Policy, suite: Suite, episodes_per_task: int, seed: int,
               **kw) -> EvalResult:  # fmt: skip
    """In-context adaptation on held-out tasks (``mtrl_bench.in_context``)."""
    from mtrl_bench.in_context import evaluate_in_context

    return evaluate_in_context(policy, suite, episodes_per_task, seed, **kw)  # type: ignore[arg-type]


PROTOCOLS: dict[str, Protocol] = {
    "mt": Protocol("mt", 1, "train", mt),
    "zero_shot": Protocol("zero_shot", 1, "test", zero_shot),
    "few_shot": Protocol("few_shot", 1, "test", zero_shot, adapts=True),
    "meta_test": Protocol("meta_test", 1, "test", zero_shot, adapts=True, per_goal=True),
    "in_context": Protocol("in_context", 1, "test", in_context),
}
META_TEST_EPISODES = 3
"""Evaluation episodes per goal after adaptation (Meta-World's ML protocol)."""


def pin_goal(suite: Suite, task_index: int, goal: int) -> Suite:
    """``suite`` with task ``task_index`` pinned to one goal (task kwarg ``goal_index``) and a
    ``test`` split of that task alone."""
    tasks = list(suite.tasks)
    task = tasks[task_index]
    tasks[task_index] = replace(task, kwargs=(*task.kwargs, ("goal_index", goal)))
    return replace(suite, tasks=tuple(tasks), splits={**suite.splits, "test": (task_index,)})


def goal_average(suite: Suite, per_goal: list[TaskResult]) -> TaskResult:
    """One task's ``meta_test`` result: the mean over its goals."""
    task = suite.tasks[per_goal[0].task_index]
    success = float(np.mean([r.success for r in per_goal]))
    mean_return = float(np.mean([r.mean_return for r in per_goal]))
    score = success if suite.options.get("score") == "success" else task.normalize(mean_return)
    episodes = sum(r.episodes for r in per_goal)
    return TaskResult(task.name, task.index, episodes, success, mean_return, score)


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UsageError(f"unknown protocol {name!r}; allowed: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
