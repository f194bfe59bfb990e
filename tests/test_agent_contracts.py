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
#: offline in-context learners (agents/icl_agents.py): they act only in the in_context protocol,
#: so their training contract is test_in_context_train_save_load_same_actions below
IN_CONTEXT = ("ad", "dpt", "t2mir-ad", "t2mir-dpt")
TRAINED = [pytest.param(a, marks=pytest.mark.slow) if a in SAME_CODE_AS else a for a in AGENTS
           if a not in IN_CONTEXT]  # fmt: skip


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
        # evaluate seeds numpy's global RNG per protocol; the random policy (and the held-out
        # tasks of sb3-ppo-independent) draw from it, so both policies get the same state
        np.random.seed(split == "test")
        a = trained.act(obs, env.task_ids, deterministic=True)
        np.random.seed(split == "test")
        b = loaded.act(obs, env.task_ids, deterministic=True)
        assert len(a) == env.num_envs and env.action_space.contains(
            np.asarray(a, env.action_space.dtype)
        )
        np.testing.assert_array_equal(a, b)
        trained.reset(np.ones(env.num_envs, bool))


@pytest.mark.parametrize("agent_id", IN_CONTEXT)
def test_in_context_missing_dataset_is_one_line_error(agent_id, tmp_path, monkeypatch):
    from mtrl_bench.errors import UsageError

    spec = get_agent(agent_id)
    monkeypatch.chdir(tmp_path)
    run_dir = RunDir(tmp_path / "runs", "darkroom/dpt-v1", agent_id, 0)
    with pytest.raises(UsageError, match=r"^no dataset .*`mtrl datasets make darkroom/dpt-v1"):
        spec.train(spec.presets["ci"], get_suite("darkroom/dpt-v1"), 0, run_dir, 0, False)


@pytest.mark.slow  # JIT of the learner, the model and the evaluation: ~30 s CPU per agent
@pytest.mark.parametrize("agent_id", IN_CONTEXT)
def test_in_context_train_save_load_same_actions(agent_id, tmp_path, monkeypatch):
    """Trained on a dataset made here (data/in_context/ under the working directory), saved,
    loaded: the same parameters and greedy in-context episodes; ``act`` refuses in one line;
    a missing dataset is a one-line error."""
    from dataclasses import asdict, replace

    import jax

    from mtrl_bench.agents import icl_data
    from mtrl_bench.envs.in_context import darkroom_suite
    from mtrl_bench.errors import UsageError
    from mtrl_bench.in_context import evaluate_in_context

    spec = get_agent(agent_id)
    suite = darkroom_suite("contract", 3, 4, (4, 8), 2, "3x3 room, 4 steps, 7 / 2 goals")
    monkeypatch.chdir(tmp_path)
    config = replace(spec.presets["ci"], steps=20)
    run_dir = RunDir(tmp_path / "runs", suite.id, agent_id, 0)
    run_dir.open({"suite": suite.id, "agent": agent_id, "seed": 0,
                  "agent_config": asdict(config)})  # fmt: skip
    with pytest.raises(UsageError, match="mtrl datasets make darkroom/contract-v1"):
        spec.train(config, suite, 0, run_dir, 0, False)
    data = icl_data.make_dataset(suite, replace(icl_data.PRESETS["ci"], updates=2), seed=0)
    icl_data.save(icl_data.default_path(suite.id, 0), data)
    trained = spec.train(config, suite, 0, run_dir, 0, False)
    loaded = spec.load(run_dir.path, suite)
    with pytest.raises(UsageError, match="in_context"):
        trained.act(np.zeros((2, 2), np.float32), np.zeros(2, int))
    a, b = (evaluate_in_context(p, suite, 2, seed=0, trials=1, deterministic=True)
            for p in (trained, loaded))  # fmt: skip
    assert [t.per_episode for t in a.tasks] == [t.per_episode for t in b.tasks]
    for x, y in zip(jax.tree.leaves(trained.params), jax.tree.leaves(loaded.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

