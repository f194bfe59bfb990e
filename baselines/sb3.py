"""Stable-Baselines3 PPO baselines: one shared model with a task one-hot, or one model per task.

PPO (Schulman et al., 2017) as implemented by SB3 2.x. Choices and deviations, with reasons:

- **Task identity.** SB3 cannot take ``task_ids``, so ``OneHotTaskVecEnv`` (and only it) adds a
  one-hot of size ``suite.num_tasks`` as ``obs["task"]``: held-out tasks get their own dims,
  untrained in the shared model. Suites never put task ids into observations (docs/design.md,
  "Core types").
- **float32 observations.** SB3 treats a 3-D uint8 ``Box(0, 255)`` as pixels (wraps the env in
  ``VecTransposeImage``, divides by 255). MiniGrid's grid holds small symbolic ints, so the
  adapter declares ``obs`` float32 with the same bounds (values unchanged); SB3 then neither
  transposes nor rescales (``normalize_images=False`` too). The CNN goes HWC -> CHW itself.
- **Features.** ``flatten``: flat obs ++ one-hot (SB3's ``CombinedExtractor`` would put a
  NatureCNN on any 3-D Box, too big for 7x7). ``minigrid_cnn``: MOORE's MiniGrid expert CNN
  (Conv 3->16->32->64, 2x2, ReLU after each, 1024-d) ++ one-hot. Actor and critic share it.
  CPU only: SB3 itself advises CPU for PPO with nets this small.
- **Episode statistics.** The adapter fills SB3's ``info["episode"]``; ``is_success`` is the
  step's ``info["success"]``, but on an episode's last step (the one SB3 reads) "success at any
  step" (the harness's rule). ``TimeLimit.truncated`` makes PPO bootstrap on truncation.
- **Budget.** SB3 stops only between rollouts: ``steps`` and ``checkpoint_every`` are rounded up
  to whole rollouts (``n_steps * num_envs``). Constant schedules: chunked ``learn`` = one call.
- **Checkpoints without pickle.** ``ckpt/model.pt`` (tensors and ints only: policy, Adam,
  ``num_timesteps``; ``torch.load(weights_only=True)``) is replaced atomically; ``state.json``
  repeats ``num_timesteps``. **Resume** restores just these, not the rollout buffer, env or RNG
  states, so a resumed run is not bit-identical to an uninterrupted one.
- **Independent.** One PPO per training task on that task's envs, ``steps`` split evenly, the
  (constant) one-hot kept so both agents share one code path. Having nothing to transfer, it
  acts uniformly at random on held-out task ids, also when ``deterministic=True``.
- ``SB3Policy`` is for feedforward models (``reset`` is a no-op; no recurrent state carried).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from mtrl_bench import make_env, make_single_env
from mtrl_bench.baselines.random_policy import RandomPolicy
from mtrl_bench.errors import UsageError
from mtrl_bench.results import RunDir, atomic_write_text
from mtrl_bench.types import AgentSpec, Suite
from mtrl_bench.vector import MultiTaskVectorEnv


class OneHotTaskVecEnv(VecEnv):
    """A ``MultiTaskVectorEnv`` as an SB3 ``VecEnv`` with ``{"obs", "task"}`` observations."""

    def __init__(self, venv: MultiTaskVectorEnv, num_tasks: int) -> None:
        single = venv.single_observation_space
        if isinstance(single, spaces.Box):
            single = spaces.Box(single.low.astype(np.float32), single.high.astype(np.float32))
        self.venv, self.task_ids, n, self._dtype = venv, venv.task_ids, venv.num_envs, single.dtype
        self._one_hot = np.eye(num_tasks, dtype=np.float32)[venv.task_ids]
        self._ep_return, self._ep_len = np.zeros(n), np.zeros(n)
        self._ep_success, self._actions, self._start = np.zeros(n, bool), None, time.time()
        task = spaces.Box(0.0, 1.0, (num_tasks,), np.float32)
        super().__init__(n, spaces.Dict({"obs": single, "task": task}), venv.single_action_space)

    def _obs(self, obs: Any, i: Any = slice(None)) -> dict[str, np.ndarray]:
        return {"obs": np.asarray(obs, self._dtype), "task": self._one_hot[i].copy()}

    def reset(self) -> dict[str, np.ndarray]:
        # SB3's seed(s) stores s + i for env i; MultiTaskVectorEnv wants the base s, one options.
        obs, _ = self.venv.reset(seed=self._seeds[0], options=self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self._ep_return[:], self._ep_len[:], self._ep_success[:] = 0, 0, False
        return self._obs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict]]:
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        self._ep_return, self._ep_len = self._ep_return + rewards, self._ep_len + 1
        self._ep_success |= info["success"]
        infos: list[dict[str, Any]] = [
            {"is_success": bool(s), "TimeLimit.truncated": bool(tr and not te)}
            for s, te, tr in zip(info["success"], terminated, truncated, strict=True)
        ]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = self._obs(info["final_obs"][i], i)
            infos[i]["is_success"] = bool(self._ep_success[i])
            infos[i]["episode"] = {"r": float(self._ep_return[i]), "l": int(self._ep_len[i]),
                                   "t": round(time.time() - self._start, 6)}  # fmt: skip
            self._ep_return[i], self._ep_len[i], self._ep_success[i] = 0, 0, False
        return self._obs(obs), rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def _envs(self, indices: Any) -> list[gym.Env]:
        return [self.venv.envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [env.get_wrapper_attr(attr_name) for env in self._envs(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for env in self._envs(indices):
            env.set_wrapper_attr(attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kw: Any) -> list:
        return [env.get_wrapper_attr(method_name)(*args, **kw) for env in self._envs(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [is_wrapped(env, wrapper_class) for env in self._envs(indices)]


@dataclass(frozen=True)
class Config:
    policy: str = "MultiInputPolicy"
    """SB3 policy name; the adapter's Dict observations need ``MultiInputPolicy``."""
    n_steps: int = 128
    """Rollout length per env between updates."""
    batch_size: int = 256
    """PPO minibatch size."""
    n_epochs: int = 4
    """Passes over each rollout."""
    learning_rate: float = 2.5e-4
    """Adam step size (constant)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.2
    """PPO ratio clip (constant)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    envs_per_task: int = 4
    """Parallel envs per training task (num_envs = envs_per_task * training tasks)."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor and critic MLPs after the features extractor."""
    features: Literal["flatten", "minigrid_cnn"] = "flatten"
    """``flatten``: flat obs ++ one-hot; ``minigrid_cnn``: MOORE's 1024-d CNN ++ one-hot."""
    checkpoint_every: int = 50_000
    """Env steps between checkpoints and metric rows (rounded up to whole rollouts)."""
    torch_threads: int = 1
    """``torch.set_num_threads`` while training (small nets are fastest single-threaded)."""


