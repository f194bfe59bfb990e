"""Pure-JAX contextual CartPole and Pendulum: the ``control-jax/*`` suites (docs/suites/control.md).

The same tasks, splits, normalisers and success rules as the numpy suites in
``envs/control.py`` (read its docstring); the context is data in ``params``, so ``jax.vmap`` over
stacked params steps a batch that mixes contexts. ``step`` autoresets SAME_STEP with the step's
``key`` (``mtrl_bench.jax_env``).

Dynamics are gymnasium 1.x's ``CartPoleEnv.step`` (explicit Euler, force +-10 N, termination at
|x| > 2.4 or |theta| > 12 deg, reward 1 on every step including the terminating one) and
``PendulumEnv.step`` (torque clipped to +-2, cost ``angle_normalize(th)**2 + 0.1 thdot**2 +
0.001 u**2`` on the pre-step state, reward ``-cost``, speed clipped to +-8, then
``th += thdot * dt``), written out again in the same operation order. The time limit (500 /
200, gymnasium's ``TimeLimit``: truncated when the step count reaches the limit, also on a
terminating step) is the ``t`` counter in the state. Reset: CartPole uniform(-0.05, 0.05)^4;
Pendulum theta ~ U[-pi, pi], theta_dot ~ U[-1, 1].

Precision: all arithmetic is float32 (gymnasium computes in float64 and casts the observation to
float32). Every transition from the same state agrees with gymnasium to float32 precision
(measured over whole episodes at 0.1x-10x contexts: observations within 1.1e-6 for CartPole and
3e-6 for Pendulum, rewards equal / within 3.4e-6, every terminated / truncated / success flag
equal). Over a trajectory the float32 rounding is amplified like any perturbation (the upright
pole is unstable, ~e^{4 t/s}; Pendulum at large ``dt`` is chaotic), so long free-running
comparisons drift (``tests/test_control.py`` measures both).
"""

from __future__ import annotations

import math
from functools import cache
from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from mtrl_bench.envs import control
from mtrl_bench.jax_env import JaxEnv
from mtrl_bench.types import Suite, Task

_F32 = jnp.float32


class CartPoleParams(NamedTuple):
    gravity: jax.Array
    masscart: jax.Array
    masspole: jax.Array
    total_mass: jax.Array
    length: jax.Array  # half the pole's length, as in gymnasium
    polemass_length: jax.Array
    force_mag: jax.Array
    tau: jax.Array
    theta_threshold_radians: jax.Array
    x_threshold: jax.Array
    max_steps: jax.Array  # int32


class CartPoleState(NamedTuple):
    physics: jax.Array  # float32 (x, x_dot, theta, theta_dot)
    t: jax.Array  # int32 steps taken in this episode


class PendulumParams(NamedTuple):
    max_speed: jax.Array
    max_torque: jax.Array
    dt: jax.Array
    g: jax.Array
    m: jax.Array
    l: jax.Array  # noqa: E741  (gymnasium's name)
    upright_angle: jax.Array  # success: |theta| below this (rad) ...
    upright_hold: jax.Array  # int32 ... after each of the last this many steps
    max_steps: jax.Array  # int32


class PendulumState(NamedTuple):
    theta: jax.Array  # float32, wrapped to [-pi, pi] (see PendulumJax)
    theta_dot: jax.Array
    t: jax.Array  # int32
    upright_steps: jax.Array  # int32 consecutive upright steps up to now


def _context(task: Task, defaults: dict[str, float]) -> dict[str, float]:
    attr, value = control.context(task)
    if attr not in defaults:
        raise ValueError(f"{task.name}: context {attr!r} is not one of {sorted(defaults)}")
    return {**defaults, attr: value}


def _autoreset(env: JaxEnv, key, params, obs, state, reward, terminated, truncated, success):
    """SAME_STEP: when the episode ends the returned obs and state are a fresh episode's."""
    done = terminated | truncated
    reset_obs, reset_state = env.reset(key, params)
    new_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
    info = {"success": success, "final_obs": obs}
    return jnp.where(done, reset_obs, obs), new_state, reward, terminated, truncated, info


