"""Data shared by the JAX MiniGrid core and its layout generators.

Grids use minigrid's own cell encoding (``Grid.encode``): ``grid[x, y] = (type, color, state)``
with x the column, y the row, exactly the array minigrid's ``grid.encode()`` returns. Grids are
padded to the suite's static ``size x size`` with walls, which is also what minigrid shows for
cells outside the grid, so padding never changes an observation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

# minigrid.core.constants (3.2.0)
OBJECT = {"unseen": 0, "empty": 1, "wall": 2, "floor": 3, "door": 4, "key": 5, "ball": 6,
          "box": 7, "goal": 8, "lava": 9, "agent": 10}  # fmt: skip
COLOR = {"red": 0, "green": 1, "blue": 2, "purple": 3, "yellow": 4, "grey": 5}
DOOR_STATE = {"open": 0, "closed": 1, "locked": 2}
DIR_TO_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))  # 0: right, 1: down, 2: left, 3: up
WALL = (OBJECT["wall"], COLOR["grey"], 0)
EMPTY = (OBJECT["empty"], 0, 0)

#: Task families of the MiniGrid suites; ``TaskParams.family`` indexes this tuple.
FAMILIES = ("LavaGap", "RedBlueDoors", "Memory", "DoorKey", "DistShift", "SimpleCrossing",
            "MultiRoom")  # fmt: skip


#: MultiRoom chains longer than this are not supported (N6 is the longest registered).
MAX_ROOMS = 6
_CLASS_FAMILY = {"LavaGapEnv": "LavaGap", "RedBlueDoorEnv": "RedBlueDoors", "MemoryEnv": "Memory",
                 "DoorKeyEnv": "DoorKey", "DistShiftEnv": "DistShift",
                 "CrossingEnv": "SimpleCrossing", "MultiRoomEnv": "MultiRoom"}  # fmt: skip
# minigrid attributes that become TaskParams.arg0..arg2
_ARGS = {"DistShift": ("strip2_row",), "SimpleCrossing": ("num_crossings",),
         "MultiRoom": ("minNumRooms", "maxNumRooms", "maxRoomSize")}  # fmt: skip


class TaskParams(NamedTuple):
    """One task, as arrays (vmappable). Unused fields are 0 for a family."""

    family: jax.Array  # int32 index into FAMILIES
    width: jax.Array  # int32, minigrid env.width
    height: jax.Array  # int32, minigrid env.height
    max_steps: jax.Array  # int32, minigrid env.max_steps
    arg0: jax.Array  # int32: DistShift strip2_row; SimpleCrossing num_crossings;
    #                  MultiRoom min rooms
    arg1: jax.Array  # int32: MultiRoom max rooms
    arg2: jax.Array  # int32: MultiRoom max room size


class Layout(NamedTuple):
    """A freshly generated episode start: everything ``reset`` needs."""

    grid: jax.Array  # uint8[size, size, 3], minigrid encoding, padded with WALL
    agent_pos: jax.Array  # int32[2], (x, y)
    agent_dir: jax.Array  # int32 in 0..3
    pos_a: jax.Array  # int32[2]: Memory success_pos; RedBlueDoors red door; else (0, 0)
    pos_b: jax.Array  # int32[2]: Memory failure_pos; RedBlueDoors blue door; else (0, 0)


def task_params(env: Any) -> TaskParams:
    """``TaskParams`` of a minigrid env (wrapped or not; reset not needed). Raises
    ``ValueError`` for variants the JAX core or generators do not support."""
    u = env.unwrapped
    family = _CLASS_FAMILY.get(type(u).__name__)
    if family is None:
        raise ValueError(f"unsupported minigrid env class {type(u).__name__}")
    obstacle = getattr(getattr(u, "obstacle_type", None), "__name__", None)
    unsupported = (
        (family, obstacle) in {("SimpleCrossing", "Lava"), ("LavaGap", "Wall")}
        or (family == "Memory" and u.random_length)
        or (family == "DistShift" and (u.agent_start_pos, u.agent_start_dir) != ((1, 1), 0))
        or (family == "MultiRoom" and u.maxNumRooms > MAX_ROOMS)
    )
    if unsupported:
        raise ValueError(f"{type(u).__name__} with these arguments is not a supported task")
    args = [getattr(u, f) for f in _ARGS.get(family, ())] + [0, 0, 0]
    values = (FAMILIES.index(family), u.width, u.height, u.max_steps, *args[:3])
    return TaskParams(*(jnp.asarray(int(v), jnp.int32) for v in values))
