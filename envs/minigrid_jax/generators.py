"""Seeded MiniGrid layout generators in pure JAX (``jit`` + ``vmap``).

``generate(key, params, size)`` samples an episode start of the task ``params`` from the same
distribution as minigrid 3.2.0's ``_gen_grid`` of its family (not the same random stream).
minigrid's ``place_obj``/``place_agent`` rejection-sample uniformly among the empty cells of a
rectangle (never the agent's cell); here: the k-th masked cell for a uniform k. Randomness is
a few ``jax.random.bits`` words per layout (short compiles, fast); integers are ``word % span``
or mixed-radix digits of one word (relative bias below 1e-5, far under what a test can see).

Families (``layout.FAMILIES``) and what is random, as in minigrid:

- LavaGap: gap column in [2, w-2), gap row in [1, h-1); agent (1, 1) facing right.
- RedBlueDoors: agent uniform in the inner room, random direction; red / blue door rows
  uniform in [1, s-1) on the room's left / right wall (closed). ``pos_a``/``pos_b``: the doors.
- Memory (``random_length=False`` only): agent column uniform in [1, w-3], facing right; the
  start-room object (key or ball) and the order of the two end objects are fair coins.
  ``pos_a``/``pos_b``: success / failure cell.
- DoorKey: split column in [2, w-2), agent uniform left of it (random direction), locked
  yellow door row in [1, h-2), yellow key uniform left of the split, not on the agent.
- DistShift: fixed (lava strips on rows 1 and ``strip2_row``).
- SimpleCrossing (wall obstacles): a uniform ``num_crossings``-subset of the candidate rivers,
  a uniform ordering of the path's crossings, one uniform opening per crossing.
- MultiRoom (at most ``MAX_ROOMS`` rooms): the chain of ``MultiRoomEnv._placeRoom`` (8 tries
  per next room, no backtracking), attempts repeated until one has the drawn number of rooms;
  door colours differ from the previous door's; agent / goal uniform in the first / last room.
  Attempts run ``_ATTEMPTS`` at a time in a ``while_loop`` of at most ``_MAX_ROUNDS`` rounds:
  exact unless all 1024 fail (probability < 1e-100 for every registered MultiRoom id); then
  the longest chain is kept. As in minigrid, cells outside the rooms are EMPTY (no border).

Grids are padded with ``WALL`` to the static ``size x size`` (at least the task's width, height).
"""

from __future__ import annotations

import functools

import gymnasium
import jax
import jax.numpy as jnp

from . import layout
from .layout import (
    COLOR,
    DOOR_STATE,
    EMPTY,
    FAMILIES,
    MAX_ROOMS,
    OBJECT,
    WALL,
    Layout,
    TaskParams,
)

__all__ = ["MAX_ROOMS", "generate", "task_params"]

_ATTEMPTS = 2  # MultiRoom attempts drawn in parallel per round (2: fastest at batch 4096)
_MAX_ROUNDS = 512
_GOAL = (OBJECT["goal"], COLOR["green"], 0)
_LAVA = (OBJECT["lava"], COLOR["red"], 0)

Array = jax.Array


def task_params(env_id: str) -> TaskParams:
    """``TaskParams`` of a registered MiniGrid id (raises ``ValueError`` if unsupported)."""
    env = gymnasium.make(env_id)  # attributes hold the kwargs with their defaults
    try:
        return layout.task_params(env)
    except ValueError as err:
        raise ValueError(f"{env_id}: {err}") from None
    finally:
        env.close()


# ----------------------------------------------------------------------------- helpers
def _cells(size: int) -> tuple[Array, Array]:
    """Column and row index of every cell, each ``int32[size, size]`` indexed ``[x, y]``."""
    return jnp.meshgrid(jnp.arange(size), jnp.arange(size), indexing="ij")


def _fill(grid: Array, mask: Array, obj: tuple) -> Array:
    return jnp.where(mask[..., None], jnp.asarray(obj, jnp.uint8), grid)


def _put(grid: Array, pos: tuple, obj: tuple) -> Array:
    return grid.at[pos[0], pos[1]].set(jnp.asarray(obj, jnp.uint8))


def _walled(size: int, w: Array, h: Array) -> Array:
    """``wall_rect(0, 0, w, h)`` on an empty grid, padded with walls."""
    xs, ys = _cells(size)
    wall = (xs <= 0) | (ys <= 0) | (xs >= w - 1) | (ys >= h - 1)
    return _fill(jnp.asarray(EMPTY, jnp.uint8), wall, WALL)  # broadcasts to [size, size, 3]


