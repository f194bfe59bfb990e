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
    "darkroom/ad-v1": "mtrl_bench.envs.in_context:DARKROOM_AD",
    "darkroom/dpt-v1": "mtrl_bench.envs.in_context:DARKROOM_DPT",
    # Meta-World: the ids of envs/metaworld_tasks.py:metaworld_ids() (a test keeps them equal)
    "metaworld/mt10-v1": "mtrl_bench.envs.metaworld:MT10_V1",
    "metaworld/mt25-v1": "mtrl_bench.envs.metaworld:MT25_V1",
    "metaworld/mt50-v1": "mtrl_bench.envs.metaworld:MT50_V1",
    "metaworld/ml10-v1": "mtrl_bench.envs.metaworld:ML10_V1",
    "metaworld/ml45-v1": "mtrl_bench.envs.metaworld:ML45_V1",
    "metaworld/mt10-rv1-v1": "mtrl_bench.envs.metaworld:MT10_RV1_V1",
    "metaworld/mt25-rv1-v1": "mtrl_bench.envs.metaworld:MT25_RV1_V1",
    "metaworld/mt50-rv1-v1": "mtrl_bench.envs.metaworld:MT50_RV1_V1",
    "metaworld/ml10-rv1-v1": "mtrl_bench.envs.metaworld:ML10_RV1_V1",
    "metaworld/ml45-rv1-v1": "mtrl_bench.envs.metaworld:ML45_RV1_V1",
    "metaworld/mt10-h150-v1": "mtrl_bench.envs.metaworld:MT10_H150_V1",
    "metaworld/mt25-h150-v1": "mtrl_bench.envs.metaworld:MT25_H150_V1",
    "metaworld/mt50-h150-v1": "mtrl_bench.envs.metaworld:MT50_H150_V1",
    "metaworld/ml10-h150-v1": "mtrl_bench.envs.metaworld:ML10_H150_V1",
    "metaworld/ml45-h150-v1": "mtrl_bench.envs.metaworld:ML45_H150_V1",
    "metaworld/mt10-rv1-h150-v1": "mtrl_bench.envs.metaworld:MT10_RV1_H150_V1",
    "metaworld/mt25-rv1-h150-v1": "mtrl_bench.envs.metaworld:MT25_RV1_H150_V1",
    "metaworld/mt50-rv1-h150-v1": "mtrl_bench.envs.metaworld:MT50_RV1_H150_V1",
    "metaworld/ml10-rv1-h150-v1": "mtrl_bench.envs.metaworld:ML10_RV1_H150_V1",
    "metaworld/ml45-rv1-h150-v1": "mtrl_bench.envs.metaworld:ML45_RV1_H150_V1",
    "metaworld/mt1-assembly-v1": "mtrl_bench.envs.metaworld:MT1_ASSEMBLY_V1",
    "metaworld/mt1-basketball-v1": "mtrl_bench.envs.metaworld:MT1_BASKETBALL_V1",
    "metaworld/mt1-bin-picking-v1": "mtrl_bench.envs.metaworld:MT1_BIN_PICKING_V1",
    "metaworld/mt1-box-close-v1": "mtrl_bench.envs.metaworld:MT1_BOX_CLOSE_V1",
    "metaworld/mt1-button-press-topdown-v1":
        "mtrl_bench.envs.metaworld:MT1_BUTTON_PRESS_TOPDOWN_V1",
    "metaworld/mt1-button-press-topdown-wall-v1":
        "mtrl_bench.envs.metaworld:MT1_BUTTON_PRESS_TOPDOWN_WALL_V1",
    "metaworld/mt1-button-press-v1": "mtrl_bench.envs.metaworld:MT1_BUTTON_PRESS_V1",
    "metaworld/mt1-button-press-wall-v1": "mtrl_bench.envs.metaworld:MT1_BUTTON_PRESS_WALL_V1",
    "metaworld/mt1-coffee-button-v1": "mtrl_bench.envs.metaworld:MT1_COFFEE_BUTTON_V1",
    "metaworld/mt1-coffee-pull-v1": "mtrl_bench.envs.metaworld:MT1_COFFEE_PULL_V1",
    "metaworld/mt1-coffee-push-v1": "mtrl_bench.envs.metaworld:MT1_COFFEE_PUSH_V1",
    "metaworld/mt1-dial-turn-v1": "mtrl_bench.envs.metaworld:MT1_DIAL_TURN_V1",
    "metaworld/mt1-disassemble-v1": "mtrl_bench.envs.metaworld:MT1_DISASSEMBLE_V1",
    "metaworld/mt1-door-close-v1": "mtrl_bench.envs.metaworld:MT1_DOOR_CLOSE_V1",
    "metaworld/mt1-door-lock-v1": "mtrl_bench.envs.metaworld:MT1_DOOR_LOCK_V1",
    "metaworld/mt1-door-open-v1": "mtrl_bench.envs.metaworld:MT1_DOOR_OPEN_V1",
    "metaworld/mt1-door-unlock-v1": "mtrl_bench.envs.metaworld:MT1_DOOR_UNLOCK_V1",
    "metaworld/mt1-hand-insert-v1": "mtrl_bench.envs.metaworld:MT1_HAND_INSERT_V1",
    "metaworld/mt1-drawer-close-v1": "mtrl_bench.envs.metaworld:MT1_DRAWER_CLOSE_V1",
    "metaworld/mt1-drawer-open-v1": "mtrl_bench.envs.metaworld:MT1_DRAWER_OPEN_V1",
    "metaworld/mt1-faucet-open-v1": "mtrl_bench.envs.metaworld:MT1_FAUCET_OPEN_V1",
    "metaworld/mt1-faucet-close-v1": "mtrl_bench.envs.metaworld:MT1_FAUCET_CLOSE_V1",
    "metaworld/mt1-hammer-v1": "mtrl_bench.envs.metaworld:MT1_HAMMER_V1",
    "metaworld/mt1-handle-press-side-v1": "mtrl_bench.envs.metaworld:MT1_HANDLE_PRESS_SIDE_V1",
    "metaworld/mt1-handle-press-v1": "mtrl_bench.envs.metaworld:MT1_HANDLE_PRESS_V1",
    "metaworld/mt1-handle-pull-side-v1": "mtrl_bench.envs.metaworld:MT1_HANDLE_PULL_SIDE_V1",
    "metaworld/mt1-handle-pull-v1": "mtrl_bench.envs.metaworld:MT1_HANDLE_PULL_V1",
    "metaworld/mt1-lever-pull-v1": "mtrl_bench.envs.metaworld:MT1_LEVER_PULL_V1",
    "metaworld/mt1-pick-place-wall-v1": "mtrl_bench.envs.metaworld:MT1_PICK_PLACE_WALL_V1",
    "metaworld/mt1-pick-out-of-hole-v1": "mtrl_bench.envs.metaworld:MT1_PICK_OUT_OF_HOLE_V1",
    "metaworld/mt1-pick-place-v1": "mtrl_bench.envs.metaworld:MT1_PICK_PLACE_V1",
    "metaworld/mt1-plate-slide-v1": "mtrl_bench.envs.metaworld:MT1_PLATE_SLIDE_V1",
    "metaworld/mt1-plate-slide-side-v1": "mtrl_bench.envs.metaworld:MT1_PLATE_SLIDE_SIDE_V1",
    "metaworld/mt1-plate-slide-back-v1": "mtrl_bench.envs.metaworld:MT1_PLATE_SLIDE_BACK_V1",
    "metaworld/mt1-plate-slide-back-side-v1":
        "mtrl_bench.envs.metaworld:MT1_PLATE_SLIDE_BACK_SIDE_V1",
    "metaworld/mt1-peg-insert-side-v1": "mtrl_bench.envs.metaworld:MT1_PEG_INSERT_SIDE_V1",
    "metaworld/mt1-peg-unplug-side-v1": "mtrl_bench.envs.metaworld:MT1_PEG_UNPLUG_SIDE_V1",
    "metaworld/mt1-soccer-v1": "mtrl_bench.envs.metaworld:MT1_SOCCER_V1",
    "metaworld/mt1-stick-push-v1": "mtrl_bench.envs.metaworld:MT1_STICK_PUSH_V1",
    "metaworld/mt1-stick-pull-v1": "mtrl_bench.envs.metaworld:MT1_STICK_PULL_V1",
    "metaworld/mt1-push-v1": "mtrl_bench.envs.metaworld:MT1_PUSH_V1",
    "metaworld/mt1-push-wall-v1": "mtrl_bench.envs.metaworld:MT1_PUSH_WALL_V1",
    "metaworld/mt1-push-back-v1": "mtrl_bench.envs.metaworld:MT1_PUSH_BACK_V1",
    "metaworld/mt1-reach-v1": "mtrl_bench.envs.metaworld:MT1_REACH_V1",
    "metaworld/mt1-reach-wall-v1": "mtrl_bench.envs.metaworld:MT1_REACH_WALL_V1",
    "metaworld/mt1-shelf-place-v1": "mtrl_bench.envs.metaworld:MT1_SHELF_PLACE_V1",
    "metaworld/mt1-sweep-into-v1": "mtrl_bench.envs.metaworld:MT1_SWEEP_INTO_V1",
    "metaworld/mt1-sweep-v1": "mtrl_bench.envs.metaworld:MT1_SWEEP_V1",
    "metaworld/mt1-window-open-v1": "mtrl_bench.envs.metaworld:MT1_WINDOW_OPEN_V1",
    "metaworld/mt1-window-close-v1": "mtrl_bench.envs.metaworld:MT1_WINDOW_CLOSE_V1",
    "metaworld/mt10-sub3-v1": "mtrl_bench.envs.metaworld:MT10_SUB3_V1",
    "minigrid-jax/mt3-v1": "mtrl_bench.envs.minigrid:MT3_JAX",
    "minigrid-jax/mt5-v1": "mtrl_bench.envs.minigrid:MT5_JAX",
    "minigrid-jax/mt7-v1": "mtrl_bench.envs.minigrid:MT7_JAX",
    "minigrid/mt3-v1": "mtrl_bench.envs.minigrid:MT3",
    "minigrid/mt5-v1": "mtrl_bench.envs.minigrid:MT5",
    "minigrid/mt7-v1": "mtrl_bench.envs.minigrid:MT7",
    "point-robot/t2mir-v1": "mtrl_bench.envs.in_context:POINT_ROBOT",
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
# Meta-World ML1: one per MT1 task (same task and goals, goal hidden).
SUITES.update({k.replace("/mt1-", "/ml1-"): v.replace(":MT1_", ":ML1_")
               for k, v in list(SUITES.items()) if k.startswith("metaworld/mt1-")})  # fmt: skip

AGENTS: dict[str, str] = {
    "ad": "mtrl_bench.agents.icl_agents:AD",
    "camrl": "mtrl_bench.agents.camrl:CAMRL",
    "dpt": "mtrl_bench.agents.icl_agents:DPT",
    "independent": "mtrl_bench.agents.camrl:INDEPENDENT",
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
    "ppo": "mtrl_bench.agents.transfer_ppo:PPO",
    "ppo-context": "mtrl_bench.agents.transfer_ppo:PPO_CONTEXT",
    "random": "mtrl_bench.baselines.random_policy:SPEC",
    "sb3-ppo": "mtrl_bench.baselines.sb3:PPO_SHARED",
    "sb3-ppo-independent": "mtrl_bench.baselines.sb3:PPO_INDEPENDENT",
    "t2mir-ad": "mtrl_bench.agents.icl_agents:T2MIR_AD",
    "t2mir-dpt": "mtrl_bench.agents.icl_agents:T2MIR_DPT",
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
