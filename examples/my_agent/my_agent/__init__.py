"""A linear softmax policy per task, trained with REINFORCE: an example mtrl_bench plug-in.

Policy: for task ``t``, ``pi(a | s) = softmax(W[t] @ [phi(s), 1])`` with ``phi`` the flattened
observation scaled to about [-1, 1] (images are divided by 10). Update: after every finished
episode, ``W[t] += lr * sum_k (G_k - b[t]) * grad log pi(a_k | s_k)``, with ``G_k`` the
discounted return-to-go and ``b[t]`` a running mean of task ``t``'s episode returns (REINFORCE
with a baseline, Williams 1992). Everything the harness needs is the ``AgentSpec`` at the
bottom: ``train`` and ``load`` functions, a config dataclass and its presets.

Checkpoints are one ``.npz`` (no pickle), so ``mtrl verify`` can re-evaluate them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mtrl_bench import make_env
from mtrl_bench.results import atomic_write_bytes, atomic_write_text
from mtrl_bench.types import AgentSpec, Suite


@dataclass(frozen=True)
class Config:
    lr: float = 0.05
    """Step size of the policy-gradient update."""
    gamma: float = 0.99
    """Discount of the return-to-go."""
    envs_per_task: int = 8
    """Parallel environments per training task."""
    baseline_decay: float = 0.9
    """Running-mean factor of the per-task return baseline."""


def _features(obs: np.ndarray) -> np.ndarray:
    x = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
    if np.issubdtype(np.asarray(obs).dtype, np.integer):
        x = x / 10.0  # MiniGrid's symbolic images hold small integers
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class LinearPolicy:
    def __init__(self, weights: np.ndarray, seed: int) -> None:
        self.weights = weights  # (num_tasks, features, actions)
        self.rng = np.random.default_rng(seed)

    def probs(self, obs: np.ndarray, task_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = _features(obs)
        return x, _softmax(np.einsum("nf,nfa->na", x, self.weights[task_ids]))

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        _, p = self.probs(obs, np.asarray(task_ids))
        if deterministic:
            return p.argmax(axis=1)
        return (p.cumsum(axis=1) > self.rng.random((len(p), 1))).argmax(axis=1)

    def reset(self, mask: np.ndarray) -> None:
        pass


def _save(path: Path, policy: LinearPolicy, steps: int) -> None:
    import io

    path.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, weights=policy.weights)
    atomic_write_bytes(path / "weights.npz", buf.getvalue())
    atomic_write_text(path / "state.json", json.dumps({"env_steps": steps}))


def load(run_dir: Path, suite: Suite) -> LinearPolicy:
    config = json.loads((Path(run_dir) / "config.json").read_text())
    with np.load(Path(run_dir) / "ckpt" / "weights.npz", allow_pickle=False) as data:
        return LinearPolicy(data["weights"], config["seed"])


def train(config: Config, suite: Suite, seed: int, run_dir: Any, steps: int,
          progress: bool) -> LinearPolicy:  # fmt: skip
    ckpt = run_dir.ckpt_dir
    if (ckpt / "state.json").exists() and json.loads((ckpt / "state.json").read_text())[
            "env_steps"] >= steps:  # fmt: skip
        return load(run_dir.path, suite)
    env = make_env(suite, "train", envs_per_task=config.envs_per_task, seed=seed)
    n_features = int(np.prod(env.single_observation_space.shape)) + 1
    n_actions = int(env.single_action_space.n)
    policy = LinearPolicy(np.zeros((suite.num_tasks, n_features, n_actions)), seed)
    baseline = np.zeros(suite.num_tasks)
    task_ids = np.asarray(env.task_ids)
    episodes: list[list[tuple[np.ndarray, int, np.ndarray, float]]] = [[] for _ in task_ids]
    obs, _ = env.reset(seed=seed)
    done_steps, returns = 0, []
    bar = tqdm(total=steps, desc=f"my-linear {suite.id}", disable=not progress)
    while done_steps < steps:
        x, p = policy.probs(obs, task_ids)
        actions = (p.cumsum(axis=1) > policy.rng.random((len(p), 1))).argmax(axis=1)
        obs, rewards, terminated, truncated, _ = env.step(actions)
        done_steps += len(actions)
        bar.update(len(actions))
        for i, t in enumerate(task_ids):
            episodes[i].append((x[i], int(actions[i]), p[i], float(rewards[i])))
            if not (terminated[i] or truncated[i]):
                continue
            g, grad = 0.0, np.zeros_like(policy.weights[t])
            for xk, ak, pk, rk in reversed(episodes[i]):
                g = rk + config.gamma * g
                score = -pk
                score[ak] += 1.0  # grad of log softmax w.r.t. the logits
                grad += (g - baseline[t]) * np.outer(xk, score)
            policy.weights[t] += config.lr * grad / len(episodes[i])
            baseline[t] = config.baseline_decay * baseline[t] + (1 - config.baseline_decay) * g
            returns.append(g)
            episodes[i] = []
        if returns and done_steps % (len(actions) * 100) < len(actions):
            run_dir.append_metrics({"env_steps": done_steps, "split": "train",
                                    "episode_return": float(np.mean(returns[-100:]))})
    bar.close()
    env.close()
    _save(ckpt, policy, done_steps)
    # A fresh sampling RNG, as ``load`` builds it: evaluating the returned policy and a policy
    # loaded from the checkpoint (``mtrl verify``) then gives identical episodes.
    return LinearPolicy(policy.weights, seed)


SPEC = AgentSpec(
    id="my-linear", config_cls=Config, presets={"default": Config(), "fast": Config(lr=0.2)},
    train=train, load=load,
    description="linear softmax policy per task, REINFORCE with a per-task baseline (numpy)",
    action_spaces=("discrete",),
)  # fmt: skip

__all__ = ["SPEC", "Config", "LinearPolicy"]
