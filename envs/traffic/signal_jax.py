"""Signal control in pure JAX: a cell-transmission model (CTM; Daganzo 1994) of the isolated
4-arm intersection of ``signal.py`` (read its docstring for the scenario, the observation, the
reward and the contexts; this module only says how the model computes them).

Model. Each of the 8 movement groups (per arm: through+right on 3 lanes, left on 1 lane) is a
chain of ``n_cells`` cells of length ``L / n_cells``, ``n_cells = clip(floor(L / (v dt)), 1,
MAX_CELLS)`` with dt = 1 s, so the CFL condition ``v dt <= cell length`` holds for every
context; cells are right-aligned (the last of the ``MAX_CELLS`` slots touches the stop line) and
masked, so every context has the same shapes. Triangular fundamental diagram per lane: free-flow
speed v = the speed limit, jam density ``KJ`` = 1 / (vehicle length + min gap), backward wave
speed ``WAVE_SPEED`` (calibrated against SUMO, ``signal.py``), capacity ``Q = v KJ w / (v + w)``.
Per second: sending ``S_i = min(r n_i, Q lanes)`` with ``r = v dt / cell length``, receiving
``R_i = min(Q lanes, (w dt / cell length) (KJ lanes cell_length - n_i))``, flows ``min(S_i,
R_{i+1})``; the stop-line cell discharges ``S`` only while its movement is green into an
uncongested exit -- not during yellow nor during the first ``LOST_S`` seconds of a new green (the
start-up lost time of traffic engineering's effective green; calibrated against SUMO, whose
vehicles accelerate at 1 m/s^2 from the stop line); arrivals wait in an entry queue (SUMO's
insertion backlog) until the first cell receives them. Vehicles are continuous quantities.

Delay (the reward's quantity): in one second a cell's vehicles lose ``n_i - y_i / r`` vehicle-
seconds against free flow (``y_i`` its outflow: 0 lost in free flow, ``n_i`` when stopped), and
every vehicle in an entry queue loses a whole second -- the CTM form of SUMO's time loss.

Arrivals: the departure schedule of ``signal.py`` (Weibull(2) draws mapped onto the episode)
drawn from the reset key and sorted; ``arrived`` counts the vehicles already on their way, so a
second looks only at the next ``WINDOW`` entries of the schedule (comparing all 2500 every second,
as an earlier version did, cost more than the CTM itself). Sorting at reset costs little because
``jax_vector.vector_step`` resets only the sub-envs whose episode ended (a ``vmap`` of the
autoresetting ``step`` sorts on every step). Each arriving vehicle draws its movement group from
the step's key when it arrives (SUMO's routes are drawn per vehicle too; a fluid split of every
vehicle over all 8 groups was tried and made max-pressure's delay 2x SUMO's at low inflow: it
sees a fraction of a vehicle everywhere).
(``jnp.searchsorted`` per second, the first version, deadlocked jaxlib 0.10.2's CPU runtime
under ``vmap`` inside PPO's scans.)

A decision that keeps the phase runs its ``GREEN_S`` seconds only; one that changes it adds the
``YELLOW_S`` seconds (a ``while_loop`` of the decision's length, not ``GREEN_S + YELLOW_S``
seconds with the unused ones masked).

Everything is float32 / int32 and static-shaped; ``jax.vmap`` over stacked params mixes contexts.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from mtrl_bench.envs import traffic
from mtrl_bench.envs.traffic import signal as sc
from mtrl_bench.jax_env import autoreset
from mtrl_bench.types import Suite, Task

_F32 = jnp.float32
MAX_CELLS = 64
MAX_VEHICLES = 2500  # the largest inflow context
MAX_ARRIVALS = 8  # route draws per second
WINDOW = 16  # schedule entries a second looks at (P(more than 16 due in one second) < 1e-12)


class SignalParams(NamedTuple):
    flow: jax.Array  # vehicles generated per episode (int32)
    r: jax.Array  # v dt / cell length (<= 1)
    wr: jax.Array  # w dt / cell length
    q: jax.Array  # capacity per lane (veh/s)
    jam: jax.Array  # jam vehicles per lane per cell
    active: jax.Array  # (MAX_CELLS,) cells inside the lane
    entry: jax.Array  # (MAX_CELLS,) one-hot: the first active cell
    bin_w: jax.Array  # (MAX_CELLS, NBINS) fraction of a cell's vehicles in each distance bin
    bin_cap: jax.Array  # (NBINS,) jam vehicles per lane in each bin (0: bin beyond the lane)
    lanes: jax.Array  # (8,) lanes per movement group
    green: jax.Array  # (4, 8) movement groups green in each phase
    group_p: jax.Array  # (8,) movement-group probabilities of a vehicle


class SignalState(NamedTuple):
    n: jax.Array  # (8, MAX_CELLS) vehicles per cell
    queue: jax.Array  # (8,) vehicles waiting to enter
    dep: jax.Array  # (MAX_VEHICLES,) departure second of every vehicle, sorted (inf: none)
    arrived: jax.Array  # vehicles of the schedule that have arrived (int32)
    t: jax.Array  # simulated seconds
    steps: jax.Array  # decisions taken
    phase: jax.Array  # current green phase, -1 before the first decision
    delay: jax.Array  # vehicle-seconds lost so far
    departed: jax.Array  # vehicles discharged at the stop line so far


def cell_geometry(length: float, speed: float) -> tuple[int, float]:
    """``(n_cells, cell length)`` of a lane: the most cells (<= MAX_CELLS) meeting the CFL bound."""
    n = int(np.clip(np.floor(length / (speed * sc.DT) + 1e-9), 1, MAX_CELLS))
    return n, length / n


def bins(length: float, n_cells: int, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell -> distance-bin weights (cells right-aligned at the stop line) and bin capacities."""
    edges = np.asarray(sc.BIN_EDGES, dtype=float)
    lo, hi = edges[:-1], edges[1:]
    w = np.zeros((MAX_CELLS, len(lo)))
    for j in range(n_cells):  # j cells upstream of the stop line
        a, b = j * cell, (j + 1) * cell
        w[MAX_CELLS - 1 - j] = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None) / cell
    cap = np.clip(np.minimum(hi, length) - lo, 0, None) * sc.KJ
    return w, cap