class CartPoleJax:
    """Gymnasium ``CartPole-v1`` (module docstring); the context is in ``CartPoleParams``."""

    DEFAULTS = {"gravity": 9.8, "masscart": 1.0, "masspole": 0.1, "length": 0.5,
                "force_mag": 10.0, "tau": 0.02}  # fmt: skip

    def __init__(self) -> None:
        self.theta_threshold_radians = 12 * 2 * math.pi / 360
        self.x_threshold = 2.4
        high = np.array(
            [self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf], np.float32
        )
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def params(self, task: Task) -> CartPoleParams:
        c = _context(task, self.DEFAULTS)
        # derived masses in float64, as CartPoleEnv.__init__, then float32
        return CartPoleParams(
            gravity=_F32(c["gravity"]), masscart=_F32(c["masscart"]),
            masspole=_F32(c["masspole"]), total_mass=_F32(c["masspole"] + c["masscart"]),
            length=_F32(c["length"]), polemass_length=_F32(c["masspole"] * c["length"]),
            force_mag=_F32(c["force_mag"]), tau=_F32(c["tau"]),
            theta_threshold_radians=_F32(self.theta_threshold_radians),
            x_threshold=_F32(self.x_threshold), max_steps=jnp.int32(task.max_episode_steps),
        )  # fmt: skip

    def reset(self, key: jax.Array, params: CartPoleParams) -> tuple[jax.Array, CartPoleState]:
        physics = jax.random.uniform(key, (4,), _F32, -0.05, 0.05)
        return physics, CartPoleState(physics, jnp.int32(0))

    def step(self, key, state: CartPoleState, action, params: CartPoleParams):
        p = params
        x, x_dot, theta, theta_dot = state.physics
        force = jnp.where(action == 1, p.force_mag, -p.force_mag)
        costheta, sintheta = jnp.cos(theta), jnp.sin(theta)
        temp = (force + p.polemass_length * jnp.square(theta_dot) * sintheta) / p.total_mass
        thetaacc = (p.gravity * sintheta - costheta * temp) / (
            p.length * (4.0 / 3.0 - p.masspole * jnp.square(costheta) / p.total_mass)
        )
        xacc = temp - p.polemass_length * thetaacc * costheta / p.total_mass
        # explicit Euler: positions use the old velocities (gymnasium's default integrator)
        x, x_dot = x + p.tau * x_dot, x_dot + p.tau * xacc
        theta, theta_dot = theta + p.tau * theta_dot, theta_dot + p.tau * thetaacc
        physics = jnp.stack([x, x_dot, theta, theta_dot])
        t = state.t + 1
        terminated = (jnp.abs(x) > p.x_threshold) | (jnp.abs(theta) > p.theta_threshold_radians)
        truncated = t >= p.max_steps
        success = truncated & ~terminated
        state = CartPoleState(physics, t)
        return _autoreset(self, key, params, physics, state, _F32(1.0), terminated, truncated,
                          success)  # fmt: skip


def _angle_normalize(x: jax.Array) -> jax.Array:
    return ((x + jnp.pi) % (2 * jnp.pi)) - jnp.pi


# 2 pi as a float32 pair (hi + lo), so that wrapping adds no error beyond the result's rounding
_TWO_PI_HI = np.float32(2 * np.pi)
_TWO_PI_LO = np.float32(2 * np.pi - float(_TWO_PI_HI))


def _wrap(theta: jax.Array) -> jax.Array:
    """``theta`` minus the nearest multiple of 2 pi (``|result| <= pi``, up to rounding)."""
    k = jnp.round(theta / _TWO_PI_HI)
    return (theta - k * _TWO_PI_HI) - k * _TWO_PI_LO


