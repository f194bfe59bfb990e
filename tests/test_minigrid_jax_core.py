"""The pure-JAX MiniGrid core equals minigrid 3.2.0 step for step (docs/design.md, "Tests and
benchmarks": JAX backends equal to the reference backends on fixed seeds and actions).

Every comparison resets the real minigrid env, converts it with ``from_minigrid`` and steps both
in lockstep with jitted functions (compiled once for the whole file: one padded grid size, one
padded action length): the observation (uint8, exact), terminated, truncated, success, the full
grid, agent pose and carried object at every step, and rewards to 1e-6 (minigrid uses float64).
"""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from minigrid.core.world_object import Key

from mtrl_bench.envs import minigrid as minigrid_suites
from mtrl_bench.envs.minigrid_jax import core
from mtrl_bench.envs.minigrid_jax.env import (
    MiniGridJax,
    make_suite_env,
    reset_from_layout,
    step_autoreset,
)
from mtrl_bench.envs.minigrid_jax.layout import FAMILIES, OBJECT
from mtrl_bench.envs.minigrid_oracle import solve
from mtrl_bench.jax_env import JaxEnv, stack_params

TASKS = [
    "MiniGrid-LavaGapS7-v0", "MiniGrid-LavaGapS6-v0", "MiniGrid-RedBlueDoors-6x6-v0",
    "MiniGrid-RedBlueDoors-8x8-v0", "MiniGrid-MemoryS11-v0", "MiniGrid-MemoryS13-v0",
    "MiniGrid-DoorKey-6x6-v0", "MiniGrid-DoorKey-8x8-v0", "MiniGrid-DistShift1-v0",
    "MiniGrid-DistShift2-v0", "MiniGrid-SimpleCrossingS9N2-v0", "MiniGrid-SimpleCrossingS9N3-v0",
    "MiniGrid-MultiRoom-N2-S4-v0", "MiniGrid-MultiRoom-N4-S5-v1",
]  # fmt: skip
SIZE = 25  # the largest task (MultiRoom is 25x25): one compiled shape for every test
HORIZON = 300  # actions are padded to this length (done = no-op) so the rollout compiles once
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)


def _rollout_impl(state: core.State, actions: jax.Array, params: core.TaskParams):
    def body(s, a):
        s, reward, terminated, truncated, success = core.step(s, a, params)
        out = (core.observe(s, params), reward, terminated, truncated, success, s.grid,
               s.agent_pos, s.agent_dir, s.carrying)  # fmt: skip
        return s, out

    return jax.lax.scan(body, state, actions)[1]


_rollout = jax.jit(_rollout_impl)
_observe = jax.jit(core.observe)


def _carried(u) -> tuple[int, ...]:
    return tuple(u.carrying.encode()) if u.carrying is not None else core.NOTHING


def lockstep(env, actions, state: core.State | None = None, params=None) -> list[tuple]:
    """Step the (reset, possibly edited) minigrid ``env`` and the JAX core with ``actions``,
    asserting equality after every step, until the episode ends. Returns minigrid's
    ``(reward, terminated, truncated)`` per step."""
    u = env.unwrapped
    if state is None:
        layout, params = core.from_minigrid(env, SIZE)
        state = core.init_state(layout)
    np.testing.assert_array_equal(np.asarray(_observe(state, params)), u.gen_obs()["image"])
    padded = np.full(HORIZON, DONE, np.int32)
    padded[: len(actions)] = actions
    obs, rew, term, trunc, succ, grid, pos, d, carry = jax.device_get(
        _rollout(state, jnp.asarray(padded), params)
    )
    history = []
    for t, action in enumerate(actions):
        o, r, te, tr, _ = u.step(int(action))
        where = f"{type(u).__name__} step {t} action {action}"
        np.testing.assert_array_equal(obs[t], o["image"], err_msg=where)
        assert (bool(term[t]), bool(trunc[t])) == (te, tr), where
        assert abs(float(rew[t]) - r) < 1e-6, (where, float(rew[t]), r)
        assert bool(succ[t]) == (te and r > 0), where
        np.testing.assert_array_equal(grid[t, : u.width, : u.height], u.grid.encode(), where)
        assert tuple(pos[t]) == tuple(int(v) for v in u.agent_pos) and d[t] == u.agent_dir, where
        assert tuple(carry[t]) == _carried(u), where
        history.append((r, te, tr))
        if te or tr:
            break
    return history


def _reset(env_id: str, seed: int, **kwargs):
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("env_id", TASKS)
def test_random_actions_match_minigrid(env_id: str, seed: int) -> None:
    actions = np.random.default_rng(seed).integers(0, 7, HORIZON)
    lockstep(_reset(env_id, seed), actions)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("env_id", TASKS)
