"""Tests for the JAX MiniGrid layout generators (envs/minigrid_jax/generators.py).

Against real minigrid 3.2.0: layouts are solvable by the BFS oracle once written into a
minigrid env, structurally sound, deterministic per key, and distributed like minigrid's own
``_gen_grid`` on the marginals that matter (two-sample chi-square tests on fixed keys / seeds,
so a run is deterministic; a marginal fails when p < ``P_MIN``).
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from collections.abc import Callable

import gymnasium
import jax
import jax.numpy as jnp
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import numpy as np
import pytest
from minigrid.core.grid import Grid
from minigrid.core.world_object import Door
from scipy.stats import chi2_contingency

from mtrl_bench.envs import minigrid_oracle
from mtrl_bench.envs.minigrid_jax import generators
from mtrl_bench.envs.minigrid_jax.layout import COLOR, FAMILIES, OBJECT, WALL

TASKS = ("MiniGrid-LavaGapS7-v0", "MiniGrid-LavaGapS6-v0", "MiniGrid-RedBlueDoors-6x6-v0",
         "MiniGrid-RedBlueDoors-8x8-v0", "MiniGrid-MemoryS11-v0", "MiniGrid-MemoryS13-v0",
         "MiniGrid-DoorKey-6x6-v0", "MiniGrid-DoorKey-8x8-v0", "MiniGrid-DistShift1-v0",
         "MiniGrid-DistShift2-v0", "MiniGrid-SimpleCrossingS9N2-v0",
         "MiniGrid-SimpleCrossingS9N3-v0", "MiniGrid-MultiRoom-N2-S4-v0",
         "MiniGrid-MultiRoom-N4-S5-v1")  # fmt: skip
SIZE = 25  # static padded size: the largest grid (MultiRoom, 25 x 25)
N_DIST = 2000  # samples per side in the distribution tests
P_MIN = 1e-4  # ~70 non-constant marginals: family-wise false-alarm rate below 1%
#: keys checked by the (slow, deepcopy-based) oracle in the fast suite; 50 when marked slow
ORACLE_KEYS = {"LavaGap": 8, "RedBlueDoors": 3, "Memory": 8, "DoorKey": 2, "DistShift": 2,
               "SimpleCrossing": 6, "MultiRoom": 3}  # fmt: skip
T = OBJECT


def family(env_id: str) -> str:
    return FAMILIES[int(generators.task_params(env_id).family)]


@functools.cache
def _batch_fn() -> Callable:
    gen = functools.partial(generators.generate, size=SIZE)
    return jax.jit(jax.vmap(gen, in_axes=(0, None)))


KEYS = jax.random.split(jax.random.key(0), N_DIST)


@functools.cache
def jax_layouts(env_id: str) -> dict[str, np.ndarray]:
    """``N_DIST`` layouts of ``env_id`` from ``KEYS`` (one compile serves every task)."""
    lay = _batch_fn()(KEYS, generators.task_params(env_id))
    return {k: np.asarray(v) for k, v in lay._asdict().items()}


def make(env_id: str) -> gymnasium.Env:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MultiRoom-N4-S5-v0 style deprecation notices
        return gymnasium.make(env_id)


@functools.cache
def minigrid_layouts(env_id: str, n: int) -> dict[str, np.ndarray]:
    env, out = make(env_id), {"grid": [], "agent_pos": [], "agent_dir": [], "pos_a": []}
    for seed in range(n):
        env.reset(seed=seed)
        u = env.unwrapped
        out["grid"].append(u.grid.encode())
        out["agent_pos"].append(np.asarray(u.agent_pos))
        out["agent_dir"].append(u.agent_dir)
        out["pos_a"].append(np.asarray(getattr(u, "success_pos", (0, 0))))
    return {k: np.stack(v) for k, v in out.items()}


def load(env: gymnasium.Env, lay: dict[str, np.ndarray], i: int) -> None:
    """Overwrite a reset minigrid env's state with layout ``i``."""
    u = env.unwrapped
    u.grid, _ = Grid.decode(lay["grid"][i, : u.width, : u.height])
    u.agent_pos, u.agent_dir = tuple(int(v) for v in lay["agent_pos"][i]), int(lay["agent_dir"][i])
    a, b = (tuple(int(v) for v in lay[k][i]) for k in ("pos_a", "pos_b"))
    if hasattr(u, "success_pos"):
        u.success_pos, u.failure_pos = a, b
    if hasattr(u, "red_door"):
        u.red_door, u.blue_door = u.grid.get(*a), u.grid.get(*b)
        assert isinstance(u.red_door, Door) and u.red_door.color == "red"
        assert isinstance(u.blue_door, Door) and u.blue_door.color == "blue"