PRESETS: dict[str, Config] = {
    "default": Config(),
    # lr 1e-3 (rl-starter-files), 8 epochs: MT3 at 150k steps scores ~0.3 (random 0.05).
    "minigrid": Config(learning_rate=1e-3, n_epochs=8, features="minigrid_cnn"),
    "ci": Config(n_steps=32, batch_size=64, learning_rate=3e-3, envs_per_task=2,
                 net_arch=(32, 32), checkpoint_every=1024),
}  # fmt: skip


class TaskFeatures(BaseFeaturesExtractor):
    """Flattened obs, or MOORE's MiniGrid CNN on the HWC grid (``cnn=True``), ++ the one-hot."""

    def __init__(self, observation_space: spaces.Dict, cnn: bool = False) -> None:
        obs_space, num_tasks = observation_space["obs"], observation_space["task"].shape[0]
        height, width, channels = obs_space.shape if cnn else (0, 0, 0)
        dim = 64 * (height - 3) * (width - 3) if cnn else get_flattened_obs_dim(obs_space)
        super().__init__(observation_space, dim + num_tasks)  # CNN on 7x7: 1024-d
        self.cnn = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 16, 2), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 2),
            torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 2), torch.nn.ReLU(), torch.nn.Flatten(),
        ) if cnn else None  # fmt: skip

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        obs = observations["obs"].float()
        features = obs.flatten(1) if self.cnn is None else self.cnn(obs.permute(0, 3, 1, 2))
        return torch.cat([features, observations["task"]], dim=1)