class PendulumJax:
    """Gymnasium ``Pendulum-v1`` (module docstring); the context is in ``PendulumParams``.

    One representation change: the state's angle is wrapped to [-pi, pi] after every step.
    Gymnasium keeps it unwrapped (it reaches hundreds of radians when the pole spins at large
    ``dt``); every observable (cos, sin, the cost's ``angle_normalize``, ``sin`` in the dynamics)
    is 2 pi-periodic, so the process is the same, but an unwrapped float32 angle of ~800 rad
    would carry only ~6e-5 rad of precision."""

    DEFAULTS = {"max_speed": 8.0, "max_torque": 2.0, "dt": 0.05, "g": 10.0, "m": 1.0, "l": 1.0}

    def __init__(self) -> None:
        high = np.array([1.0, 1.0, self.DEFAULTS["max_speed"]], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        torque = self.DEFAULTS["max_torque"]
        self.action_space = gym.spaces.Box(-torque, torque, (1,), dtype=np.float32)

    def params(self, task: Task) -> PendulumParams:
        c = {k: _F32(v) for k, v in _context(task, self.DEFAULTS).items()}
        return PendulumParams(
            **c, upright_angle=_F32(control.UPRIGHT_ANGLE),
            upright_hold=jnp.int32(control.UPRIGHT_HOLD),
            max_steps=jnp.int32(task.max_episode_steps),
        )  # fmt: skip

    @staticmethod
    def _obs(theta: jax.Array, theta_dot: jax.Array) -> jax.Array:
        return jnp.stack([jnp.cos(theta), jnp.sin(theta), theta_dot])

    def reset(self, key: jax.Array, params: PendulumParams) -> tuple[jax.Array, PendulumState]:
        high = jnp.array([jnp.pi, 1.0], _F32)
        theta, theta_dot = jax.random.uniform(key, (2,), _F32, -high, high)
        return self._obs(theta, theta_dot), PendulumState(theta, theta_dot, jnp.int32(0),
                                                          jnp.int32(0))  # fmt: skip

    def step(self, key, state: PendulumState, action, params: PendulumParams):
        p, th, thdot = params, state.theta, state.theta_dot
        u = jnp.clip(jnp.asarray(action, _F32).reshape(-1)[0], -p.max_torque, p.max_torque)
        costs = _angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * p.g / (2 * p.l) * jnp.sin(th) + 3.0 / (p.m * p.l**2) * u) * p.dt
        newthdot = jnp.clip(newthdot, -p.max_speed, p.max_speed)
        newth = _wrap(th + newthdot * p.dt)
        t = state.t + 1
        upright = jnp.abs(_angle_normalize(newth)) < p.upright_angle
        upright_steps = jnp.where(upright, state.upright_steps + 1, 0)
        truncated = t >= p.max_steps
        terminated = jnp.zeros((), bool)
        success = truncated & (upright_steps >= p.upright_hold)
        new_state = PendulumState(newth, newthdot, t, upright_steps)
        return _autoreset(self, key, params, self._obs(newth, newthdot), new_state, -costs,
                          terminated, truncated, success)  # fmt: skip


@cache
def _env(upstream: str) -> CartPoleJax | PendulumJax:
    return {"CartPole-v1": CartPoleJax, "Pendulum-v1": PendulumJax}[upstream]()


def make_suite_env(suite: Suite) -> CartPoleJax | PendulumJax:
    """``f(suite) -> JaxEnv`` of the ``control-jax/*`` suites. The envs are stateless (the
    context is in ``params``), so the suites of one upstream env share one object, and with it
    the jitted functions that callers cache per env object."""
    return _env(suite.options["upstream"])


def _jax_suite(suite: Suite) -> Suite:
    """The numpy suite's tasks and splits on this backend."""
    return Suite(
        id=suite.id.replace("control/", "control-jax/", 1),
        tasks=suite.tasks,
        splits=dict(suite.splits),
        env_factory="mtrl_bench.envs.control_jax:make_suite_env",
        backend="jax",
        description=f"{suite.description} (pure JAX)",
        options=dict(suite.options),
    )


CARTPOLE_MASSCART = _jax_suite(control.CARTPOLE_MASSCART)
CARTPOLE_LENGTH = _jax_suite(control.CARTPOLE_LENGTH)
CARTPOLE_MASSPOLE = _jax_suite(control.CARTPOLE_MASSPOLE)
PENDULUM_DT = _jax_suite(control.PENDULUM_DT)
PENDULUM_LENGTH = _jax_suite(control.PENDULUM_LENGTH)
PENDULUM_MASS = _jax_suite(control.PENDULUM_MASS)