# ----------------------------------------------------------------------------- validity
def _check_solvable(env_id: str, n: int) -> None:
    lay = jax_layouts(env_id)
    env = make(env_id)
    env.reset(seed=0)
    for i in range(n):
        load(env, lay, i)
        assert minigrid_oracle.solve(env, must_see=None), (env_id, i)


@pytest.mark.parametrize("env_id", TASKS)
def test_layouts_solvable_by_oracle(env_id: str) -> None:
    _check_solvable(env_id, ORACLE_KEYS[family(env_id)])


@pytest.mark.slow
@pytest.mark.parametrize("env_id", TASKS)
def test_layouts_solvable_by_oracle_50_keys(env_id: str) -> None:
    _check_solvable(env_id, 50)


def _reachable(grid: np.ndarray, start: tuple[int, int], passable: set[int]) -> np.ndarray:
    seen, todo = np.zeros(grid.shape[:2], bool), [start]
    while todo:
        x, y = todo.pop()
        if seen[x, y] or (grid[x, y, 0] not in passable and (x, y) != start):
            continue
        seen[x, y] = True
        todo += [(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]
    return seen


@pytest.mark.parametrize("env_id", TASKS)
def test_structure(env_id: str) -> None:
    """Border / padding walls, one goal where minigrid has one, nothing under the agent, and
    (cheap flood fill over 500 keys) the goal, key or doors reachable in the right order."""
    lay, fam = jax_layouts(env_id), family(env_id)
    ref = minigrid_layouts(env_id, 1)["grid"][0]
    w, h = ref.shape[:2]
    for i in range(500):
        g, pos = lay["grid"][i], tuple(lay["agent_pos"][i])
        assert (g[w:] == WALL).all() and (g[:, h:] == WALL).all()  # padding
        if fam != "MultiRoom":  # MultiRoom: no outer wall, cells outside rooms are empty
            border = np.concatenate([g[0, :h], g[w - 1, :h], g[:w, 0], g[:w, h - 1]])
            assert (border == WALL).all()
        assert np.sum(g[..., 0] == T["goal"]) == np.sum(ref[..., 0] == T["goal"])
        assert g[pos][0] == T["empty"]  # nothing under the agent (minigrid: None there)
        assert 0 <= lay["agent_dir"][i] < 4
        free = {T["empty"], T["goal"]}
        if fam == "DoorKey":  # key reachable before the door; goal after it
            (kx, ky), near = np.argwhere(g[..., 0] == T["key"])[0], _reachable(g, pos, free)
            assert near[kx - 1 : kx + 2, ky].any() or near[kx, ky - 1 : ky + 2].any()
            assert _reachable(g, pos, free | {T["key"], T["door"]})[w - 2, h - 2]
        elif fam == "RedBlueDoors":
            near = _reachable(g, pos, free | {T["door"]})
            assert near[tuple(lay["pos_a"][i])] and near[tuple(lay["pos_b"][i])]
        elif fam == "Memory":
            assert _reachable(g, pos, free)[tuple(lay["pos_a"][i])]
        else:
            goal = tuple(np.argwhere(g[..., 0] == T["goal"])[0])
            assert _reachable(g, pos, free | {T["door"]})[goal]


def test_determinism() -> None:
    """Same key, same layout (also with a mixed-task batch, where ``switch`` runs every
    branch under ``vmap``); different keys, different layouts."""
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *(generators.task_params(t) for t in TASKS))
    mixed = jax.jit(jax.vmap(functools.partial(generators.generate, size=SIZE)))
    mixed = mixed(KEYS[: len(TASKS)], params)
    for i, env_id in enumerate(TASKS):
        lay = jax_layouts(env_id)
        again = _batch_fn()(KEYS, generators.task_params(env_id))
        assert all(np.array_equal(lay[k], v) for k, v in again._asdict().items())
        assert all(np.array_equal(lay[k][i], v[i]) for k, v in mixed._asdict().items()), env_id
        distinct = {(g.tobytes(), tuple(q), int(d)) for g, q, d in
                    zip(lay["grid"][:50], lay["agent_pos"][:50], lay["agent_dir"][:50], strict=True)}  # fmt: skip
        assert len(distinct) >= (1 if family(env_id) == "DistShift" else 8), env_id


