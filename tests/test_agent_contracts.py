"""Contract tests over every registered agent: act shapes, Policy protocol, save -> load -> same actions."""

import numpy as np
import pytest

from mtrl_bench import make_env
from mtrl_bench.registry import agent_ids, get_agent, get_suite
from mtrl_bench.results import RunDir
from mtrl_bench.runner import RunConfig, resolve
from mtrl_bench.types import AgentSpec, Policy

AGENTS = agent_ids()
#: agents that are another agent's code with another config: their training contract runs slow
SAME_CODE_AS = {"independent": "camrl"}
TRAINED = [pytest.param(a, marks=pytest.mark.slow) if a in SAME_CODE_AS else a for a in AGENTS]


def preset(spec: AgentSpec) -> str:
    return "ci" if "ci" in spec.presets else "default"


#: agents that run on one suite family only: their contract runs on a small suite of it
CONTRACT_SUITES = {
    "metaworld-expert": "metaworld/mt1-reach-v1",
    "ppo": "control-jax/cartpole-masscart-v1",  # JAX suites only (agents/transfer_ppo.py)
    "ppo-context": "control-jax/pendulum-dt-v1",  # and continuous actions
}


def toy_suite(spec: AgentSpec) -> str:
    """The toy suite of the agent's action space: a discrete corridor or a continuous reach."""
    return "toy/goal-line-v1" if "discrete" in spec.action_spaces else "toy/reach-1d-v1"


@pytest.mark.parametrize("agent_id", AGENTS)
def test_spec_shape(agent_id):
    spec = get_agent(agent_id)
    assert isinstance(spec, AgentSpec) and spec.id == agent_id
    assert "default" in spec.presets
    for config in spec.presets.values():
        assert isinstance(config, spec.config_cls)


@pytest.mark.parametrize("agent_id", TRAINED)
def test_train_act_save_load_same_actions(agent_id, tmp_path):
    spec = get_agent(agent_id)
    suite = get_suite(CONTRACT_SUITES.get(agent_id) or toy_suite(spec))
    cfg = RunConfig(suite=suite.id, agent=agent_id, preset=preset(spec), steps=512,
                    eval_episodes=2)  # fmt: skip
    run_dir = RunDir(tmp_path, suite.id, agent_id, 0)
    run_dir.open(resolve(cfg))
    trained = spec.train(spec.presets[cfg.preset], suite, 0, run_dir, cfg.steps, False)
    loaded = spec.load(run_dir.path, suite)
    assert isinstance(trained, Policy) and isinstance(loaded, Policy)
    for split in ("train", "test"):
        env = make_env(suite, split, envs_per_task=3, seed=1)
        obs, _ = env.reset()
        a = trained.act(obs, env.task_ids, deterministic=True)
        b = loaded.act(obs, env.task_ids, deterministic=True)
        assert len(a) == env.num_envs and env.action_space.contains(
            np.asarray(a, env.action_space.dtype)
        )
        np.testing.assert_array_equal(a, b)
        trained.reset(np.ones(env.num_envs, bool))
