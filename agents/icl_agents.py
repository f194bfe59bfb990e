"""``mtrl train`` for the in-context learners: AD, DPT, T2MIR-AD, T2MIR-DPT (``AgentSpec``s).

They train offline on the learning-history dataset of the suite (``agents/icl_data.py``), which
must exist at ``data/in_context/<suite>/seed0.npz`` relative to the working directory (``mtrl
datasets make SUITE --seed 0`` writes it; the run refuses, in one line, when it is missing or
made for another suite). Every training seed reads the same dataset (seed 0): seeds vary the
model's initialisation and batches, not the data. The run's ``--steps`` (env steps) is not used:
these agents take no env steps, and train for their config's ``steps`` gradient steps; the loss
is logged to ``metrics.jsonl`` every 100 steps, and the last parameters are the checkpoint
(checkpoint selection never looks at held-out tasks).

They act only through the ``in_context`` protocol (``mtrl_bench/in_context.py``): run them with
``--protocols in_context``; ``act`` (the other protocols) raises a one-line error. Presets: the
model modules' (``paper``, ``cpu``, ``ci``; ``default`` = ``cpu``), with T2MIR's MoE set for the
``t2mir-*`` ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from mtrl_bench.agents import ad, dpt, icl_data
from mtrl_bench.agents.checkpoint import load_tree, save_tree, saved_config
from mtrl_bench.agents.icl_transformer import MoEConfig
from mtrl_bench.errors import UsageError
from mtrl_bench.in_context import Context
from mtrl_bench.jax_env import stack_params
from mtrl_bench.jax_vector import suite_env
from mtrl_bench.results import RunDir
from mtrl_bench.types import AgentSpec, Suite

DATASET_SEED = 0


def dataset(suite: Suite) -> dict:
    """The suite's dataset (module docstring), or a one-line ``UsageError``."""
    path = icl_data.default_path(suite.id, DATASET_SEED)
    if not path.exists():
        raise UsageError(f"no dataset {path}; make it with `mtrl datasets make {suite.id} "
                         f"--seed {DATASET_SEED}`")  # fmt: skip
    data = icl_data.load(path)
    if data["meta"]["suite"] != suite.id:
        raise UsageError(f"dataset {path} was made for {data['meta']['suite']}, not {suite.id}")
    return data


class InContextAgent:
    """A trained AD / DPT as a harness policy: ``in_context`` only."""

    def __init__(self, inner: ad.ADPolicy | dpt.DPTPolicy) -> None:
        self.inner = inner
        self.context_steps = inner.context_steps
        self.params = inner.params

    def act_in_context(self, context: Context, task_ids: np.ndarray, *,
                       deterministic: bool = False) -> np.ndarray:  # fmt: skip
        return self.inner.act_in_context(context, task_ids, deterministic=deterministic)

    def act(self, obs: Any, task_ids: np.ndarray, *, deterministic: bool = False) -> np.ndarray:
        raise UsageError("in-context agents act only through the in_context protocol "
                         "(--protocols in_context)")  # fmt: skip

    def reset(self, mask: np.ndarray) -> None:
        pass


def _setup(kind: str, config: Any, suite: Suite, data: dict):
    """``(init, train_chunk, model)`` of the model ``kind`` on ``data``."""
    act_dim, discrete = _action(suite)
    if kind == "ad":
        return ad.make_train(config, ad.sort_by_return(data), act_dim, discrete)
    env = suite_env(suite)
    goals = stack_params(env, suite.split_tasks("train"))
    return dpt.make_train(config, data, goals, env.optimal_action, act_dim, discrete)


def _action(suite: Suite) -> tuple[int, bool]:
    space = suite_env(suite).action_space
    discrete = hasattr(space, "n")
    return (int(space.n) if discrete else int(np.prod(space.shape))), discrete


def _policy(kind: str, model: Any, params: Any, seed: int) -> InContextAgent:
    cls = ad.ADPolicy if kind == "ad" else dpt.DPTPolicy
    return InContextAgent(cls(model, params, seed))


def _train(kind: str, config: Any, suite: Suite, seed: int, run_dir: RunDir, steps: int,
           progress: bool) -> InContextAgent:  # fmt: skip
    data = dataset(suite)
    init, train_chunk, model = _setup(kind, config, suite, data)
    state = init(jax.random.key(seed))
    if (hit := load_tree(run_dir.ckpt_dir, state[0])) is not None:
        return _policy(kind, model, hit[0], seed)  # trained: the checkpoint is the end state
    done = 0
    while done < config.steps:
        n = min(100, config.steps - done)
        state, losses = train_chunk(state, n)
        done += n
        names = ("loss", "balance_loss", "contrastive_loss")
        run_dir.append_metrics({"split": "train", "updates": done, "env_steps": 0,
                                **dict(zip(names, map(float, losses), strict=True))})  # fmt: skip
    save_tree(run_dir.ckpt_dir, state[0], {"updates": done})
    return _policy(kind, model, state[0], seed)


def _load(kind: str, path: Path, suite: Suite) -> InContextAgent:
    saved = saved_config(path, suite.id, ())
    fields = dict(saved["agent_config"])
    if fields.get("moe") is not None:
        fields["moe"] = MoEConfig(**fields["moe"])
    config = (ad.Config if kind == "ad" else dpt.Config)(**fields)
    init, _, model = _setup(kind, config, suite, dataset(suite))
    template = init(jax.random.key(0))[0]
    if (hit := load_tree(Path(path) / "ckpt", template)) is None:
        raise UsageError(f"no checkpoint in {Path(path) / 'ckpt'}")
    return _policy(kind, model, hit[0], int(saved["seed"]))


def _spec(agent_id: str, kind: str, t2mir: bool, description: str) -> AgentSpec:
    mod = ad if kind == "ad" else dpt
    names = [n for n in mod.PRESETS if n in mod.MOE_PRESETS] if t2mir else list(mod.PRESETS)
    presets = {n: mod.t2mir_config(n) if t2mir else mod.PRESETS[n] for n in names}
    presets = {"default": presets["cpu"], **presets}

    def train(config, suite, seed, run_dir, steps, progress):
        return _train(kind, config, suite, seed, run_dir, steps, progress)

    def load(path, suite):
        return _load(kind, path, suite)

    return AgentSpec(agent_id, mod.Config, presets, train, load, description,
                     backends=("jax",))  # fmt: skip


AD = _spec("ad", "ad", False, "Algorithm Distillation: causal transformer over learning "
           "histories (in_context protocol; needs `mtrl datasets make`)")  # fmt: skip
DPT = _spec("dpt", "dpt", False, "Decision-Pretrained Transformer: optimal action from a "
            "context of transitions (in_context protocol; needs `mtrl datasets make`)")  # fmt: skip
T2MIR_AD = _spec("t2mir-ad", "ad", True, "AD with T2MIR's token- and task-wise MoE FFN "
                 "(in_context protocol)")  # fmt: skip
T2MIR_DPT = _spec("t2mir-dpt", "dpt", True, "DPT with T2MIR's token- and task-wise MoE FFN "
                  "(in_context protocol)")  # fmt: skip