def test_task_params() -> None:
    p = generators.task_params("MiniGrid-MultiRoom-N4-S5-v1")
    assert [int(v) for v in p] == [FAMILIES.index("MultiRoom"), 25, 25, 80, 4, 4, 5]
    assert int(generators.task_params("MiniGrid-DistShift2-v0").arg0) == 5
    assert int(generators.task_params("MiniGrid-SimpleCrossingS9N3-v0").arg0) == 3
    for unsupported in ("MiniGrid-MemoryS13Random-v0", "MiniGrid-LavaCrossingS9N1-v0",
                        "MiniGrid-Empty-5x5-v0"):  # fmt: skip
        with pytest.raises(ValueError):
            generators.task_params(unsupported)


# ----------------------------------------------------------------------------- distribution
def _cells(t: np.ndarray, typ: int) -> tuple:
    return tuple(tuple(int(v) for v in c) for c in np.argwhere(t == typ))


def features(fam: str, g: np.ndarray, pos: np.ndarray, d: int, pos_a: np.ndarray) -> dict:
    """Marginals of one layout (``g`` unpadded) that the distribution test compares."""
    t, (w, h) = g[..., 0], g.shape[:2]
    f: dict = {"agent": tuple(int(v) for v in pos), "dir": int(d), "goal": _cells(t, T["goal"])}
    doors = [tuple(int(v) for v in c) for c in np.argwhere(t == T["door"])]
    if fam == "LavaGap":
        x = int(np.argwhere(t == T["lava"])[0, 0])
        f["gap"] = (x, int(np.argwhere(t[x, 1 : h - 1] != T["lava"])[0, 0]) + 1)
    elif fam == "DoorKey":
        f["door"] = [(*c, *map(int, g[c][1:])) for c in doors]  # position, colour, state
        f["split"], f["key"] = doors[0][0], _cells(t, T["key"])
        f["agent_key"] = (f["agent"], f["key"])
    elif fam == "RedBlueDoors":
        f["doors"] = tuple(sorted((int(g[c][1]), *c, int(g[c][2])) for c in doors))
        f["red"], f["blue"] = ([c for c in f["doors"] if c[0] == COLOR[k]] for k in ("red", "blue"))
    elif fam == "Memory":
        mid = h // 2
        f["objects"] = (int(t[1, mid - 1]), int(t[w - 2, mid - 2]), int(t[w - 2, mid + 2]))
        f["success"] = tuple(int(v) for v in pos_a)
        f["objects_success"] = (f["objects"], f["success"])  # which side matches
    elif fam == "SimpleCrossing":  # per candidate river line: 0, or the opening's coordinate
        for k in range(2, w - 2, 2):
            for name, line in ((f"x={k}", t[k, 1 : h - 1]), (f"y={k}", t[1 : w - 1, k])):
                f[name] = (
                    1 + int(np.argmax(line != T["wall"]))
                    if (line == T["wall"]).sum() >= len(line) - 1
                    else 0
                )
        f["rivers"] = tuple(v > 0 for k, v in f.items() if k[:2] in ("x=", "y="))
    elif fam == "MultiRoom":
        walls = np.argwhere(t == T["wall"])
        (gx, gy), (ax, ay) = f.pop("goal")[0], f.pop("agent")
        f.update(rooms=len(doors) + 1, goal_x=gx, goal_y=gy, agent_x=ax, agent_y=ay,
                 distance=abs(gx - ax) + abs(gy - ay), walls=len(walls),
                 door_colours=tuple(sorted(int(g[c][1]) for c in doors)),
                 door_states={int(g[c][2]) for c in doors}, x_span=int(np.ptp(walls[:, 0])),
                 y_span=int(np.ptp(walls[:, 1])), x_min=int(walls[:, 0].min()))  # fmt: skip
    return {k: v if not isinstance(v, (list, set)) else tuple(sorted(v)) for k, v in f.items()}