def test_oracle_plan_matches_minigrid_and_succeeds(env_id: str, seed: int) -> None:
    env = _reset(env_id, seed)
    plan = solve(env)
    history = lockstep(env, plan)
    assert len(history) == len(plan)
    reward, terminated, _ = history[-1]
    assert terminated and reward > 0


def test_truncation_at_max_steps() -> None:
    env = _reset("MiniGrid-MultiRoom-N2-S4-v0", 0)
    assert env.unwrapped.max_steps == 40
    actions = np.random.default_rng(0).choice([LEFT, RIGHT, PICKUP, DROP, TOGGLE, DONE], 60)
    history = lockstep(env, actions)  # no forward: cannot terminate
    assert len(history) == 40 and history[-1][2] and not history[-1][1]


def test_modified_max_steps_truncation_and_reward() -> None:
    env = _reset("MiniGrid-MemoryS11-v0", 1, max_steps=3)
    history = lockstep(env, [LEFT, LEFT, LEFT, LEFT])
    assert [h[2] for h in history] == [False, False, True]
    env = _reset("MiniGrid-DoorKey-6x6-v0", 0, max_steps=50)  # reward uses this max_steps
    plan = solve(env)
    history = lockstep(env, plan)
    assert history[-1][0] == pytest.approx(1 - 0.9 * len(plan) / 50)


def test_lava_ends_the_episode_without_reward() -> None:
    env = _reset("MiniGrid-DistShift1-v0", 0)  # agent (1, 1) facing right, lava at (3, 1)
    assert env.unwrapped.grid.get(3, 1).type == "lava"
    assert lockstep(env, [FORWARD, FORWARD]) == [(0, False, False), (0, True, False)]


def _face_door(env):
    """Put the DoorKey agent just left of the locked door, facing it."""
    u = env.unwrapped
    door = next((x, y) for x in range(u.width) for y in range(u.height)
                if u.grid.get(x, y) is not None and u.grid.get(x, y).type == "door")  # fmt: skip
    u.grid.set(door[0] - 1, door[1], None)  # the key may lie there
    u.agent_pos, u.agent_dir = (door[0] - 1, door[1]), 0
    return door


@pytest.mark.parametrize("key_color", [None, "red", "yellow"])
def test_locked_door_opens_only_with_its_key(key_color: str | None) -> None:
    env = _reset("MiniGrid-DoorKey-8x8-v0", 0)
    door = _face_door(env)
    layout, params = core.from_minigrid(env, SIZE)
    state = core.init_state(layout)
    if key_color is not None:
        env.unwrapped.carrying = Key(key_color)
        state = state._replace(carrying=jnp.asarray(Key(key_color).encode(), jnp.uint8))
    lockstep(env, [TOGGLE, TOGGLE, FORWARD, TOGGLE], state, params)
    door_state = env.unwrapped.grid.get(*door).encode()[2]
    assert door_state == (0 if key_color == "yellow" else 2)  # opened, toggled shut, reopened


def test_pickup_and_drop_of_the_key() -> None:
    env = _reset("MiniGrid-DoorKey-6x6-v0", 0)
    plan = solve(env)
    k = plan.index(PICKUP)
    actions = [*plan[: k + 1], PICKUP, DROP, DROP, PICKUP, LEFT, DROP, LEFT, LEFT, DROP, FORWARD]
    lockstep(env, actions)
    u = env.unwrapped
    assert u.carrying is None and sum(
        u.grid.get(x, y) is not None and u.grid.get(x, y).type == "key"
        for x in range(u.width) for y in range(u.height)
    ) == 1  # fmt: skip


def test_red_blue_doors_blue_first_fails() -> None:
    env = _reset("MiniGrid-RedBlueDoors-6x6-v0", 0)
    layout, _ = core.from_minigrid(env, SIZE)
    blue = tuple(int(v) for v in layout.pos_b)
    u = env.unwrapped
    assert u.grid.get(*blue) is u.blue_door
    u.agent_pos, u.agent_dir = (blue[0] - 1, blue[1]), 0
    history = lockstep(env, [TOGGLE])
    assert history == [(0, True, False)]


def test_memory_wrong_object_fails_and_pickup_acts_as_toggle() -> None:
    env = _reset("MiniGrid-MemoryS11-v0", 0)
    u = env.unwrapped
    x, mid = int(u.agent_pos[0]), u.height // 2
    # walk to the start-room object (1, mid - 1), try to pick it up (a toggle: nothing happens)
    actions = [LEFT, LEFT, *[FORWARD] * (x - 1), RIGHT, PICKUP, PICKUP, RIGHT]
    # then to the end of the hallway and onto the failure cell
    actions += [*[FORWARD] * (u.width - 3), LEFT if u.failure_pos[1] < mid else RIGHT, FORWARD]
    history = lockstep(env, actions)
    assert len(history) == len(actions) and history[-1] == (0, True, False)
    assert u.carrying is None and tuple(u.agent_pos) == u.failure_pos