class SignalJax:
    """The ``traffic-jax/signal-*`` env: one object, the context in ``SignalParams``."""

    def __init__(self) -> None:
        self.observation_space = sc.observation_space()
        self.action_space = gym.spaces.Discrete(sc.NUM_PHASES)

    def params(self, task: Task) -> SignalParams:
        c = sc.context(task)
        v, length = c["speed"], c["length"]
        n_cells, cell = cell_geometry(length, v)
        w, cap = bins(length, n_cells, cell)
        active = np.arange(MAX_CELLS) >= MAX_CELLS - n_cells
        return SignalParams(
            flow=jnp.int32(round(c["inflow"])),
            r=_F32(v * sc.DT / cell), wr=_F32(sc.WAVE_SPEED * sc.DT / cell),
            q=_F32(sc.capacity(v)), jam=_F32(sc.KJ * cell),
            active=jnp.asarray(active),
            entry=jnp.asarray(np.arange(MAX_CELLS) == MAX_CELLS - n_cells),
            bin_w=jnp.asarray(w, _F32), bin_cap=jnp.asarray(cap, _F32),
            lanes=jnp.asarray(sc.LANES, _F32), green=jnp.asarray(sc.GREEN_GROUPS),
            group_p=jnp.asarray(sc.GROUP_P, _F32),
        )  # fmt: skip

    def obs(self, state: SignalState, p: SignalParams) -> jax.Array:
        veh = jnp.einsum("gc,cb->gb", state.n, p.bin_w)
        cap = p.lanes[:, None] * p.bin_cap[None, :]
        occ = jnp.where(cap > 0, veh / jnp.where(cap > 0, cap, 1.0), 0.0)
        return jnp.clip(occ, 0.0, 1.0).reshape(-1)

    def reset(self, key: jax.Array, p: SignalParams) -> tuple[jax.Array, SignalState]:
        draws = jax.random.weibull_min(key, 1.0, sc.WEIBULL_SHAPE, (MAX_VEHICLES,), _F32)
        real = jnp.arange(MAX_VEHICLES) < p.flow
        draws = jnp.where(real, draws, jnp.inf)
        # the second-smallest draw by two reductions (lax.top_k is ~50x slower here under vmap)
        second = jnp.where(jnp.arange(MAX_VEHICLES) == jnp.argmin(draws), jnp.inf, draws).min()
        dep = jnp.sort(sc.schedule(draws, second, jnp))
        state = SignalState(
            n=jnp.zeros((8, MAX_CELLS), _F32), queue=jnp.zeros(8, _F32), dep=dep,
            arrived=jnp.int32(0), t=jnp.int32(0), steps=jnp.int32(0), phase=jnp.int32(-1),
            delay=_F32(0.0), departed=_F32(0.0),
        )  # fmt: skip
        return self.obs(state, p), state

    def second(self, key, state: SignalState, green: jax.Array, p: SignalParams) -> SignalState:
        """One simulated second with the movement groups ``green`` (8,) discharging."""
        # the next WINDOW vehicles of the sorted schedule: those due by now arrive (``<=``: more
        # than WINDOW due in one second would arrive a second late, never be lost)
        idx = state.arrived + jnp.arange(WINDOW)
        due = state.dep.at[idx].get(mode="fill", fill_value=jnp.inf) <= state.t.astype(_F32)
        arrivals = due.sum(dtype=jnp.int32)
        # each arriving vehicle draws its movement group, as SUMO's routes are drawn; beyond
        # MAX_ARRIVALS in one second (P < 1e-5 at the peak of 2500 vehicles) the rest split fluidly
        draws = jax.random.categorical(key, jnp.log(p.group_p), shape=(MAX_ARRIVALS,))
        drawn = jnp.arange(MAX_ARRIVALS) < arrivals
        by_group = (jax.nn.one_hot(draws, 8, dtype=_F32) * drawn[:, None]).sum(0)
        extra = jnp.maximum(arrivals - MAX_ARRIVALS, 0).astype(_F32) * p.group_p
        queue = state.queue + by_group + extra
        lanes = p.lanes[:, None]
        send = jnp.minimum(p.r * state.n, p.q * lanes)
        recv = jnp.minimum(p.q * lanes, p.wr * (p.jam * lanes - state.n)) * p.active
        inner = jnp.minimum(send[:, :-1], recv[:, 1:])
        out_last = jnp.where(green, send[:, -1], 0.0)
        out = jnp.concatenate([inner, out_last[:, None]], axis=1)
        enter = jnp.minimum(queue, (recv * p.entry).sum(-1))
        n = state.n - out + jnp.pad(inner, ((0, 0), (1, 0))) + enter[:, None] * p.entry
        # free-flow outflow decays a cell geometrically; flush what is left of a vehicle at 1e-6
        # (float32 subnormals, reached after ~100 s, make CPU arithmetic ~100x slower)
        n = jnp.where(n < 1e-6, 0.0, n)
        queue = queue - enter
        lost = jnp.maximum(state.n - out / p.r, 0.0).sum() + queue.sum()  # >= 0 up to rounding
        return state._replace(
            n=n, queue=queue, t=state.t + 1, delay=state.delay + lost,
            arrived=state.arrived + arrivals,
            departed=state.departed + out_last.sum(),
        )  # fmt: skip

    def step_env(self, key, state: SignalState, action, p: SignalParams):
        action = jnp.asarray(action, jnp.int32)
        changed = (state.phase >= 0) & (action != state.phase)

        def body(s: int, st: SignalState) -> SignalState:
            # a changed phase: yellow, then the start-up lost time before the queue discharges
            blocked = changed & (s < sc.YELLOW_S + sc.LOST_S)
            new = self.second(jax.random.fold_in(key, s), st, p.green[action] & ~blocked, p)
            return jax.tree.map(lambda a, b: jnp.where(st.t < sc.HORIZON_S, a, b), new, st)

        delay0 = state.delay
        seconds = jnp.where(changed, sc.GREEN_S + sc.YELLOW_S, sc.GREEN_S)
        state = jax.lax.fori_loop(0, seconds, body, state)
        state = state._replace(steps=state.steps + 1, phase=action)
        reward = -(state.delay - delay0) / p.flow.astype(_F32)
        truncated = (state.t >= sc.HORIZON_S) | (state.steps >= sc.MAX_STEPS)
        success = truncated & (state.delay / p.flow.astype(_F32) <= sc.SUCCESS_DELAY_S)
        info = {"success": success, "delay_per_vehicle": state.delay / p.flow.astype(_F32)}
        return self.obs(state, p), state, reward, jnp.zeros((), bool), truncated, info

    def step(self, key, state: SignalState, action, p: SignalParams):
        # one key for both, as ``jax_env`` asks, so that ``vector_step`` (which JaxVectorEnv
        # and the agents use) gives this step's results while resetting only finished episodes
        return autoreset(self.step_env(key, state, action, p), self.reset(key, p))


@cache
def _env() -> SignalJax:
    return SignalJax()


def make_suite_env(suite: Suite) -> SignalJax:
    """``f(suite) -> JaxEnv`` of the ``traffic-jax/signal-*`` suites (one stateless object)."""
    return _env()


INFLOW, LENGTH, SPEED = (
    traffic.jax_suite(s, "signal_jax", "cell-transmission model")
    for s in (sc.INFLOW, sc.LENGTH, sc.SPEED)
)
