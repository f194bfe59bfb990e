"""Contextual eco-driving (MBTL's ``eco-driving`` domain), SUMO reference backend.

Scenario (MBTL's defaults: ``NetGenTaskContext(base_id=11`` -- one
lane, one phase -- ``lane_length=250, speed_limit=14, red_phase=35, offset=0)``): a single-lane
250 m approach to a fixed-cycle signal (green ``green`` s, context, then red 35 s, offset 0, no
yellow), then a 100 m exit; mixed autonomy: each arriving vehicle is a CAV with probability
``penrate`` (context), the others are human drivers following IDM (a 2.6, b 4.5 m/s^2, T 1 s,
s0 2.5 m, delta 4, v0 = speed limit, length 5 m, no noise). Arrivals: one Bernoulli draw per
0.5 s step with probability ``inflow dt / 3600`` (``inflow`` in veh/h, context). Step 0.5 s,
ballistic integration, 600 steps (300 s) per episode, starting from an empty road.

Interface (the same on both backends): a centralised policy sees the first ``MAX_VEHICLES`` = 40
vehicles from the front (per slot: present, is CAV, distance to the stop line / 250 m, speed /
speed limit; then green flag and time to the next switch / cycle) and outputs one acceleration
per slot in [-3, 3] m/s^2; only CAV slots use theirs. Safety layer: a CAV's acceleration is
``min(action, IDM)`` -- it may drive gentler than a human but never closer to its leader or a
red light (IntersectionZoo and MBTL filter CAV actions for safety too; this filter is ours,
``cav_accel``). In SUMO the driver computes the same bound from SUMO's gaps and sends
``setSpeed(v + a dt)`` (SUMO's own safe-speed checks stay on).

Reward per step: ``(mean speed of the vehicles on the road - EMISSION_WEIGHT * their mean CO2
rate in g/s) * dt / 300`` (an empty road counts as the speed limit with no emissions), so the
episode return is the time-average of "speed minus emissions" in m/s units; MBTL's eco-driving
bounds (0, 15) normalise it. Deviation: MBTL / IntersectionZoo's reward mixes speed, a stop
penalty (35) and MOVES emissions (weight 3); MOVES is not available offline, so emissions come
from a **surrogate**: CO2 (g/s) = 1.0 + 0.2 max(VSP, 0), VSP = v (1.1 a + 0.132) + 0.000302 v^3
(vehicle specific power in kW/t, Jimenez-Palacios 1999; MOVES bins its rates by VSP). The
linear coefficients are ours (idle ~1 g/s, ~2.5 g/s cruising at 14 m/s), not fitted to MOVES.
Success (at the episode's end): return >= 7.5 (normalised score >= 0.5).

Contexts (50 values each, MBTL's 0.1x-5x of the defaults): ``inflow`` 40-2000 veh/h (400),
``penrate`` 0.02-1.0 (0.2), ``green`` 1-50 s (10); splits in ``envs/traffic/__init__.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl_bench.envs import traffic
from mtrl_bench.envs.traffic.sumo import SumoEnv, binary, run_tool
from mtrl_bench.types import Suite, Task

DT, HORIZON_S = 0.5, 300.0
MAX_STEPS = int(HORIZON_S / DT)
APPROACH_M, EXIT_M = 250.0, 100.0
ROAD_M = APPROACH_M + EXIT_M
SPEED_LIMIT, RED_S = 14.0, 35.0
ACCEL, DECEL, T, S0, DELTA, VEH_LENGTH = 2.6, 4.5, 1.0, 2.5, 4.0, 5.0
EMERGENCY_DECEL = 9.0
MAX_ACTION = 3.0
MAX_VEHICLES = 40
EMISSION_WEIGHT = 1.0
SUCCESS_RETURN = 7.5
SCORE_BOUNDS = (0.0, 15.0)
DEFAULTS = {"inflow": 400.0, "penrate": 0.2, "green": 10.0}
CONTEXTS = {"inflow": (40.0, 2000.0, "veh/h"), "penrate": (0.02, 1.0, "CAV share"),
            "green": (1.0, 50.0, "s")}  # fmt: skip


def signal(t: Any, green: Any, red: Any, xp: Any = np) -> tuple[Any, Any]:
    """``(green now, seconds to the next switch)`` of the fixed cycle (green first, offset 0)."""
    phase = xp.mod(t, green + red)
    is_green = phase < green
    return is_green, xp.where(is_green, green - phase, green + red - phase)


def idm(v: Any, gap: Any, dv: Any, xp: Any = np) -> Any:
    """IDM acceleration at speed ``v``, bumper gap ``gap`` and approach rate ``dv = v - v_lead``."""
    s_star = S0 + xp.maximum(0.0, v * T + v * dv / (2 * xp.sqrt(ACCEL * DECEL)))
    free = 1.0 - (v / SPEED_LIMIT) ** DELTA
    return ACCEL * (free - (s_star / xp.maximum(gap, 1e-3)) ** 2)


def cav_accel(action: Any, v: Any, gap: Any, dv: Any, to_line: Any, red: Any, xp: Any = np) -> Any:
    """The safety layer, the same on both backends: ``min(action, IDM)``, IDM towards the leader
    and, on red, towards the stop line if the vehicle can still stop there."""
    stops = red & (to_line > 0) & (v**2 / (2 * DECEL) <= to_line)
    a_idm = xp.where(stops, xp.minimum(idm(v, gap, dv, xp), idm(v, to_line, v, xp)),
                     idm(v, gap, dv, xp))  # fmt: skip
    return xp.clip(
        xp.minimum(xp.clip(action, -MAX_ACTION, MAX_ACTION), a_idm), -EMERGENCY_DECEL, None
    )


def co2_rate(v: Any, a: Any, xp: Any = np) -> Any:
    """The CO2 surrogate (g/s) of a vehicle at speed ``v`` (m/s), acceleration ``a`` (m/s^2)."""
    vsp = v * (1.1 * a + 0.132) + 0.000302 * v**3
    return 1.0 + 0.2 * xp.maximum(vsp, 0.0)


def context(task: Task) -> dict[str, float]:
    kw = dict(task.kwargs)
    return {**DEFAULTS, kw["attr"]: float(kw["value"])}


def observation_space() -> gym.spaces.Box:
    n = 4 * MAX_VEHICLES + 2
    low = np.zeros(n, np.float32)
    low[2 : 4 * MAX_VEHICLES : 4] = -EXIT_M / APPROACH_M
    high = np.full(n, 2.0, np.float32)  # speed / limit <= 2 leaves room for overshoot
    return gym.spaces.Box(low, high, (n,), np.float32)


def action_space() -> gym.spaces.Box:
    return gym.spaces.Box(-MAX_ACTION, MAX_ACTION, (MAX_VEHICLES,), np.float32)


def glide_to_green(obs: np.ndarray, green_s: float, horizon_s: float = 2.0) -> np.ndarray:
    """The heuristic CAV controller: aim to reach the stop line when it is green, at the speed
    that gets there just in time (never above the limit); IDM drives when the light is green
    and reachable. Works on a batch of observations (``[..., obs]``) of either backend."""
    slots = obs[..., : 4 * MAX_VEHICLES].reshape(*obs.shape[:-1], MAX_VEHICLES, 4)
    dist = slots[..., 2] * APPROACH_M
    v = slots[..., 3] * SPEED_LIMIT
    is_green = obs[..., -2:-1] > 0.5
    to_switch = obs[..., -1:] * (green_s + RED_S)
    # time to the line: at the current speed, or accelerating from (nearly) standstill
    reach = dist / np.maximum(v, np.sqrt(ACCEL * np.maximum(dist, 0.0) / 2) + 1e-3)
    wait = np.where(is_green, np.where(reach < to_switch, 0.0, to_switch + RED_S), to_switch)
    target = np.where(wait > 0, np.clip(dist / np.maximum(wait, 1e-3), 0, SPEED_LIMIT), SPEED_LIMIT)
    a = np.clip((target - v) / horizon_s, -MAX_ACTION, MAX_ACTION)
    return np.where(dist > 0, a, MAX_ACTION).astype(np.float32)


# ---------------------------------------------------------------- SUMO reference backend
def write_network(folder: Path) -> Path:
    nodes = (f'<nodes><node id="A" x="0" y="0"/><node id="B" x="{APPROACH_M}" y="0" '
             f'type="traffic_light"/><node id="C" x="{ROAD_M}" y="0"/></nodes>')  # fmt: skip
    lane = f'numLanes="1" speed="{SPEED_LIMIT}"'
    edges = (f'<edges><edge id="approach" from="A" to="B" {lane}/>'
             f'<edge id="exit" from="B" to="C" {lane}/></edges>')  # fmt: skip
    (folder / "n.nod.xml").write_text(nodes)
    (folder / "e.edg.xml").write_text(edges)
    net = folder / "net.net.xml"
    run_tool("netconvert", "--node-files", "n.nod.xml", "--edge-files", "e.edg.xml",
             "--no-internal-links", "true", "--output-file", net.name, cwd=folder)  # fmt: skip
    return net


def write_routes(path: Path, inflow: float, penrate: float, rng: np.random.Generator) -> None:
    arrive = rng.random(MAX_STEPS) < inflow * DT / 3600.0
    cav = rng.random(MAX_STEPS) < penrate
    idm = (f'carFollowModel="IDM" accel="{ACCEL}" decel="{DECEL}" tau="{T}" minGap="{S0}" '
           f'delta="{DELTA}" length="{VEH_LENGTH}" maxSpeed="{SPEED_LIMIT}" sigma="0" '
           f'speedFactor="1" speedDev="0" emergencyDecel="{EMERGENCY_DECEL}"')  # fmt: skip
    vehicles = "".join(
        f'<vehicle id="v{k}" type="{"cav" if cav[k] else "human"}" route="r" '
        f'depart="{k * DT:.1f}" departSpeed="desired" departPos="0"/>'
        for k in np.flatnonzero(arrive)
    )
    path.write_text(f'<routes><vType id="human" {idm}/><vType id="cav" {idm}/>'
                    f'<route id="r" edges="approach exit"/>{vehicles}</routes>')  # fmt: skip


class EcoDriver:
    """Runs in the SUMO child process (``SumoProcess``); one simulation, one context."""

    def __init__(self, inflow: float, penrate: float, green: float) -> None:
        import libsumo

        self.sumo = libsumo
        self.folder = Path(tempfile.mkdtemp(prefix="mtrl-eco-"))
        self.net = write_network(self.folder)
        self.inflow, self.penrate, self.green = inflow, penrate, green
        self.running = False

    def reset(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        routes = self.folder / "routes.rou.xml"
        write_routes(routes, self.inflow, self.penrate, rng)
        args = ["-n", str(self.net), "-r", str(routes), "--step-length", str(DT),
                "--step-method.ballistic", "true", "--time-to-teleport", "-1",
                "--no-step-log", "true", "--no-warnings", "true", "--seed", "0"]  # fmt: skip
        if self.running:
            self.sumo.load(args)
        else:
            self.sumo.start([binary("sumo"), *args])
            self.running = True
        self.t, self.ret, self.exited = 0, 0.0, 0
        self._set_light()
        self.on_road = self.vehicles()
        return self.obs()

    def _set_light(self) -> None:
        is_green, _ = signal(self.t * DT, self.green, RED_S)
        self.sumo.trafficlight.setRedYellowGreenState("B", "G" if is_green else "r")

    def vehicles(self) -> list[tuple[str, float, float, bool]]:
        """``(id, distance to the stop line, speed, is CAV)`` of every vehicle, front first."""
        out = []
        for v in self.sumo.vehicle.getIDList():
            x = self.sumo.vehicle.getLanePosition(v)
            dist = APPROACH_M - x if self.sumo.vehicle.getRoadID(v) == "approach" else -x
            out.append((v, dist, self.sumo.vehicle.getSpeed(v),
                        self.sumo.vehicle.getTypeID(v) == "cav"))  # fmt: skip
        return sorted(out, key=lambda r: r[1])

    def obs(self) -> np.ndarray:
        """Of ``self.on_road``, the vehicles after the last simulation step (read once a step)."""
        slots = np.zeros((MAX_VEHICLES, 4), np.float32)
        for i, (_, dist, v, cav) in enumerate(self.on_road[:MAX_VEHICLES]):
            slots[i] = (1.0, float(cav), dist / APPROACH_M, v / SPEED_LIMIT)
        is_green, to_switch = signal(self.t * DT, self.green, RED_S)
        extra = [float(is_green), to_switch / (self.green + RED_S)]
        return np.concatenate([slots.reshape(-1), np.asarray(extra, np.float32)])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        is_green, _ = signal(self.t * DT, self.green, RED_S)
        lead_dist, lead_v = -np.inf, 0.0  # the front vehicle has no leader
        for i, (v, dist, speed, cav) in enumerate(self.on_road[:MAX_VEHICLES]):
            if cav:  # the JAX model's safety layer, computed from SUMO's gaps
                gap = dist - lead_dist - VEH_LENGTH if np.isfinite(lead_dist) else 1e9
                a = cav_accel(float(action[i]), speed, gap, speed - lead_v, dist, not is_green)
                self.sumo.vehicle.setSpeed(v, max(speed + float(a) * DT, 0.0))
            lead_dist, lead_v = dist, speed
        self.sumo.simulationStep()
        self.t += 1
        self._set_light()
        self.on_road = self.vehicles()
        ids = [v for v, *_ in self.on_road]
        speeds = np.array([speed for _, _, speed, _ in self.on_road])
        accels = np.array([self.sumo.vehicle.getAcceleration(v) for v in ids])
        self.exited += self.sumo.simulation.getArrivedNumber()
        speed_term = speeds.mean() if len(ids) else SPEED_LIMIT
        co2 = co2_rate(speeds, accels).sum() if len(ids) else 0.0
        reward = (speed_term - EMISSION_WEIGHT * co2 / max(len(ids), 1)) * DT / HORIZON_S
        self.ret += reward
        truncated = self.t >= MAX_STEPS
        info = {"success": bool(truncated and self.ret >= SUCCESS_RETURN), "co2": float(co2),
                "stopped": int((speeds < 0.1).sum()), "exited": self.exited,
                "pending": len(self.sumo.simulation.getPendingVehicles())}  # fmt: skip
        return self.obs(), float(reward), False, truncated, info

    def close(self) -> None:
        if self.running:
            self.sumo.close()
            self.running = False


def make_env(task: Task, suite: Suite) -> gym.Env:
    """One context of the ``traffic/eco-*`` suites on SUMO (module docstring)."""
    return SumoEnv("mtrl_bench.envs.traffic.eco:EcoDriver", observation_space(), action_space(),
                   **context(task))  # fmt: skip


def _suite(name: str) -> Suite:
    lo, hi, unit = CONTEXTS[name]
    return traffic.context_suite(
        f"traffic/eco-{name}-v1", "EcoDriving", name, traffic.grid_values(lo, hi),
        max_episode_steps=MAX_STEPS, score_bounds=SCORE_BOUNDS,
        env_factory="mtrl_bench.envs.traffic.eco:make_env", backend="numpy",
        description=(f"single-lane eco-driving approach to a fixed-cycle signal (MBTL) on SUMO, "
                     f"context {name} {lo:g}-{hi:g} {unit}; held-out contexts interpolate and "
                     "extrapolate"),
        options={"upstream": "SUMO 1.28 (libsumo)", "context_default": DEFAULTS[name],
                 "context_unit": unit, "success": f"episode return >= {SUCCESS_RETURN:g}",
                 "normaliser": f"MBTL eco-driving bounds {SCORE_BOUNDS}",
                 "emissions": "VSP-linear CO2 surrogate (MOVES unavailable offline)"}
    )  # fmt: skip


INFLOW, PENRATE, GREEN = _suite("inflow"), _suite("penrate"), _suite("green")