class SB3Policy:
    """The ``Policy`` protocol around any SB3 model (or SB3 policy: anything with ``predict``)."""

    def __init__(self, model: Any, num_tasks: int, *, one_hot: bool = True) -> None:
        self.model, self.one_hot = model, one_hot
        self._eye = np.eye(num_tasks, dtype=np.float32)

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        if self.one_hot:
            dtype = self.model.observation_space["obs"].dtype
            obs = {"obs": np.asarray(obs, dtype), "task": self._eye[np.asarray(task_ids)]}
        return self.model.predict(obs, deterministic=deterministic)[0]

    def reset(self, mask: np.ndarray) -> None:
        pass  # feedforward


def wrap_sb3(model: Any, num_tasks: int, *, one_hot: bool = True) -> SB3Policy:
    """Evaluate your SB3 model: ``one_hot`` if trained on ``OneHotTaskVecEnv``, else obs as is."""
    return SB3Policy(model, num_tasks, one_hot=one_hot)


class IndependentPolicy:
    """Routes each env to its task's model; held-out tasks (no model) act uniformly at random."""

    def __init__(self, models: dict[int, Any], suite: Suite, seed: int = 0) -> None:
        self.policies = {t: SB3Policy(m, suite.num_tasks) for t, m in models.items()}
        self.random = RandomPolicy(make_single_env(suite, suite.tasks[0]).action_space, seed)

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        task_ids, actions = np.asarray(task_ids), self.random.act(obs, task_ids)
        for t, policy in self.policies.items():
            if (mask := task_ids == t).any():
                actions[mask] = policy.act(obs[mask], task_ids[mask], deterministic=deterministic)
        return actions

    def reset(self, mask: np.ndarray) -> None:
        pass  # the per-task models are feedforward


def _make_model(config: Config, env: OneHotTaskVecEnv, seed: int) -> PPO:
    policy_kwargs = {
        "net_arch": list(config.net_arch), "normalize_images": False,
        "features_extractor_class": TaskFeatures,
        "features_extractor_kwargs": {"cnn": config.features == "minigrid_cnn"},
    }  # fmt: skip
    model = PPO(
        config.policy, env, learning_rate=config.learning_rate, n_steps=config.n_steps,
        batch_size=config.batch_size, n_epochs=config.n_epochs, gamma=config.gamma,
        gae_lambda=config.gae_lambda, clip_range=config.clip_range, ent_coef=config.ent_coef,
        policy_kwargs=policy_kwargs, seed=seed, device="cpu", verbose=0,
    )  # fmt: skip
    model.set_logger(Logger(folder=None, output_formats=[]))  # else each learn() makes a tmp dir
    return model


def _make_envs(config: Config, suite: Suite, seed: int, independent: bool) -> dict[int, Any]:
    if not independent:  # key -1: the shared model's env; else one env per training task
        venv = make_env(suite, "train", envs_per_task=config.envs_per_task, seed=seed)
        return {-1: OneHotTaskVecEnv(venv, suite.num_tasks)}
    n, envs = config.envs_per_task, {}
    for t in suite.splits["train"]:
        fns = [lambda t=t: make_single_env(suite, t)] * n
        venv = MultiTaskVectorEnv(fns, np.full(n, t), seed=seed)
        envs[t] = OneHotTaskVecEnv(venv, suite.num_tasks)
    return envs


