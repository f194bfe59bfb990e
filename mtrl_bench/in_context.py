"""The ``in_context`` protocol (v1): in-context RL on held-out tasks (docs/protocols.md).

An in-context learner (AD, DPT, T2MIR) adapts to a held-out task inside its context, without
gradient updates. On every ``test`` task it plays ``episodes`` consecutive episodes (the suite's
``options["in_context_episodes"]``: 30, 100 for DarkRoom-AD, as T2MIR evaluates; otherwise the
caller's ``episodes_per_task``), in ``trials`` independent streams per task (sub-envs). The
result is the curve of return and success against the in-context episode index: each episode's
``per_episode["env_episode"]`` is its index in its stream; a task's ``mean_return`` / ``score``
average the whole curve (its area) and ``per_episode`` holds every point.

The harness owns the context, so every agent sees the same one. Per stream it keeps the most
recent steps: the finished episodes, **re-sorted by return (ascending) after each episode**, as
AD requires (its training histories improve along the sequence, so the context must too; T2MIR's
evaluation does the same; ties keep recency order), followed by the current episode's steps,
truncated on the left to the policy's ``context_steps``. The policy acts on a ``Context`` batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from mtrl_bench.errors import UsageError, require_positive
from mtrl_bench.evaluation import EvalResult, TaskResult, _seed_global_rngs
from mtrl_bench.types import EVAL_SEED_OFFSET, SEED_STRIDE, Suite

DEFAULT_TRIALS = 4


@dataclass(frozen=True)
class Context:
    """A batch of contexts, right-aligned: stream ``b``'s entries are the last ``length[b]``
    slots of each ``(B, L, ...)`` array (older slots are zeros)."""

    obs: np.ndarray  # (B, L, *obs)
    actions: np.ndarray  # (B, L) int or (B, L, A) float
    rewards: np.ndarray  # (B, L) float32
    next_obs: np.ndarray  # (B, L, *obs)
    timestep: np.ndarray  # (B, L) int32: the step's index within its episode
    length: np.ndarray  # (B,) int32
    query_obs: np.ndarray  # (B, *obs): the observation to act on now
    query_timestep: np.ndarray  # (B,) int32
    episode: np.ndarray  # (B,) int32: the current in-context episode index


@runtime_checkable
class InContextPolicy(Protocol):
    context_steps: int
    """Steps of context it reads (``L``)."""

    def act_in_context(self, context: Context, task_ids: np.ndarray, *,
                       deterministic: bool = False) -> np.ndarray: ...  # fmt: skip


class ContextBuffer:
    """The streams' contexts (module docstring). ``add`` appends one step of every stream;
    ``end_episode`` re-sorts a stream's finished episodes by return."""

    def __init__(self, num: int, steps: int, obs_shape: tuple, obs_dtype: Any,
                 action_shape: tuple, action_dtype: Any) -> None:  # fmt: skip
        self.num, self.steps = num, steps
        self._z = {
            "obs": ((steps, *obs_shape), obs_dtype), "next_obs": ((steps, *obs_shape), obs_dtype),
            "actions": ((steps, *action_shape), action_dtype), "rewards": ((steps,), np.float32),
            "timestep": ((steps,), np.int32),
        }  # fmt: skip
        self.arrays = {k: np.zeros((num, *s), d) for k, (s, d) in self._z.items()}
        self.length = np.zeros(num, np.int32)
        # per stream: finished episodes (return, arrays) kept while they can reach the window
        self.finished: list[list[tuple[float, dict[str, np.ndarray]]]] = [[] for _ in range(num)]
        self.current: list[dict[str, list]] = [{k: [] for k in self._z} for _ in range(num)]

    def add(self, step: dict[str, np.ndarray]) -> None:
        for k, arr in self.arrays.items():
            arr[:, :-1] = arr[:, 1:]  # shift left, newest at the end (right-aligned)
            arr[:, -1] = step[k]
        self.length = np.minimum(self.length + 1, self.steps)
        for i in range(self.num):
            for k in self._z:
                self.current[i][k].append(step[k][i])

    def end_episode(self, i: int) -> None:
        ep = {k: np.asarray(v, self._z[k][1]) for k, v in self.current[i].items()}
        self.current[i] = {k: [] for k in self._z}
        self.finished[i].append((float(ep["rewards"].sum()), ep))
        kept, total = [], 0
        for item in reversed(self.finished[i]):  # most recent first, while they fit
            if total >= self.steps:
                break
            kept.append(item)
            total += len(item[1]["rewards"])
        kept.reverse()
        self.finished[i] = kept
        # stable sort: equal returns keep their recency order
        ordered = sorted(kept, key=lambda item: item[0])
        for k, arr in self.arrays.items():
            seq = np.concatenate([ep[k] for _, ep in ordered])[-self.steps :]
            arr[i] = 0
            arr[i, self.steps - len(seq) :] = seq
        self.length[i] = min(total, self.steps)

    def context(self, query_obs: np.ndarray, query_timestep: np.ndarray,
                episode: np.ndarray) -> Context:  # fmt: skip
        a = {k: v.copy() for k, v in self.arrays.items()}
        return Context(**a, length=self.length.copy(), query_obs=query_obs,
                       query_timestep=query_timestep.astype(np.int32),
                       episode=episode.astype(np.int32))  # fmt: skip