def _free(grid: Array, x0: Array, y0: Array, w: Array, h: Array) -> Array:
    """Cells ``place_obj(top=(x0, y0), size=(w, h))`` may pick, but for the agent's cell."""
    xs, ys = _cells(grid.shape[0])
    inside = (xs >= x0) & (xs < x0 + w) & (ys >= y0) & (ys < y0 + h)
    return inside & (grid[..., 0] == EMPTY[0])


def _digit(word: Array, lo: object, hi: object) -> tuple[Array, Array]:
    """A uniform int in [lo, hi) from uint32 ``word``, and the rest of the word for the next
    digit (mixed radix: digits of one word are independent up to a bias prod(spans) / 2**32)."""
    span = jnp.maximum(hi - lo, 1).astype(jnp.uint32)
    return lo + (word % span).astype(jnp.int32), word // span


def _ints(word: Array, lo: object, hi: object) -> Array:
    return _digit(word, lo, hi)[0]


def _sample_cell(word: Array, mask: Array) -> Array:
    """Uniform ``(x, y)`` among the true cells of ``mask``: the k-th one for a uniform k
    (column, then row: two short cumsums are much faster than one over all cells)."""
    per_col = jnp.sum(mask, axis=1, dtype=jnp.int32)
    upto = jnp.cumsum(per_col)
    k = _ints(word, 0, upto[-1])
    x = jnp.argmax(upto > k)
    y = jnp.argmax(jnp.cumsum(mask[x], dtype=jnp.int32) > k - upto[x] + per_col[x])
    return jnp.stack([x, y]).astype(jnp.int32)


def _layout(grid: Array, pos: object, d: object, a: object = (0, 0), b: object = (0, 0)) -> Layout:
    vec = lambda v: jnp.stack(jnp.broadcast_arrays(*v)).astype(jnp.int32)  # noqa: E731
    return Layout(grid.astype(jnp.uint8), vec(pos), jnp.asarray(d, jnp.int32), vec(a), vec(b))


# ----------------------------------------------------------------------------- families
def _lava_gap(key: Array, p: TaskParams, size: int) -> Layout:
    w, h = p.width, p.height
    b = jax.random.bits(key, (2,))
    gx, gy = _ints(b[0], 2, w - 2), _ints(b[1], 1, h - 1)
    xs, ys = _cells(size)
    grid = _fill(_walled(size, w, h), (xs == gx) & (ys >= 1) & (ys <= h - 2) & (ys != gy), _LAVA)
    return _layout(_put(grid, (w - 2, h - 2), _GOAL), (1, 1), 0)


def _red_blue_doors(key: Array, p: TaskParams, size: int) -> Layout:
    s = p.height  # width is 2 * s; the inner room is wall_rect(s // 2, 0, s, s)
    x0, x1 = s // 2, s // 2 + s - 1
    b = jax.random.bits(key, (4,))
    xs, _ = _cells(size)
    grid = _fill(_walled(size, p.width, s), (xs == x0) | (xs == x1), WALL)
    agent = _sample_cell(b[3], _free(grid, x0, 0, s, s))
    ry, by = _ints(b[1], 1, s - 1), _ints(b[2], 1, s - 1)
    closed = DOOR_STATE["closed"]
    grid = _put(grid, (x0, ry), (OBJECT["door"], COLOR["red"], closed))
    grid = _put(grid, (x1, by), (OBJECT["door"], COLOR["blue"], closed))
    return _layout(grid, agent, _ints(b[0], 0, 4), (x0, ry), (x1, by))


def _memory(key: Array, p: TaskParams, size: int) -> Layout:
    w, h = p.width, p.height
    end, mid = w - 3, h // 2  # hallway_end (random_length=False); the hallway row
    up, lo = mid - 2, mid + 2  # upper_room_wall, lower_room_wall
    b = jax.random.bits(key, (3,))
    xs, ys = _cells(size)
    walls = ((xs >= 1) & (xs <= 4) & ((ys == up) | (ys == lo))) | (
        (xs >= 4) & (xs < end) & ((ys == up + 1) | (ys == lo - 1))  # start room side + hallway
    )
    walls |= ((xs == end) & (ys != mid)) | (xs == end + 2)
    grid = _fill(_walled(size, w, h), walls & (ys < h), WALL)
    key_t, ball_t, green = OBJECT["key"], OBJECT["ball"], COLOR["green"]
    t_start = jnp.where(_ints(b[1], 0, 2) == 0, key_t, ball_t)  # _rand_elem([Key, Ball])
    first_ball = _ints(b[2], 0, 2) == 0  # _rand_elem([[Ball, Key], [Key, Ball]])
    t0, t1 = jnp.where(first_ball, ball_t, key_t), jnp.where(first_ball, key_t, ball_t)
    grid = _put(grid, (1, mid - 1), (t_start, green, 0))
    grid = _put(grid, (end + 1, mid - 2), (t0, green, 0))
    grid = _put(grid, (end + 1, mid + 2), (t1, green, 0))
    dy = jnp.where(t_start == t0, -1, 1)  # success next to the matching object
    agent = (_ints(b[0], 1, end + 1), mid)
    return _layout(grid, agent, 0, (end + 1, mid + dy), (end + 1, mid - dy))


