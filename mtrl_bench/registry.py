"""Lazy registry of suites and agents (docs/design.md, "Registry, configs, CLI").

Ids map to ``"module:attr"`` strings, so listing ids imports neither JAX, torch nor MuJoCo.
Third-party packages add entries through the entry-point groups ``mtrl_bench.suites`` and
``mtrl_bench.agents`` (entry-point name = id, value = ``module:attr``).
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import entry_points

from mtrl_bench.errors import UsageError
from mtrl_bench.types import AgentSpec, Suite, load_attr

SUITES: dict[str, str] = {
    "control-jax/cartpole-length-v1": "mtrl_bench.envs.control_jax:CARTPOLE_LENGTH",
    "control-jax/cartpole-masscart-v1": "mtrl_bench.envs.control_jax:CARTPOLE_MASSCART",
    "control-jax/cartpole-masspole-v1": "mtrl_bench.envs.control_jax:CARTPOLE_MASSPOLE",
    "control-jax/pendulum-dt-v1": "mtrl_bench.envs.control_jax:PENDULUM_DT",
    "control-jax/pendulum-length-v1": "mtrl_bench.envs.control_jax:PENDULUM_LENGTH",
    "control-jax/pendulum-mass-v1": "mtrl_bench.envs.control_jax:PENDULUM_MASS",
    "control/cartpole-length-v1": "mtrl_bench.envs.control:CARTPOLE_LENGTH",
    "control/cartpole-masscart-v1": "mtrl_bench.envs.control:CARTPOLE_MASSCART",
    "control/cartpole-masspole-v1": "mtrl_bench.envs.control:CARTPOLE_MASSPOLE",
    "control/pendulum-dt-v1": "mtrl_bench.envs.control:PENDULUM_DT",
    "control/pendulum-length-v1": "mtrl_bench.envs.control:PENDULUM_LENGTH",
    "control/pendulum-mass-v1": "mtrl_bench.envs.control:PENDULUM_MASS",
    "minigrid-jax/mt3-v1": "mtrl_bench.envs.minigrid:MT3_JAX",
    "minigrid-jax/mt5-v1": "mtrl_bench.envs.minigrid:MT5_JAX",
    "minigrid-jax/mt7-v1": "mtrl_bench.envs.minigrid:MT7_JAX",
    "minigrid/mt3-v1": "mtrl_bench.envs.minigrid:MT3",
    "minigrid/mt5-v1": "mtrl_bench.envs.minigrid:MT5",
    "minigrid/mt7-v1": "mtrl_bench.envs.minigrid:MT7",
    "toy/bandit-v1": "mtrl_bench.envs.toy:BANDIT",
    "toy/goal-line-v1": "mtrl_bench.envs.toy:GOAL_LINE",
    "toy/reach-1d-v1": "mtrl_bench.envs.toy:REACH_1D",
    "traffic/eco-green-v1": "mtrl_bench.envs.traffic.eco:GREEN",
    "traffic/eco-inflow-v1": "mtrl_bench.envs.traffic.eco:INFLOW",
    "traffic/eco-penrate-v1": "mtrl_bench.envs.traffic.eco:PENRATE",
    "traffic/signal-inflow-v1": "mtrl_bench.envs.traffic.signal:INFLOW",
    "traffic/signal-length-v1": "mtrl_bench.envs.traffic.signal:LENGTH",
    "traffic/signal-speed-v1": "mtrl_bench.envs.traffic.signal:SPEED",
    "traffic-jax/eco-green-v1": "mtrl_bench.envs.traffic.eco_jax:GREEN",
    "traffic-jax/eco-inflow-v1": "mtrl_bench.envs.traffic.eco_jax:INFLOW",
    "traffic-jax/eco-penrate-v1": "mtrl_bench.envs.traffic.eco_jax:PENRATE",
    "traffic-jax/signal-inflow-v1": "mtrl_bench.envs.traffic.signal_jax:INFLOW",
    "traffic-jax/signal-length-v1": "mtrl_bench.envs.traffic.signal_jax:LENGTH",
    "traffic-jax/signal-speed-v1": "mtrl_bench.envs.traffic.signal_jax:SPEED",
}

#: Meta-World v3 task names in upstream order (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``);
#: kept here so that listing ids imports no MuJoCo (a test compares it with upstream).
METAWORLD_TASKS = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3",
    "door-lock-v3", "door-open-v3", "door-unlock-v3", "hand-insert-v3", "drawer-close-v3",
    "drawer-open-v3", "faucet-open-v3", "faucet-close-v3", "hammer-v3", "handle-press-side-v3",
    "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3",
    "plate-slide-side-v3", "plate-slide-back-v3", "plate-slide-back-side-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3",
    "push-v3", "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3",
    "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3",
)  # fmt: skip
METAWORLD_BENCHMARKS = ("mt10", "mt25", "mt50", "ml10", "ml45")
#: id infixes of the option variants: reward V1 (``-rv1``), MOORE's 150-step episodes (``-h150``)
METAWORLD_VARIANTS = ("", "-rv1", "-h150", "-rv1-h150")


def metaworld_attr(suite_id: str) -> str:
    """``metaworld/mt10-rv1-v1`` -> ``MT10_RV1_V1``, its attribute in ``envs/metaworld.py``."""
    return suite_id.removeprefix("metaworld/").upper().replace("-", "_")


def _metaworld_ids() -> list[str]:
    ids = [f"metaworld/{b}{v}-v1" for v in METAWORLD_VARIANTS for b in METAWORLD_BENCHMARKS]
    mt1 = [f"metaworld/mt1-{t.removesuffix('-v3')}-v1" for t in METAWORLD_TASKS]
    return [*ids, *mt1, "metaworld/mt10-sub3-v1"]


SUITES.update({i: f"mtrl_bench.envs.metaworld:{metaworld_attr(i)}" for i in _metaworld_ids()})

AGENTS: dict[str, str] = {
    "metaworld-expert": "mtrl_bench.baselines.metaworld_experts:SPEC",
    "moe": "mtrl_bench.agents.mtppo:MOE",
    "moe-pcgrad": "mtrl_bench.agents.mtppo:MOE_PCGRAD",
    "moe-sac": "mtrl_bench.agents.mtsac:MOESAC",
    "moore": "mtrl_bench.agents.mtppo:MOORE",
    "moore-sac": "mtrl_bench.agents.mtsac:MOORESAC",
    "mtmh-sac": "mtrl_bench.agents.mtsac:MTMHSAC",
    "mtppo": "mtrl_bench.agents.mtppo:MTPPO",
    "mtppo-pcgrad": "mtrl_bench.agents.mtppo:MTPPO_PCGRAD",
    "mtsac": "mtrl_bench.agents.mtsac:MTSAC",
    "pcgrad-sac": "mtrl_bench.agents.mtsac:PCGRADSAC",
    "random": "mtrl_bench.baselines.random_policy:SPEC",
    "sb3-ppo": "mtrl_bench.baselines.sb3:PPO_SHARED",
    "sb3-ppo-independent": "mtrl_bench.baselines.sb3:PPO_INDEPENDENT",
}


@cache
def _plugins(group: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=group)}


def suite_ids() -> list[str]:
    return sorted({**SUITES, **_plugins("mtrl_bench.suites")})


def agent_ids() -> list[str]:
    return sorted({**AGENTS, **_plugins("mtrl_bench.agents")})


def _resolve(kind: str, key: str, table: dict[str, str], group: str) -> str:
    known = {**_plugins(group), **table}
    if key in known:
        return known[key]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.3) or sorted(known)[:5]
    raise UsageError(f"unknown {kind} {key!r}; closest: {', '.join(close)}")


def get_suite(suite_id: str) -> Suite:
    return load_attr(_resolve("suite", suite_id, SUITES, "mtrl_bench.suites"))


def get_agent(agent_id: str) -> AgentSpec:
    """A registered id, an entry point of the ``mtrl_bench.agents`` group, or the
    ``package.module:attr`` of an ``AgentSpec`` in the user's own package."""
    if ":" in agent_id and agent_id not in AGENTS and agent_id not in _plugins("mtrl_bench.agents"):
        try:
            spec = load_attr(agent_id)
        except (ImportError, AttributeError, ValueError) as exc:
            raise UsageError(f"cannot load agent {agent_id!r}: {exc}") from None
        if not isinstance(spec, AgentSpec):
            raise UsageError(f"agent {agent_id!r} is a {type(spec).__name__}, not an AgentSpec")
        return spec
    return load_attr(_resolve("agent", agent_id, AGENTS, "mtrl_bench.agents"))
