"""Tests for the MiniGrid shortest-path oracle (envs/minigrid_oracle.py)."""

from __future__ import annotations

import statistics

import gymnasium
import pytest

from mtrl_bench.envs import minigrid_oracle as oracle

REPLAY_ENVS = [
    "MiniGrid-DoorKey-6x6-v0",
    "MiniGrid-LavaGapS7-v0",
    "MiniGrid-RedBlueDoors-6x6-v0",
    "MiniGrid-MemoryS11-v0",
    "MiniGrid-DistShift1-v0",
    "MiniGrid-SimpleCrossingS9N2-v0",
    "MiniGrid-MultiRoom-N2-S4-v0",
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("env_id", REPLAY_ENVS)
def test_plan_replays_to_success(env_id: str, seed: int) -> None:
    env = gymnasium.make(env_id)
    env.reset(seed=seed)
    plan = oracle.solve(env)
    assert plan and all(0 <= a <= 6 for a in plan)

    replay = gymnasium.make(env_id)
    replay.reset(seed=seed)
    max_steps = replay.unwrapped.max_steps
    for i, action in enumerate(plan):
        _, reward, terminated, truncated, _ = replay.step(action)
        if i < len(plan) - 1:
            assert not terminated and not truncated, f"ended early at step {i + 1}"
            assert reward == 0
    assert terminated
    assert reward == pytest.approx(1 - 0.9 * len(plan) / max_steps)


def test_solve_does_not_mutate_env() -> None:
    env = gymnasium.make("MiniGrid-DoorKey-6x6-v0")
    env.reset(seed=3)
    before = oracle.state_key(env.unwrapped)
    oracle.solve(env)
    assert oracle.state_key(env.unwrapped) == before
    assert env.unwrapped.step_count == 0


def test_empty_5x5_optimal_is_5() -> None:
    # EmptyEnv: agent at (1, 1) facing right (dir 0), goal at (3, 3).
    # Four moves are needed plus at least one turn: F, F, right, F, F.
    env = gymnasium.make("MiniGrid-Empty-5x5-v0")
    env.reset(seed=0)
    assert tuple(env.unwrapped.agent_pos) == (1, 1) and env.unwrapped.agent_dir == 0
    plan = oracle.solve(env)
    assert len(plan) == 5
    assert oracle.optimal_steps("MiniGrid-Empty-5x5-v0", [0, 1, 2]) == [5, 5, 5]


def test_doorkey_plan_uses_key_and_door() -> None:
    # Carrying is in the state key: DoorKey is only solvable via pickup + toggle.
    env = gymnasium.make("MiniGrid-DoorKey-6x6-v0")
    env.reset(seed=0)
    plan = oracle.solve(env)
    assert 3 in plan and 5 in plan and 6 not in plan


def test_truncation_respected() -> None:
    # With a step limit below the optimum there is no plan.
    env = gymnasium.make("MiniGrid-Empty-5x5-v0", max_steps=4)
    env.reset(seed=0)
    with pytest.raises(oracle.OracleError):
        oracle.solve(env)
    env = gymnasium.make("MiniGrid-Empty-5x5-v0", max_steps=5)
    env.reset(seed=0)
    assert len(oracle.solve(env)) == 5


def test_node_budget_error() -> None:
    env = gymnasium.make("MiniGrid-DoorKey-6x6-v0")
    env.reset(seed=0)
    with pytest.raises(oracle.OracleError, match="max_nodes"):
        oracle.solve(env, max_nodes=10)


def _held_out_normaliser_matches_oracle(env_id):
    from mtrl_bench.envs.minigrid import _HELD_OUT

    (max_steps, optimal) = next((m, o) for name, m, o in _HELD_OUT.values() if name == env_id)
    steps = oracle.optimal_steps(env_id, range(20))
    assert statistics.median(steps) == optimal
    assert oracle._max_steps(env_id) == max_steps


@pytest.mark.parametrize(
    "env_id", ["MiniGrid-LavaGapS6-v0", "MiniGrid-MemoryS13-v0", "MiniGrid-DistShift2-v0"]
)
def test_held_out_normaliser_is_the_oracle_median(env_id):
    _held_out_normaliser_matches_oracle(env_id)


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_id",
    [
        "MiniGrid-RedBlueDoors-8x8-v0", "MiniGrid-DoorKey-8x8-v0",
        "MiniGrid-SimpleCrossingS9N3-v0", "MiniGrid-MultiRoom-N4-S5-v1",
    ],
)  # fmt: skip
def test_held_out_normaliser_is_the_oracle_median_slow(env_id):
    _held_out_normaliser_matches_oracle(env_id)