def _door_key(key: Array, p: TaskParams, size: int) -> Layout:
    w, h = p.width, p.height
    b = jax.random.bits(key, (5,))
    split = _ints(b[0], 2, w - 2)
    xs, ys = _cells(size)
    grid = _put(_walled(size, w, h), (w - 2, h - 2), _GOAL)
    grid = _fill(grid, (xs == split) & (ys < h), WALL)
    agent = _sample_cell(b[3], _free(grid, 0, 0, split, h))
    door_y = _ints(b[1], 1, h - 2)
    grid = _put(grid, (split, door_y), (OBJECT["door"], COLOR["yellow"], DOOR_STATE["locked"]))
    free = _free(grid, 0, 0, split, h) & ~((xs == agent[0]) & (ys == agent[1]))
    grid = _put(grid, _sample_cell(b[4], free), (OBJECT["key"], COLOR["yellow"], 0))
    return _layout(grid, agent, _ints(b[2], 0, 4))


def _dist_shift(key: Array, p: TaskParams, size: int) -> Layout:
    del key  # fixed layout
    w, h = p.width, p.height
    xs, ys = _cells(size)
    lava = (xs >= 3) & (xs <= w - 4) & ((ys == 1) | (ys == p.arg0))
    grid = _put(_fill(_walled(size, w, h), lava, _LAVA), (w - 2, 1), _GOAL)
    return _layout(grid, (1, 1), 0)


def _simple_crossing(key: Array, p: TaskParams, size: int) -> Layout:
    w, h, n = p.width, p.height, p.arg0
    cand = jnp.arange(2, max(size - 2, 3), 2)  # static candidate river coordinates
    c = cand.shape[0]
    b = jax.random.bits(key, (6 * c,))
    pos = jnp.concatenate([cand, cand])  # [vertical rivers (x), horizontal rivers (y)]
    vert = jnp.arange(2 * c) < c
    valid = jnp.where(vert, pos < h - 2, pos < w - 2)  # range(2, height-2, 2), range(2, width-2, 2)
    last = jnp.uint32(0xFFFFFFFF)  # sort keys: iid priorities < 2**31, excluded entries last
    # shuffle(rivers)[:n]: a uniform n-subset of the valid candidates
    sel = (jnp.argsort(jnp.argsort(jnp.where(valid, b[: 2 * c] >> 1, last))) < n) & valid
    big = jnp.iinfo(jnp.int32).max
    riv_v = jnp.sort(jnp.where(sel & vert, pos, big))[:c]  # sorted rivers_v, padded with big
    riv_h = jnp.sort(jnp.where(sel & ~vert, pos, big))[:c]
    n_v = jnp.sum(sel & vert)

    def limit(rivers: Array, k: Array, n_r: Array, end: Array) -> Array:  # [0]+rivers+[end]
        return jnp.where(k == 0, 0, jnp.where(k <= n_r, rivers[jnp.clip(k - 1, 0, c - 1)], end))

    # shuffle(path): step t crosses a vertical river ("h" move) iff perm[t] < n_v
    perm = jnp.argsort(jnp.where(jnp.arange(2 * c) < n, b[2 * c : 4 * c] >> 1, last))

    def step(t: int, carry: tuple) -> tuple:
        ri, rj, opens = carry
        lv0, lv1 = limit(riv_v, ri, n_v, h - 1), limit(riv_v, ri + 1, n_v, h - 1)
        lh0, lh1 = limit(riv_h, rj, n - n_v, w - 1), limit(riv_h, rj + 1, n - n_v, w - 1)
        horiz = perm[t] < n_v
        r = _ints(b[4 * c + t], jnp.where(horiz, lh0, lv0) + 1, jnp.where(horiz, lh1, lv1))
        opens = opens.at[t].set(jnp.where(horiz, jnp.stack([lv1, r]), jnp.stack([r, lh1])))
        return ri + horiz, rj + ~horiz, opens

    init = (jnp.int32(0), jnp.int32(0), jnp.full((2 * c, 2), -1, jnp.int32))
    _, _, opens = jax.lax.fori_loop(0, jnp.minimum(n, 2 * c), step, init)  # one per crossing
    xs, ys = _cells(size)
    inner = (xs >= 1) & (xs <= w - 2) & (ys >= 1) & (ys <= h - 2)
    on_v = jnp.any(sel[:c, None, None] & (xs[None] == pos[:c, None, None]), axis=0)
    on_h = jnp.any(sel[c:, None, None] & (ys[None] == pos[c:, None, None]), axis=0)
    ox, oy = opens[:, 0, None, None], opens[:, 1, None, None]
    is_open = jnp.any((xs[None] == ox) & (ys[None] == oy), axis=0)
    grid = _fill(_walled(size, w, h), inner & (on_v | on_h) & ~is_open, WALL)
    return _layout(_put(grid, (w - 2, h - 2), _GOAL), (1, 1), 0)


