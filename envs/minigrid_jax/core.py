"""Pure-JAX MiniGrid dynamics and observation, step-for-step equal to minigrid 3.2.0.

Mirrored upstream code (``minigrid/``):

- ``MiniGridEnv.step`` (``minigrid_env.py``): turn, forward (``can_overlap``, goal reward
  ``_reward() = 1 - 0.9 * step_count / max_steps``, lava), pickup, drop, toggle, done, truncation
  at ``step_count >= max_steps``; ``Door.toggle`` / ``Box.toggle`` (``core/world_object.py``).
- Family overrides: ``RedBlueDoorEnv.step`` (``envs/redbluedoors.py``: the blue door opened
  after the red one wins, in the other order loses) and ``MemoryEnv.step`` (``envs/memory.py``:
  pickup acts as toggle; ``success_pos`` / ``failure_pos`` end the episode).
- ``MiniGridEnv.gen_obs`` / ``gen_obs_grid``: ``Grid.slice`` (walls outside the grid),
  ``rotate_left`` ``agent_dir + 1`` times, ``Grid.process_vis`` unless ``see_through_walls``
  (only ``DistShiftEnv`` sets it), the carried object (or nothing) on the agent's own cell, and
  ``Grid.encode(vis_mask)`` (unseen cells are 0).

Speed (batch 4096 under ``vmap`` on CPU): the 7x7 view is one gather of packed cells (``type |
color << 8 | state << 16``, one int32 per cell) at ``agent_pos + f * (6 - vy) + r * (vx - 3)``
(``f`` the facing vector, ``r`` the right vector; per-direction offset tables). ``process_vis``
runs on 7-bit row masks: each view row is two prefix fills (the left-to-right, then the
right-to-left sweep) of 3 shift-and-or steps, and the marks for the row above follow from the two
sweeps in closed form, so minigrid's cell-by-cell sweep becomes a 7-step ``scan`` of integer ops.
Family overrides are masked arithmetic on ``params.family``; a step writes one grid cell.

Not modelled (absent from the supported tasks): the contents of a box (a toggled box becomes
empty, as ``Box(contains=None)`` does upstream); actions outside 0..6 are no-ops (upstream raises).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .layout import (
    DIR_TO_VEC,
    DOOR_STATE,
    EMPTY,
    FAMILIES,
    OBJECT,
    WALL,
    Layout,
    TaskParams,
    task_params,
)

LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
VIEW = 7  # agent_view_size
#: ``State.carrying`` when nothing is carried: the encoding of an empty cell, which is exactly
#: what minigrid shows on the agent's own view cell when it carries nothing.
NOTHING = EMPTY
_RED_BLUE, _MEMORY, _DIST_SHIFT = (FAMILIES.index(f) for f in ("RedBlueDoors", "Memory",
                                                                  "DistShift"))  # fmt: skip
_OPEN, _CLOSED, _LOCKED = DOOR_STATE["open"], DOOR_STATE["closed"], DOOR_STATE["locked"]
_T = {k: np.uint8(v) for k, v in OBJECT.items()}
# View cell (vx, vy) -> world offset from the agent, per direction: f * (6 - vy) + r * (vx - 3),
# f = DIR_TO_VEC[d], r = (-f_y, f_x) (MiniGridEnv.get_view_coords inverted).
_FWD_OFF = (VIEW - 1 - np.arange(VIEW))[None, :]
_RIGHT_OFF = (np.arange(VIEW) - VIEW // 2)[:, None]
_VIEW_X = np.stack([fx * _FWD_OFF - fy * _RIGHT_OFF for fx, fy in DIR_TO_VEC]).astype(np.int32)
_VIEW_Y = np.stack([fy * _FWD_OFF + fx * _RIGHT_OFF for fx, fy in DIR_TO_VEC]).astype(np.int32)
_BITS = (1 << np.arange(VIEW)).astype(np.int32)
_ROW = (1 << VIEW) - 1


def _pack(cell: tuple[int, int, int]) -> int:
    return cell[0] | cell[1] << 8 | cell[2] << 16


class State(NamedTuple):
    """One episode's mutable state (plus the fixed Memory / RedBlueDoors cells)."""

    grid: jax.Array  # uint8[size, size, 3], minigrid encoding, x-major, padded with WALL
    agent_pos: jax.Array  # int32[2], (x, y)
    agent_dir: jax.Array  # int32 in 0..3 (0 right, 1 down, 2 left, 3 up)
    carrying: jax.Array  # uint8[3], encoding of the carried object; NOTHING if none
    step_count: jax.Array  # int32, steps taken this episode
    pos_a: jax.Array  # int32[2]: Memory success_pos; RedBlueDoors red door; else (0, 0)
    pos_b: jax.Array  # int32[2]: Memory failure_pos; RedBlueDoors blue door; else (0, 0)