def _save_checkpoint(model: PPO, ckpt_dir: Path) -> None:
    """Write, fsync, rename: ``model.pt`` is always a whole checkpoint (one writer per run)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {"policy": model.policy.state_dict(), "optimizer": model.policy.optimizer.state_dict(),
             "num_timesteps": model.num_timesteps}  # fmt: skip
    with open(ckpt_dir / ".model.pt.tmp", "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(ckpt_dir / ".model.pt.tmp", ckpt_dir / "model.pt")
    atomic_write_text(ckpt_dir / "state.json", json.dumps({"num_timesteps": model.num_timesteps}))


def _load_checkpoint(model: PPO, ckpt_dir: Path) -> bool:
    """Load weights, Adam state and ``num_timesteps`` of the checkpoint, if there is one."""
    if not (ckpt_dir / "model.pt").exists():
        return False
    state = torch.load(ckpt_dir / "model.pt", map_location=model.device, weights_only=True)
    model.policy.load_state_dict(state["policy"])
    model.policy.optimizer.load_state_dict(state["optimizer"])
    model.num_timesteps = int(state["num_timesteps"])
    return True


def _fit(config: Config, env: OneHotTaskVecEnv, seed: int, run_dir: RunDir, steps: int,
         bar: tqdm, key: int) -> PPO:  # fmt: skip
    """Train (resume) model ``key`` (-1: shared, else a task) to ``steps``, saving every chunk."""
    model = _make_model(config, env, seed)
    ckpt_dir = run_dir.ckpt_dir / (f"task{key}" if key >= 0 else "")
    _load_checkpoint(model, ckpt_dir)
    rollout = config.n_steps * env.num_envs  # both rounded up to whole rollouts, at least one
    target, chunk = (max(1, -(-n // rollout)) * rollout for n in (steps, config.checkpoint_every))
    bar.update(min(model.num_timesteps, target))

    def tick(*_: Any) -> bool:  # SB3 calls it after every vector step; True: go on
        return bar.update(env.num_envs) or True

    while model.num_timesteps < target:
        start, t0 = model.num_timesteps, time.perf_counter()
        model.learn(min(chunk, target - start), tick, reset_num_timesteps=False)
        fps = (model.num_timesteps - start) / (time.perf_counter() - t0)
        _save_checkpoint(model, ckpt_dir)
        episodes, successes = list(model.ep_info_buffer), list(model.ep_success_buffer)
        run_dir.append_metrics({
            **({"task_index": key} if key >= 0 else {}), "env_steps": model.num_timesteps,
            "fps": round(fps, 1), "success": float(np.mean(successes)) if successes else None,
            "episode_return": float(np.mean([e["r"] for e in episodes])) if episodes else None,
        })  # fmt: skip
    env.close()
    return model


def _train(config: Config, suite: Suite, seed: int, run_dir: RunDir, steps: int,
           progress: bool, independent: bool) -> dict[int, PPO]:  # fmt: skip
    torch.set_num_threads(config.torch_threads)
    envs = _make_envs(config, suite, seed, independent)
    with tqdm(total=steps, desc=f"sb3-ppo {suite.id}", disable=not progress) as bar:
        models = {k: _fit(config, env, seed, run_dir, -(-steps // len(envs)), bar, k)
                  for k, env in envs.items()}  # fmt: skip
    return models


def train(config: Config, suite: Suite, seed: int, run_dir: RunDir, steps: int,
          progress: bool) -> SB3Policy:  # fmt: skip
    """One PPO for all training tasks, the task one-hot in its input; resumes from checkpoints."""
    models = _train(config, suite, seed, run_dir, steps, progress, independent=False)
    return SB3Policy(models[-1], suite.num_tasks)


def train_independent(config: Config, suite: Suite, seed: int, run_dir: RunDir, steps: int,
                      progress: bool) -> IndependentPolicy:  # fmt: skip
    """One PPO per training task on that task's envs only; ``steps`` split evenly."""
    models = _train(config, suite, seed, run_dir, steps, progress, independent=True)
    return IndependentPolicy(models, suite, seed)


def _load(run_dir: Path, suite: Suite, independent: bool) -> tuple[dict[int, PPO], int]:
    saved = json.loads((Path(run_dir) / "config.json").read_text())
    if saved["suite"] != suite.id:
        raise UsageError(f"{run_dir} was trained on {saved['suite']}, not {suite.id}")
    fields, seed, models = saved["agent_config"], saved["seed"], {}
    config = Config(**{**fields, "net_arch": tuple(fields["net_arch"])})
    for key, env in _make_envs(config, suite, seed, independent).items():
        models[key], ckpt_dir = _make_model(config, env, seed), Path(run_dir) / "ckpt"
        env.close()
        if not _load_checkpoint(models[key], ckpt_dir / (f"task{key}" if key >= 0 else "")):
            raise UsageError(f"no checkpoint in {ckpt_dir}")
    return models, seed


def load(run_dir: Path, suite: Suite) -> SB3Policy:
    return SB3Policy(_load(run_dir, suite, independent=False)[0][-1], suite.num_tasks)


def load_independent(run_dir: Path, suite: Suite) -> IndependentPolicy:
    models, seed = _load(run_dir, suite, independent=True)
    return IndependentPolicy(models, suite, seed)


PPO_SHARED = AgentSpec("sb3-ppo", Config, PRESETS, train, load,
                       "SB3 PPO, one shared model, task one-hot input")  # fmt: skip
PPO_INDEPENDENT = AgentSpec("sb3-ppo-independent", Config, PRESETS, train_independent,
                            load_independent, "SB3 PPO per task; random on held-out")  # fmt: skip
