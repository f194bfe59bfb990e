"""Pinned numerics: the first updates of each agent family at a fixed seed and a tiny config.

A change that alters these numbers alters results. Such a change must update the numbers here
and say so in its commit message (which numbers, and why); a refactor leaves them as they are.
The numbers are rounded to 6 significant digits (``RTOL`` absorbs that rounding only).

- MOORE's PPO family (``agents/mtppo.py`` on ``agents/ppo_core.py``): mtppo, moe, moore; three
  updates (GAE, the critic step, the policy's minibatch epochs), each on a fresh rollout of the
  sampled policy on the toy corridor;
- transfer PPO (``agents/transfer_ppo.py`` on ``agents/ppo_core.py``), through the hook the
  ``transfer`` protocol calls (``AgentSpec.jax_trainer``): ``ppo-context`` on two CartPole
  contexts, three updates; episode returns and the L1 norm of the final parameters;
- the SAC family (``agents/mtsac.py``): mtsac and moore-sac on the toy reach task, the metric
  rows of the first three chunks of ``_fit`` (each with its last update: the 10th, 60th, 110th).

The cost is XLA compilation of six update programs (3-10 s of CPU each here). The PPO family
uses its ``ci`` preset on the toy corridor and mtsac ``tests/test_mtsac.py``'s tiny config, as
other tests do (the session's XLA cache, ``tests/conftest.py``, can then reuse their programs).
"""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtrl_bench import make_env
from mtrl_bench.agents import mtppo, mtsac
from mtrl_bench.agents.rollout import python_reset, python_rollout
from mtrl_bench.jax_env import stack_params
from mtrl_bench.jax_vector import suite_env
from mtrl_bench.registry import get_agent, get_suite
from mtrl_bench.results import RunDir, read_jsonl

RTOL = 1e-5

MTPPO = {
    "mtppo": {
        "entropy": [0.690766, 0.682501, 0.666368],
        "policy_loss": [-0.0121323, -0.0101365, -0.0110339],
        "value_loss": [0.000994418, 0.00979708, 0.0108606],
    },
    "moe": {
        "entropy": [0.692151, 0.688613, 0.676511],
        "policy_loss": [-0.010756, -0.0119627, -0.016138],
        "value_loss": [5.56311e-05, 0.00939274, 0.0239666],
    },
    "moore": {
        "entropy": [0.692125, 0.687999, 0.675854],
        "policy_loss": [-0.0102863, -0.0120436, -0.0144851],
        "value_loss": [6.77784e-05, 0.00945996, 0.0243883],
    },
}
TRANSFER_PPO = {"episode_return": [31.5, 38.8571, 31.625], "pi_l1": 628.741, "v_l1": 635.174}
SAC = {  # one dict per metric row (a chunk of 50 vector steps; its last update's metrics)
    "mtsac": [
        {"updates": 10, "critic_loss": 0.367696, "actor_loss": -0.702189, "alpha": 0.999101,
         "entropy": 0.673632, "episode_return": -0.543165},
        {"updates": 60, "critic_loss": 0.139741, "actor_loss": -0.888321, "alpha": 0.994106,
         "entropy": 0.669089, "episode_return": -0.96259},
        {"updates": 110, "critic_loss": 0.0453221, "actor_loss": -1.24145, "alpha": 0.989141,
         "entropy": 0.675572, "episode_return": -0.993533},
    ],
    "moore-sac": [
        {"updates": 10, "critic_loss": 0.395948, "actor_loss": -0.67617, "alpha": 0.999101,
         "entropy": 0.6687, "episode_return": -0.543115},
        {"updates": 60, "critic_loss": 0.283215, "actor_loss": -0.72792, "alpha": 0.994111,
         "entropy": 0.666898, "episode_return": -0.958739},
        {"updates": 110, "critic_loss": 0.275188, "actor_loss": -0.809623, "alpha": 0.989144,
         "entropy": 0.674636, "episode_return": -0.997102},
    ],
}  # fmt: skip


def mtppo_metrics(agent: str) -> dict[str, list[float]]:
    suite = get_suite("toy/goal-line-v1")
    config = get_agent(agent).presets["ci"]
    algo = mtppo.build(config, suite)
    learner = jax.jit(algo.init)(jax.random.key(0))  # as eager init, bitwise; compiles faster
    venv = make_env(suite, "train", seed=0)
    carry, step, update = python_reset(venv), jax.jit(algo.policy_step), jax.jit(algo.update)
    rows = []
    for _ in range(3):
        key, batch, _ = python_rollout(venv, step, learner.actor, learner.key, carry,
                                       config.steps_per_task)  # fmt: skip
        learner, metrics = update(learner._replace(key=key), batch)
        rows.append(metrics)
    venv.close()
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def transfer_ppo_numbers() -> dict:
    suite, spec = get_suite("control-jax/cartpole-masscart-v1"), get_agent("ppo-context")
    env, config, tasks = suite_env(suite), spec.presets["ci"], [30, 60]
    train, _ = spec.jax_trainer(config, env, 3 * 256, len(tasks), 500)
    context = jnp.array([0.3, 0.6], jnp.float32)
    params, returns = jax.jit(train)(jax.random.PRNGKey(0),
                                     stack_params(env, [suite.tasks[i] for i in tasks]), context)  # fmt: skip
    l1 = {k: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(params[k]))) for k in ("pi", "v")}
    return {"episode_return": np.asarray(returns).tolist(), "pi_l1": l1["pi"], "v_l1": l1["v"]}


def sac_rows(agent: str, tmp_path) -> list[dict]:
    suite = get_suite("toy/reach-1d-v1")
    # test_mtsac's TINY config (the same compiled update), 2 experts (compiles in half the time)
    config = replace(mtsac.Config(network=get_agent(agent).presets["ci"].network), n_experts=2,
                     widths=(32, 32), batch_per_task=16, buffer_per_task=1000, random_steps=40,
                     learning_starts=40, actor_starts=40, checkpoint_every=50)  # fmt: skip
    algo = mtsac.build(config, suite)
    run_dir = RunDir(tmp_path, suite.id, agent, 0)
    run_dir.path.mkdir(parents=True)
    learner = jax.jit(algo.init)(jax.random.key(0))
    mtsac._fit(algo, suite, learner, 0, run_dir, run_dir.ckpt_dir, 3 * 150, False, "train")
    return read_jsonl(run_dir.metrics_path)


def _check(got: dict, pinned: dict) -> None:
    for key, value in pinned.items():
        np.testing.assert_allclose(got[key], value, rtol=RTOL, err_msg=key)


@pytest.mark.parametrize("agent", list(MTPPO))
def test_mtppo_family_first_updates(agent):
    _check(mtppo_metrics(agent), MTPPO[agent])


def test_transfer_ppo_first_updates():
    _check(transfer_ppo_numbers(), TRANSFER_PPO)


@pytest.mark.parametrize("agent", list(SAC))
def test_sac_family_first_updates(agent, tmp_path):
    rows = sac_rows(agent, tmp_path)
    assert len(rows) == len(SAC[agent])
    for row, pinned in zip(rows, SAC[agent], strict=True):
        _check(row, pinned)