def evaluate_in_context(policy: InContextPolicy, suite: Suite, episodes_per_task: int, seed: int,
                        *, trials: int = DEFAULT_TRIALS, deterministic: bool = False,
                        progress: bool = False, split: str = "test",
                        envs_per_task: int | None = None) -> EvalResult:  # fmt: skip
    """``in_context`` v1 (module docstring) on ``split`` (``test``; ``train`` only for checkpoint
    selection, which must never look at held-out tasks)."""
    if not isinstance(policy, InContextPolicy):
        raise UsageError(f"{type(policy).__name__} is not an in-context policy "
                         "(it needs context_steps and act_in_context)")  # fmt: skip
    episodes = int(suite.options.get("in_context_episodes", episodes_per_task))
    trials = envs_per_task or trials  # the runner's keyword for sub-envs per task
    require_positive("episodes", episodes)
    require_positive("trials", trials)
    require_positive("context_steps", policy.context_steps)
    tasks = suite.split_tasks(split)
    from mtrl_bench.make import make_env  # lazily: importing this module loads no gymnasium

    env = make_env(suite, split, envs_per_task=trials, seed=EVAL_SEED_OFFSET + seed)
    n, space = env.num_envs, env.single_action_space
    obs_space = env.single_observation_space
    buf = ContextBuffer(n, policy.context_steps, obs_space.shape, obs_space.dtype,
                        space.shape, space.dtype)  # fmt: skip
    returns = np.zeros((n, episodes))
    success = np.zeros((n, episodes), bool)
    lengths = np.zeros((n, episodes), int)
    episode = np.zeros(n, int)
    t = np.zeros(n, np.int32)
    ep_return, ep_success = np.zeros(n), np.zeros(n, bool)

    _seed_global_rngs(seed)
    obs, _ = env.reset()
    bar = tqdm(total=n * episodes, desc=f"in-context {suite.id}", disable=not progress)
    while (episode < episodes).any():
        ctx = buf.context(obs, t, np.minimum(episode, episodes - 1))
        actions = np.asarray(policy.act_in_context(ctx, env.task_ids, deterministic=deterministic))
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        final = next_obs.copy()
        for i in np.flatnonzero(done):
            final[i] = info["final_obs"][i]
        buf.add({"obs": obs, "actions": actions, "rewards": rewards.astype(np.float32),
                 "next_obs": final, "timestep": t})  # fmt: skip
        ep_return += rewards
        ep_success |= info["success"]
        t += 1
        for i in np.flatnonzero(done):
            if episode[i] < episodes:
                k = episode[i]
                returns[i, k], success[i, k], lengths[i, k] = ep_return[i], ep_success[i], t[i]
                bar.update(1)
            episode[i] += 1
            buf.end_episode(i)
        ep_return[done], ep_success[done], t[done] = 0.0, False, 0
        obs = next_obs
    bar.close()
    env.close()

    results = []
    base = (EVAL_SEED_OFFSET + seed) * SEED_STRIDE  # sub-env i was reset with base + i
    for j, task in enumerate(tasks):
        block = range(j * trials, (j + 1) * trials)
        rets, succ = returns[block].ravel(), success[block].ravel()
        mean_return = float(rets.mean())
        score = (float(succ.mean()) if suite.options.get("score") == "success"
                 else task.normalize(mean_return))  # fmt: skip
        per_episode = {
            "return": tuple(map(float, rets)), "success": tuple(map(float, succ)),
            "length": tuple(float(x) for x in lengths[block].ravel()),
            "env_seed": tuple(float(base + i) for i in block for _ in range(episodes)),
            "env_episode": tuple(float(k) for _ in block for k in range(episodes)),
        }  # fmt: skip
        results.append(TaskResult(task.name, task.index, trials * episodes, float(succ.mean()),
                                  mean_return, score, per_episode))  # fmt: skip
    return EvalResult(suite.id, split, tuple(results))


def curve(result: EvalResult, key: str = "return") -> np.ndarray:
    """The in-context curve ``(tasks, episodes)``: ``key`` (return or success) averaged over
    each task's trials, per in-context episode index."""
    rows = []
    for t in result.tasks:
        idx = np.asarray(t.per_episode["env_episode"], int)
        vals = np.asarray(t.per_episode[key], float)
        rows.append(np.bincount(idx, vals) / np.bincount(idx))
    return np.stack(rows)