def chi2_pvalue(a: list, b: list) -> float:
    """Two-sample chi-square homogeneity test; categories seen < 10 times in all are pooled."""
    ca, cb = Counter(a), Counter(b)
    cats = sorted(set(ca) | set(cb), key=repr)
    rare = [c for c in cats if ca[c] + cb[c] < 10]
    cols = [(ca[c], cb[c]) for c in cats if c not in rare]
    cols.append((sum(ca[c] for c in rare), sum(cb[c] for c in rare)))
    table = np.array([c for c in cols if sum(c) > 0]).T
    return 1.0 if table.shape[1] < 2 else float(chi2_contingency(table).pvalue)


def distribution_failures(fam: str, ours: dict, ref: dict) -> list[str]:
    w, h = ref["grid"].shape[1:3]
    feats = [[features(fam, lay["grid"][i, :w, :h], lay["agent_pos"][i], lay["agent_dir"][i],
                       lay["pos_a"][i]) for i in range(len(lay["grid"]))] for lay in (ours, ref)]  # fmt: skip
    failures = []
    for name in feats[1][0]:
        a, b = ([f[name] for f in side] for side in feats)
        p = chi2_pvalue(a, b)
        if p < P_MIN:
            failures.append(f"{name}: p={p:.2g} jax={Counter(a).most_common(4)} "
                            f"minigrid={Counter(b).most_common(4)}")  # fmt: skip
    return failures


@pytest.mark.parametrize("env_id", TASKS)
def test_distribution_matches_minigrid(env_id: str) -> None:
    fam, ours, ref = family(env_id), jax_layouts(env_id), minigrid_layouts(env_id, N_DIST)
    if fam == "DistShift":  # deterministic: identical to every minigrid reset
        w, h = ref["grid"].shape[1:3]
        assert (ours["grid"][:, :w, :h] == ref["grid"][0]).all() and (
            ref["grid"] == ref["grid"][0]
        ).all()
    assert not distribution_failures(fam, ours, ref)


def test_distribution_test_detects_a_small_bias(monkeypatch: pytest.MonkeyPatch) -> None:
    """Power check: favouring row 1 by e**0.5 in ``place_obj``'s uniform choice is caught
    (hand-made mutations of the generators, e.g. off-by-one ranges, an unshuffled crossing
    path or repeated MultiRoom door colours, fail ``test_distribution_matches_minigrid`` too)."""

    def biased(word: jax.Array, mask: jax.Array) -> jax.Array:  # inverse-CDF sampling
        row1 = jnp.arange(mask.shape[1])[None, :] == 1
        cdf = jnp.cumsum(jnp.where(mask, jnp.where(row1, jnp.e**0.5, 1.0), 0.0).reshape(-1))
        idx = jnp.argmax(cdf > (word >> 8).astype(jnp.float32) / 2.0**24 * cdf[-1])
        return jnp.stack([idx // mask.shape[0], idx % mask.shape[0]]).astype(jnp.int32)

    env_id = "MiniGrid-RedBlueDoors-6x6-v0"
    monkeypatch.setattr(generators, "_sample_cell", biased)
    gen = functools.partial(generators._red_blue_doors, size=SIZE)  # noqa: SLF001
    lay = jax.jit(jax.vmap(gen, in_axes=(0, None)))(KEYS, generators.task_params(env_id))
    lay = {k: np.asarray(v) for k, v in lay._asdict().items()}
    failures = distribution_failures("RedBlueDoors", lay, minigrid_layouts(env_id, N_DIST))
    assert [f.split(":")[0] for f in failures] == ["agent"]
