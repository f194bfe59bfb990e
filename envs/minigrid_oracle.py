"""Shortest-path oracle for deterministic MiniGrid tasks.

:func:`solve` runs a breadth-first search over deep copies of the unwrapped
``MiniGridEnv`` and returns a shortest action sequence that ends in a
successful termination (``terminated=True`` and ``reward > 0``). The result
is used (a) to estimate a task's typical optimal number of steps for score
normalisation and (b) as a scripted, privileged agent.

Search state key: ``(grid.encode() bytes, agent_pos, agent_dir, carried
object's encoding)``. ``MiniGridEnv.hash()`` is not used: it omits the
carried object. ``step_count`` is not part of the key; because BFS visits
every state first at its minimal depth, truncation (``step_count >=
max_steps``) is still respected: a truncated, non-terminal child is dropped.
Children that terminate with zero reward (lava, the wrong Memory object, the
blue door opened first in RedBlueDoors) are dropped too.

Supported: tasks whose whole mutable state lives in the grid, the agent pose
and the carried object, with a deterministic ``step`` (Empty, DoorKey,
LavaGap, Crossing, DistShift, MultiRoom, RedBlueDoors, Memory, ...). Memory's
success/failure cells (``success_pos``/``failure_pos``) are fixed at reset,
so they need not be in the key. Not supported: stochastic dynamics
(DynamicObstacles) or hidden progress state (BabyAI instruction verifiers).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

import gymnasium
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
from minigrid.core.actions import Actions
from minigrid.envs.memory import MemoryEnv
from minigrid.minigrid_env import MiniGridEnv

__all__ = ["solve", "optimal_steps", "state_key", "OracleError"]

# Classes whose ``step`` override was checked against the source: they only
# post-process the base step (Memory also maps pickup -> toggle), so `done` is
# a no-op and the base-step no-op pruning below stays valid.
_VERIFIED_STEP_OVERRIDES = frozenset({"MemoryEnv", "RedBlueDoorEnv"})


class OracleError(RuntimeError):
    """Raised when no successful plan is found."""


def state_key(env: MiniGridEnv) -> Hashable:
    """Hashable key of everything that ``step`` may change, except step_count."""
    carrying = env.carrying.encode() if env.carrying is not None else None
    pos = env.agent_pos
    return (
        env.grid.encode().tobytes(),
        (int(pos[0]), int(pos[1])),
        int(env.agent_dir),
        carrying,
    )


def _base_step_semantics(env: MiniGridEnv) -> bool:
    """True if ``step`` is ``MiniGridEnv.step`` up to verified post-processing."""
    for cls in type(env).__mro__:
        if cls is MiniGridEnv:
            return True
        if "step" in cls.__dict__ and cls.__name__ not in _VERIFIED_STEP_OVERRIDES:
            return False
    return False


def _candidate_actions(env: MiniGridEnv, base: bool) -> list[int]:
    """Actions worth trying; with base semantics, drop provable no-ops."""
    if not base:
        return [int(a) for a in Actions]
    acts = [int(Actions.left), int(Actions.right)]
    fwd = env.grid.get(*env.front_pos)
    # forward: no-op only when blocked by a non-overlappable, non-goal/lava cell.
    if fwd is None or fwd.can_overlap() or fwd.type in ("goal", "lava"):
        acts.append(int(Actions.forward))
    if env.carrying is None and fwd is not None and fwd.can_pickup():
        acts.append(int(Actions.pickup))
    if env.carrying is not None and fwd is None:
        acts.append(int(Actions.drop))
    if fwd is not None:
        acts.append(int(Actions.toggle))
    # done (6): `pass` in MiniGridEnv.step, ignored by the verified overrides.
    return acts


def solve(env: Any, max_nodes: int = 200_000, must_see: tuple[int, int] | None = None) -> list[int]:
    """Return a shortest action list reaching a rewarded termination.

    ``env`` must already be reset; it is not modified (the search works on
    deep copies). ``max_nodes`` bounds the number of expanded states.
    ``must_see``: a cell the agent must have had in view before the rewarded
    step counts (Memory's start-room object: without it the oracle uses
    knowledge no agent has). Raises :class:`OracleError` if no plan exists or
    the budget is exhausted.
    """
    root: MiniGridEnv = env.unwrapped
    if not isinstance(root, MiniGridEnv):
        raise TypeError(f"expected a MiniGridEnv, got {type(root).__name__}")
    base = _base_step_semantics(root)
    root = copy.deepcopy(root)
    root.render_mode = None  # never render during search

    def seen(e: MiniGridEnv, before: bool) -> bool:
        return before or must_see is None or bool(e.agent_sees(*must_see))

    visited: set[Hashable] = {(state_key(root), seen(root, False))}
    frontier: deque[tuple[MiniGridEnv, list[int], bool]] = deque([(root, [], seen(root, False))])
    expanded = 0
    while frontier:
        node, plan, node_seen = frontier.popleft()
        expanded += 1
        if expanded > max_nodes:
            raise OracleError(
                f"{type(root).__name__}: no plan within max_nodes={max_nodes} "
                f"(reached depth {len(plan)}, {len(visited)} states seen)"
            )
        for action in _candidate_actions(node, base):
            child = copy.deepcopy(node)
            _, reward, terminated, truncated, _ = child.step(action)
            if terminated:
                if float(reward) > 0 and node_seen:
                    return plan + [action]  # BFS layers => first hit is shortest
                continue  # failed termination: never expand
            if truncated:
                continue  # step limit hit; deeper states are useless
            child_seen = seen(child, node_seen)
            key = (state_key(child), child_seen)
            if key in visited:
                continue
            visited.add(key)
            frontier.append((child, plan + [action], child_seen))
    raise OracleError(
        f"{type(root).__name__}: no successful plan exists within the step limit "
        f"({len(visited)} states explored)"
    )


def optimal_steps(
    env_id: str, seeds: Sequence[int], max_nodes: int = 200_000, privileged: bool = False
) -> list[int]:
    """Optimal plan length for each seed's layout of ``env_id``. Unless ``privileged``,
    a Memory plan must first look at the start-room object (cell ``(1, height // 2 - 1)``)."""
    lengths: list[int] = []
    for seed in seeds:
        env = gymnasium.make(env_id)
        try:
            env.reset(seed=int(seed))
            memory = isinstance(env.unwrapped, MemoryEnv) and not privileged
            cue = (1, env.unwrapped.height // 2 - 1) if memory else None
            lengths.append(len(solve(env, max_nodes=max_nodes, must_see=cue)))
        finally:
            env.close()
    return lengths


def _max_steps(env_id: str) -> int:
    env = gymnasium.make(env_id)
    try:
        env.reset(seed=0)
        return int(env.unwrapped.max_steps)
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: print optimal-step statistics over seeds ``0..layouts-1``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", required=True, help="MiniGrid env ids")
    parser.add_argument("--layouts", type=int, default=20, help="seeds 0..N-1")
    parser.add_argument("--max-nodes", type=int, default=200_000)
    parser.add_argument(
        "--privileged", action="store_true", help="Memory: skip looking at the cue object"
    )
    args = parser.parse_args(argv)

    header = ("env_id", "max_steps", "min", "median", "mean", "max")
    rows: list[tuple[str, ...]] = []
    for env_id in args.envs:
        steps = optimal_steps(env_id, range(args.layouts), args.max_nodes, args.privileged)
        rows.append(
            (
                env_id,
                str(_max_steps(env_id)),
                str(min(steps)),
                f"{statistics.median(steps):g}",
                f"{statistics.fmean(steps):.2f}",
                str(max(steps)),
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