def _room_chain(bits: Array, n_rooms: Array, max_sz: Array, w: Array, h: Array) -> tuple:
    """One attempt of ``_placeRoom`` from ``bits: uint32[MAX_ROOMS, 8]``: room tops, sizes,
    entry doors (``int32[MAX_ROOMS, 2]``) and the number of rooms placed. Each next room gets
    8 tries (drawn together; the first valid one is kept, as the sequential loop would); a
    room whose 8 tries all fail ends the chain (no backtracking, as in minigrid)."""
    x0, v = _digit(bits[0, 0], 0, w - 2)  # entryDoorPos = (rand(0, w-2), rand(0, w-2))
    y0, v = _digit(v, 0, w - 2)
    sx0, v = _digit(v, 4, max_sz + 1)
    top0, size0 = jnp.stack([x0, y0]), jnp.stack([sx0, _ints(v, 4, max_sz + 1)])
    ok0 = (top0[0] + size0[0] <= w) & (top0[1] + size0[1] < h)
    zeros = jnp.zeros((MAX_ROOMS, 2), jnp.int32)
    rooms = jnp.arange(MAX_ROOMS)

    def place(k: Array, carry: tuple) -> tuple:
        tops, sizes, doors, count, entry = carry
        (px, py), (psx, psy) = tops[k - 1], sizes[k - 1]
        wall, v = _digit(bits[k], 0, 3)  # one word per try, one digit per draw
        wall = wall + (wall >= entry)  # _rand_elem(sorted({0, 1, 2, 3} - {entry}))
        off, v = _digit(v, 1, jnp.where(wall % 2 == 0, psy, psx) - 1)
        dx = jnp.select([wall == 0, wall == 2], [px + psx - 1, px], px + off)
        dy = jnp.select([wall == 1, wall == 3], [py + psy - 1, py], py + off)
        e = (wall + 2) % 4  # the new room's entry wall
        sx, v = _digit(v, 4, max_sz + 1)
        sy, v = _digit(v, 4, max_sz + 1)
        side = e % 2 == 0  # door on its left / right wall: topY random, else topX random
        r = _ints(v, jnp.where(side, dy - sy + 2, dx - sx + 2), jnp.where(side, dy, dx))
        tx = jnp.select([e == 0, e == 2], [dx - sx + 1, dx], r)
        ty = jnp.select([e == 1, e == 3], [dy - sy + 1, dy], r)
        ok = (tx >= 0) & (ty >= 0) & (tx + sx <= w) & (ty + sy < h)
        ox, oy, osx, osy = tops[None, :, 0], tops[None, :, 1], sizes[None, :, 0], sizes[None, :, 1]
        apart = ((tx + sx)[:, None] < ox) | (ox + osx <= tx[:, None]) | (
            (ty + sy)[:, None] < oy) | (oy + osy <= ty[:, None])  # fmt: skip
        ok &= jnp.all(apart | (rooms >= k - 1)[None], axis=1)  # all rooms but the parent
        first = jnp.arange(8) == jnp.argmax(ok)
        pick = lambda v: jnp.sum(jnp.where(first, v, 0))  # noqa: E731
        grow = (count == k) & jnp.any(ok)
        new = jnp.stack([pick(tx), pick(ty), pick(sx), pick(sy), pick(dx), pick(dy)])
        tops = tops.at[k].set(jnp.where(grow, new[:2], tops[k]))
        sizes = sizes.at[k].set(jnp.where(grow, new[2:4], sizes[k]))
        doors = doors.at[k].set(jnp.where(grow, new[4:], doors[k]))
        return tops, sizes, doors, count + grow, jnp.where(grow, pick(e), entry)

    init = (zeros.at[0].set(top0), zeros.at[0].set(size0), zeros, ok0.astype(jnp.int32), 2)
    tops, sizes, doors, count, _ = jax.lax.fori_loop(1, n_rooms, place, init)
    return tops, sizes, doors, count