def init_state(layout: Layout) -> State:
    """The state right after ``reset``: nothing carried, ``step_count`` 0."""
    return State(
        grid=jnp.asarray(layout.grid, jnp.uint8),
        agent_pos=jnp.asarray(layout.agent_pos, jnp.int32),
        agent_dir=jnp.asarray(layout.agent_dir, jnp.int32),
        carrying=jnp.asarray(NOTHING, jnp.uint8),
        step_count=jnp.zeros((), jnp.int32),
        pos_a=jnp.asarray(layout.pos_a, jnp.int32),
        pos_b=jnp.asarray(layout.pos_b, jnp.int32),
    )


def _dir_vec(d: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``DIR_TO_VEC[d]`` without a table lookup."""
    return (d == 0).astype(jnp.int32) - (d == 2), (d == 1).astype(jnp.int32) - (d == 3)


def _fill(seed: jax.Array, through: jax.Array, up: bool) -> jax.Array:
    """Marks spread from ``seed`` bits towards higher (``up``) or lower bits, passing on from
    every marked bit that is set in ``through`` (log-step prefix fill over 7 bits)."""
    g, p = seed, through
    for d in (1, 2, 4):
        if up:
            g, p = g | ((g & p) << d), p & (p >> d)
        else:
            g, p = g | ((g & p) >> d), p & (p << d)
    return g & _ROW


def _process_vis(transparent: jax.Array) -> jax.Array:
    """``Grid.process_vis(agent_pos=(3, 6))`` on a 7x7 view: bool[vx, vy] -> visibility mask.

    Row ``j`` (bits = columns ``i``): the left-to-right sweep gives ``m1`` (seed filled rightwards
    through transparent cells), the right-to-left sweep ``m2`` (``m1`` filled leftwards). A
    transparent marked cell marks the cells above it: ``i`` and ``i + 1`` in the first sweep
    (``i <= 5``, with ``m1``), ``i`` and ``i - 1`` in the second (``i >= 1``, with ``m2``).
    The rows run in a ``scan`` (not unrolled): that keeps XLA from fusing the whole chain into
    the consumer of the mask and recomputing it for every view cell (10x slower)."""

    def row(seed: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        m1 = _fill(seed, t, up=True)
        m2 = _fill(m1, t, up=False)
        a, b = m1 & t, m2 & t
        return (b & (_ROW - 1)) | (a & 1) | ((a << 1) & _ROW) | (b >> 1), m2

    rows = jnp.sum(transparent.astype(jnp.int32) * _BITS[:, None], axis=0)  # [vy]
    _, mask = jax.lax.scan(row, jnp.int32(1 << (VIEW // 2)), rows[::-1])
    return ((mask[::-1][None, :] >> np.arange(VIEW, dtype=np.int32)[:, None]) & 1).astype(bool)


def observe(state: State, params: TaskParams) -> jax.Array:
    """``env.gen_obs()["image"]``: uint8[7, 7, 3] indexed ``[vx, vy]``, the agent at (3, 6).

    ``params`` is needed because ``DistShiftEnv`` sees through walls (no occlusion). Cells are
    handled packed as one int32 ``type | color << 8 | state << 16`` (one gather per cell)."""
    grid = state.grid.astype(jnp.int32)
    size = grid.shape[0]
    packed_grid = (grid[..., 0] | (grid[..., 1] << 8) | (grid[..., 2] << 16)).reshape(-1)
    x = state.agent_pos[0] + jnp.asarray(_VIEW_X)[state.agent_dir]
    y = state.agent_pos[1] + jnp.asarray(_VIEW_Y)[state.agent_dir]
    inside = (x.astype(jnp.uint32) < size) & (y.astype(jnp.uint32) < size)
    index = jnp.where(inside, x * size + y, 0).astype(jnp.uint32)  # unsigned: no wrap-around
    cells = jnp.where(inside, packed_grid[index], _pack(WALL))
    kind, st = cells & 255, cells >> 16
    opaque = (kind == _T["wall"]) | ((kind == _T["door"]) & (st != _OPEN))
    vis = _process_vis(~opaque) | (params.family == _DIST_SHIFT)
    cells = jnp.where(vis, cells, 0)
    image = ((cells[..., None] >> np.array([0, 8, 16], np.int32)) & 255).astype(jnp.uint8)
    return image.at[VIEW // 2, VIEW - 1].set(state.carrying)


def step(
    state: State, action: jax.Array, params: TaskParams
) -> tuple[State, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``env.step(action)`` -> ``(state, reward, terminated, truncated, success)``."""
    family = params.family
    a = jnp.asarray(action, jnp.int32)
    a = jnp.where((family == _MEMORY) & (a == PICKUP), TOGGLE, a)  # MemoryEnv.step
    grid, carrying, d = state.grid, state.carrying, state.agent_dir
    fx, fy = _dir_vec(d)
    fwd = state.agent_pos + jnp.stack([fx, fy])
    cell = grid[fwd[0], fwd[1]]
    kind, color, st = cell[0], cell[1], cell[2]
    is_door = kind == _T["door"]
    holding = carrying[0] != NOTHING[0]

    overlap = (kind == _T["empty"]) | (kind == _T["goal"]) | (kind == _T["floor"])
    overlap = overlap | (kind == _T["lava"]) | (is_door & (st == _OPEN))
    forward = a == FORWARD
    pos = jnp.where(forward & overlap, fwd, state.agent_pos)
    pickable = (kind == _T["key"]) | (kind == _T["ball"]) | (kind == _T["box"])
    pick = (a == PICKUP) & pickable & ~holding
    drop = (a == DROP) & (kind == _T["empty"]) & holding
    toggle = a == TOGGLE
    # Door.toggle: a locked door opens only with a key of its colour; else open <-> closed.
    key_fits = (carrying[0] == _T["key"]) & (carrying[1] == color)
    door_st = jnp.where(st == _LOCKED, jnp.where(key_fits, _OPEN, _LOCKED),
                        jnp.where(st == _OPEN, _CLOSED, _OPEN)).astype(jnp.uint8)  # fmt: skip
    toggled = jnp.stack([kind, color, door_st])
    empty = jnp.asarray(EMPTY, jnp.uint8)
    new_cell = jnp.where(toggle & is_door, toggled, cell)
    new_cell = jnp.where(drop, carrying, new_cell)
    new_cell = jnp.where(pick | (toggle & (kind == _T["box"])), empty, new_cell)
    grid = grid.at[fwd[0], fwd[1]].set(new_cell)
    carrying = jnp.where(pick, cell, jnp.where(drop, jnp.asarray(NOTHING, jnp.uint8), carrying))
    d = jnp.where(a == LEFT, (d + 3) % 4, jnp.where(a == RIGHT, (d + 1) % 4, d))

    step_count = state.step_count + 1
    win = 1.0 - 0.9 * (step_count.astype(jnp.float32) / params.max_steps.astype(jnp.float32))
    goal = forward & (kind == _T["goal"])
    terminated = goal | (forward & (kind == _T["lava"]))
    reward = jnp.where(goal, win, 0.0)

    # MemoryEnv.step: standing on success_pos (pos_a) wins, on failure_pos (pos_b) loses.
    memory = family == _MEMORY
    mem_win = memory & jnp.all(pos == state.pos_a)
    mem_lose = memory & jnp.all(pos == state.pos_b)
    reward = jnp.where(mem_win, win, jnp.where(mem_lose, 0.0, reward))
    terminated = terminated | mem_win | mem_lose

    # RedBlueDoorEnv.step: door states before and after (only the forward cell can change).
    red_blue = family == _RED_BLUE
    red_before = state.grid[state.pos_a[0], state.pos_a[1], 2] == _OPEN
    blue_before = state.grid[state.pos_b[0], state.pos_b[1], 2] == _OPEN
    red_after = jnp.where(jnp.all(fwd == state.pos_a), new_cell[2] == _OPEN, red_before)
    blue_after = jnp.where(jnp.all(fwd == state.pos_b), new_cell[2] == _OPEN, blue_before)
    rb_end = red_blue & (blue_after | (red_after & blue_before))
    reward = jnp.where(rb_end, jnp.where(blue_after & red_before, win, 0.0), reward)
    terminated = terminated | rb_end

    reward = reward.astype(jnp.float32)
    truncated = step_count >= params.max_steps
    new = State(grid, pos, d, carrying, step_count, state.pos_a, state.pos_b)
    return new, reward, terminated, truncated, terminated & (reward > 0)


def from_minigrid(env: Any, size: int) -> tuple[Layout, TaskParams]:
    """A reset minigrid env (wrapped or not) as a ``Layout`` padded with walls to ``size x size``,
    and its params. The agent pose is read as it is now, so a test may edit it first; the
    carried object is not part of a layout (an episode starts empty-handed)."""
    u = env.unwrapped
    params = task_params(u)
    if max(u.width, u.height) > size:
        raise ValueError(f"{u.width}x{u.height} grid does not fit size {size}")
    grid = np.empty((size, size, 3), np.uint8)
    grid[:] = WALL
    grid[: u.width, : u.height] = u.grid.encode()
    pos_a = pos_b = (0, 0)
    if params.family == _MEMORY:
        pos_a, pos_b = u.success_pos, u.failure_pos
    elif params.family == _RED_BLUE:  # doors are set with grid.set, so cur_pos is None
        cells = [u.grid.get(x, y) for x in range(u.width) for y in range(u.height)]
        where = {id(c): divmod(i, u.height) for i, c in enumerate(cells) if c is not None}
        pos_a, pos_b = where[id(u.red_door)], where[id(u.blue_door)]
    layout = Layout(
        grid=jnp.asarray(grid),
        agent_pos=jnp.asarray(np.asarray(u.agent_pos, np.int64), jnp.int32),
        agent_dir=jnp.asarray(int(u.agent_dir), jnp.int32),
        pos_a=jnp.asarray(np.asarray(pos_a, np.int64), jnp.int32),
        pos_b=jnp.asarray(np.asarray(pos_b, np.int64), jnp.int32),
    )
    return layout, params