def test_vmap_mixed_tasks_equals_single_steps() -> None:
    names = ["MiniGrid-DoorKey-6x6-v0", "MiniGrid-MemoryS11-v0", "MiniGrid-RedBlueDoors-8x8-v0"]
    converted = [core.from_minigrid(_reset(n, 3), SIZE) for n in names]
    states = [core.init_state(layout) for layout, _ in converted]
    params = [p for _, p in converted]

    def step_obs(state, action, p):
        state, *rest = core.step(state, action, p)
        return state, core.observe(state, p), *rest

    batched, single = jax.jit(jax.vmap(step_obs)), jax.jit(step_obs)
    stack = lambda *xs: jnp.stack(xs)  # noqa: E731
    bstate, bparams = jax.tree.map(stack, *states), jax.tree.map(stack, *params)
    actions = np.random.default_rng(3).integers(0, 7, (40, 3))
    for row in actions:
        bstate, *bout = batched(bstate, jnp.asarray(row), bparams)
        for i in range(3):
            states[i], *out = single(states[i], jnp.asarray(row[i]), params[i])
            for b, s in zip(jax.tree.leaves((bstate, bout)), jax.tree.leaves((states[i], out)),
                            strict=True):  # fmt: skip
                np.testing.assert_array_equal(np.asarray(b)[i], np.asarray(s))


def test_same_step_autoreset() -> None:
    env_id = "MiniGrid-LavaGapS7-v0"
    env = _reset(env_id, 0)
    plan = solve(env)
    layout, params = core.from_minigrid(env, SIZE)
    next_env = _reset(env_id, 1)
    reset_obs, reset_state = jax.jit(reset_from_layout)(
        core.from_minigrid(next_env, SIZE)[0], params
    )
    np.testing.assert_array_equal(np.asarray(reset_obs), next_env.unwrapped.gen_obs()["image"])
    autostep = jax.jit(step_autoreset)
    state = core.init_state(layout)
    for t, action in enumerate(plan):
        obs, state, reward, terminated, truncated, info = autostep(
            state, jnp.int32(action), params, reset_obs, reset_state
        )
        o, r, te, tr, _ = env.step(action)
        np.testing.assert_array_equal(np.asarray(info["final_obs"]), o["image"])
        assert (bool(terminated), bool(truncated), bool(info["success"])) == (te, tr, te and r > 0)
        assert abs(float(reward) - r) < 1e-6
        if t < len(plan) - 1:  # not done: obs is the step's obs, the episode goes on
            np.testing.assert_array_equal(np.asarray(obs), o["image"])
            assert int(state.step_count) == t + 1
    assert te and r > 0  # the terminal step returned the next episode's obs and state
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(reset_obs))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(reset_state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_task_params_and_suite_env() -> None:
    env = make_suite_env(minigrid_suites.MT7)
    assert isinstance(env, JaxEnv) and env.size == 25
    assert env.observation_space == gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(7)
    by_name = {t.name: env.params(t) for t in minigrid_suites.MT7.tasks}
    expected = {  # family, width, height, max_steps, arg0, arg1, arg2
        "MiniGrid-RedBlueDoors-8x8-v0": ("RedBlueDoors", 16, 8, 1280, 0, 0, 0),
        "MiniGrid-DistShift2-v0": ("DistShift", 9, 7, 252, 5, 0, 0),
        "MiniGrid-SimpleCrossingS9N3-v0": ("SimpleCrossing", 9, 9, 324, 3, 0, 0),
        "MiniGrid-MultiRoom-N4-S5-v1": ("MultiRoom", 25, 25, 80, 4, 4, 5),
        "MiniGrid-MemoryS11-v0": ("Memory", 11, 11, 605, 0, 0, 0),
    }
    for name, (family, *values) in expected.items():
        p = by_name[name]
        assert (FAMILIES[int(p.family)], *map(int, p[1:])) == (family, *values)
    stacked = stack_params(env, minigrid_suites.MT7.tasks)
    assert stacked.family.shape == (14,) and stacked.family.dtype == jnp.int32
    assert MiniGridJax(minigrid_suites.MT3.split_tasks("train")).size == 12
    with pytest.raises(ValueError, match="not a supported task"):
        core.task_params(gym.make("MiniGrid-LavaCrossingS9N1-v0"))
    wrapped = minigrid_suites.make_env(minigrid_suites.MT3.tasks[0], minigrid_suites.MT3)
    wrapped.reset(seed=0)
    layout, _ = core.from_minigrid(wrapped, 7)
    assert layout.grid.shape == (7, 7, 3) and int(layout.grid[5, 5, 0]) == OBJECT["goal"]