def _multi_room(key: Array, p: TaskParams, size: int) -> Layout:
    w, h = p.width, p.height
    k_try, k_rest = jax.random.split(key)
    b = jax.random.bits(k_rest, (5 + MAX_ROOMS,))
    mine = p.family == FAMILIES.index("MultiRoom")  # a mixed vmapped switch runs every branch
    n_rooms = jnp.where(mine, _ints(b[0], p.arg0, p.arg1 + 1), 0)  # 0: no attempts in the others
    attempts = jax.vmap(lambda b: _room_chain(b, n_rooms, p.arg2, w, h))

    def body(carry: tuple) -> tuple:  # _ATTEMPTS attempts; keep the first complete chain
        *best, rnd = carry
        round_key = jax.random.fold_in(k_try, rnd)
        chains = attempts(jax.random.bits(round_key, (_ATTEMPTS, MAX_ROOMS, 8)))
        n = chains[3]
        i = jnp.where(jnp.any(n == n_rooms), jnp.argmax(n == n_rooms), jnp.argmax(n))
        keep = lambda new, old: jnp.where(n[i] > best[3], new[i], old)  # noqa: E731
        return (*map(keep, chains, best), rnd + 1)

    zeros = jnp.zeros((MAX_ROOMS, 2), jnp.int32)
    init = (zeros, zeros, zeros, jnp.int32(0), jnp.int32(0))
    cond = lambda c: (c[3] < n_rooms) & (c[4] < _MAX_ROUNDS)  # noqa: E731
    tops, sizes, doors, count, _ = jax.lax.while_loop(cond, body, init)

    xs, ys = _cells(size)
    tx, ty = tops[:, 0, None, None], tops[:, 1, None, None]
    bx, by = tx + sizes[:, 0, None, None] - 1, ty + sizes[:, 1, None, None] - 1
    in_rect = (xs >= tx) & (xs <= bx) & (ys >= ty) & (ys <= by)
    border = in_rect & ((xs == tx) | (xs == bx) | (ys == ty) | (ys == by))
    rooms = jnp.arange(MAX_ROOMS)
    walls = jnp.any(border & (rooms < count)[:, None, None], axis=0) | (xs >= w) | (ys >= h)
    grid = _fill(jnp.asarray(EMPTY, jnp.uint8), walls, WALL)  # no outer wall: EMPTY elsewhere
    # entry door of room k >= 1: uniform colour, never the previous door's colour
    colors = (_ints(b[1], 0, 6) + jnp.cumsum(jnp.where(rooms >= 2, _ints(b[5:], 1, 6), 0))) % 6
    objs = jnp.array([OBJECT["door"], 0, DOOR_STATE["closed"]]) + colors[:, None] * jnp.eye(3)[1]
    dx = jnp.where((rooms >= 1) & (rooms < count), doors[:, 0], size)  # size: dropped
    grid = grid.at[dx, doors[:, 1]].set(objs.astype(jnp.uint8), mode="drop")
    agent = _sample_cell(b[3], _free(grid, *tops[0], *sizes[0]))
    last = jnp.maximum(count - 1, 0)
    free = _free(grid, *tops[last], *sizes[last]) & ~((xs == agent[0]) & (ys == agent[1]))
    grid = _put(grid, _sample_cell(b[4], free), _GOAL)
    return _layout(grid, agent, _ints(b[2], 0, 4))


# in the order of layout.FAMILIES
_GENERATORS = (_lava_gap, _red_blue_doors, _memory, _door_key, _dist_shift, _simple_crossing,
               _multi_room)  # fmt: skip


def generate(key: Array, params: TaskParams, size: int) -> Layout:
    """A fresh layout of task ``params``, padded to ``size x size`` (``size`` static)."""
    branches = [functools.partial(gen, size=size) for gen in _GENERATORS]
    return jax.lax.switch(params.family, branches, key, params)
