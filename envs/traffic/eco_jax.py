"""Eco-driving in pure JAX: IDM car-following on the single-lane signalised approach of
``eco.py`` (read its docstring for the scenario, observation, action, reward and contexts).

Model. ``MAX_VEHICLES`` slots form a ring buffer in driving order (no overtaking on one lane):
``head`` is the front vehicle, new vehicles enter behind the last one and leave from the front
when they pass the end of the exit, so "slot ``i`` of the observation" is simply the ``i``-th
vehicle from the front (``jnp.roll`` by ``-head``). Every vehicle follows IDM; a CAV's
acceleration is ``min(action, IDM)`` (``eco.py``). A red light is a stopped virtual leader at the
stop line for vehicles that can still stop there with ``DECEL`` (the others pass, as SUMO's
drivers do). Ballistic update (SUMO's ``--step-method.ballistic``): ``v' = max(v + a dt, 0)``,
``x' = x + (v + v') dt / 2``, or the stopping distance ``v^2 / (2 |a|)`` when the vehicle stops
within the step. Arrivals: a Bernoulli draw per step (probability ``inflow dt / 3600``) into an
entry queue; the front of the queue is inserted at position 0 at the speed limit when the gap
to the last vehicle is at least IDM's equilibrium gap at that speed (SUMO's
``departSpeed="desired"``), each vehicle a CAV with probability ``penrate``.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtrl_bench.envs import traffic
from mtrl_bench.envs.traffic import eco as sc
from mtrl_bench.jax_env import autoreset
from mtrl_bench.types import Suite, Task

_F32 = jnp.float32
M = sc.MAX_VEHICLES


class EcoParams(NamedTuple):
    p_arrival: jax.Array  # per step
    penrate: jax.Array
    green: jax.Array  # s
    red: jax.Array  # s


class EcoState(NamedTuple):
    pos: jax.Array  # (M,) front bumper, m from the lane's start (stop line at APPROACH_M)
    vel: jax.Array  # (M,)
    cav: jax.Array  # (M,) bool
    active: jax.Array  # (M,) bool
    head: jax.Array  # int32 slot of the front vehicle
    count: jax.Array  # int32 vehicles on the road
    queue: jax.Array  # int32 vehicles waiting to enter
    queue_cav: jax.Array  # (M,) bool: CAV flags of the waiting vehicles (FIFO, by arrival)
    t: jax.Array  # int32 steps
    ret: jax.Array  # float32 episode return so far
    arrived: jax.Array  # int32
    exited: jax.Array  # int32


class EcoJax:
    """The ``traffic-jax/eco-*`` env: one object, the context in ``EcoParams``."""

    def __init__(self) -> None:
        self.observation_space = sc.observation_space()
        self.action_space = sc.action_space()

    def params(self, task: Task) -> EcoParams:
        c = sc.context(task)
        return EcoParams(p_arrival=_F32(c["inflow"] * sc.DT / 3600.0), penrate=_F32(c["penrate"]),
                         green=_F32(c["green"]), red=_F32(sc.RED_S))  # fmt: skip

    def _ordered(self, state: EcoState):
        roll = lambda x: jnp.roll(x, -state.head)  # noqa: E731
        return roll(state.pos), roll(state.vel), roll(state.cav), roll(state.active)

    def obs(self, state: EcoState, p: EcoParams) -> jax.Array:
        pos, vel, cav, active = self._ordered(state)
        green, to_switch = sc.signal(state.t * sc.DT, p.green, p.red, jnp)
        dist = jnp.where(active, (sc.APPROACH_M - pos) / sc.APPROACH_M, 0.0)
        speed = jnp.where(active, vel / sc.SPEED_LIMIT, 0.0)
        slots = jnp.stack([active, cav & active, dist, speed], -1)
        extra = jnp.stack([green.astype(_F32), to_switch / (p.green + p.red)])
        return jnp.concatenate([slots.astype(_F32).reshape(-1), extra])

    def reset(self, key: jax.Array, p: EcoParams) -> tuple[jax.Array, EcoState]:
        z, b = jnp.zeros(M, _F32), jnp.zeros(M, bool)
        i0 = jnp.int32(0)
        state = EcoState(z, z, b, b, i0, i0, i0, b, i0, _F32(0.0), i0, i0)
        return self.obs(state, p), state

    def step_env(self, key, state: EcoState, action, p: EcoParams):
        k_arr, k_cav = jax.random.split(key)
        pos, vel, cav, active = self._ordered(state)
        green, _ = sc.signal(state.t * sc.DT, p.green, p.red, jnp)
        # leader of the i-th vehicle is the (i-1)-th; the front one has none
        lead_pos = jnp.concatenate([jnp.full(1, jnp.inf), pos[:-1]])
        lead_vel = jnp.concatenate([vel[:1], vel[:-1]])
        gap, dv, to_line = lead_pos - sc.VEH_LENGTH - pos, vel - lead_vel, sc.APPROACH_M - pos
        # humans: IDM (an action above any IDM value); CAVs: min(action, IDM)
        wish = jnp.where(cav, jnp.asarray(action, _F32).reshape(M), sc.MAX_ACTION)
        a = sc.cav_accel(wish, vel, gap, dv, to_line, ~green, jnp)
        new_vel = jnp.maximum(vel + a * sc.DT, 0.0)
        stop_dist = jnp.where(a < 0, vel**2 / (2 * jnp.maximum(-a, 1e-6)), 0.0)
        moved = jnp.where(vel + a * sc.DT < 0, stop_dist, (vel + new_vel) * sc.DT / 2)
        a_real = jnp.where(active, (new_vel - vel) / sc.DT, 0.0)  # after the stop clamp
        pos = jnp.where(active, pos + moved, pos)
        vel = jnp.where(active, new_vel, 0.0)
        n_on = jnp.maximum(active.sum(), 1)
        speed_term = jnp.where(active.any(), vel.sum() / n_on, sc.SPEED_LIMIT)  # empty: free
        co2 = jnp.where(active, sc.co2_rate(vel, a_real, jnp), 0.0)
        co2_term = co2.sum() / n_on
        # leave at the end of the exit: the first k vehicles in order
        gone = active & (pos >= sc.ROAD_M)
        k = gone.sum().astype(jnp.int32)
        active = active & ~gone
        # back to slot order, drop the leavers
        unroll = lambda x: jnp.roll(x, state.head)  # noqa: E731
        st = state._replace(pos=unroll(pos), vel=unroll(vel), active=unroll(active),
                            head=(state.head + k) % M, count=state.count - k,
                            exited=state.exited + k)  # fmt: skip
        # arrivals (FIFO queue of CAV flags) and one insertion per step
        arrive = jax.random.bernoulli(k_arr, p.p_arrival)
        is_cav = jax.random.bernoulli(k_cav, p.penrate)
        qc = jnp.where(
            arrive, st.queue_cav.at[jnp.minimum(st.queue, M - 1)].set(is_cav), st.queue_cav
        )
        queue = st.queue + arrive.astype(jnp.int32)
        last = (st.head + st.count - 1) % M
        room = jnp.where(st.count > 0, st.pos[last] - sc.VEH_LENGTH, jnp.inf)
        can = (queue > 0) & (st.count < M) & (room >= sc.S0 + sc.SPEED_LIMIT * sc.T)
        slot = (st.head + st.count) % M
        st = st._replace(
            pos=jnp.where(can, st.pos.at[slot].set(0.0), st.pos),
            vel=jnp.where(can, st.vel.at[slot].set(sc.SPEED_LIMIT), st.vel),
            cav=jnp.where(can, st.cav.at[slot].set(qc[0]), st.cav),
            active=jnp.where(can, st.active.at[slot].set(True), st.active),
            count=st.count + can, queue=queue - can,
            queue_cav=jnp.where(can, jnp.roll(qc, -1).at[-1].set(False), qc),
            arrived=st.arrived + arrive, t=st.t + 1,
        )  # fmt: skip
        reward = (speed_term - sc.EMISSION_WEIGHT * co2_term) * sc.DT / sc.HORIZON_S
        st = st._replace(ret=st.ret + reward)
        truncated = st.t >= sc.MAX_STEPS
        success = truncated & (st.ret >= sc.SUCCESS_RETURN)
        info = {"success": success, "co2": co2.sum(), "stopped": (active & (vel < 0.1)).sum()}
        return self.obs(st, p), st, reward, jnp.zeros((), bool), truncated, info

    def step(self, key, state: EcoState, action, p: EcoParams):
        return autoreset(self.step_env(key, state, action, p), self.reset(key, p))


@cache
def _env() -> EcoJax:
    return EcoJax()


def make_suite_env(suite: Suite) -> EcoJax:
    """``f(suite) -> JaxEnv`` of the ``traffic-jax/eco-*`` suites (one stateless object)."""
    return _env()


INFLOW, PENRATE, GREEN = (
    traffic.jax_suite(s, "eco_jax", "IDM car-following model")
    for s in (sc.INFLOW, sc.PENRATE, sc.GREEN)
)
