"""Contextual traffic suites (MBTL, Cho et al., NeurIPS 2024): SUMO reference backends and
pure-JAX backends of the same scenarios (``signal.py`` / ``signal_jax.py``, ``eco.py`` /
``eco_jax.py``).

Every context dimension is a 50-value grid, as in MBTL's traffic job scripts; one suite per
(family, context), the other contexts at their defaults. Splits are fixed (v1) and defined on
the grid index ``i`` (0..49), the same for every suite::

    train        16 20 24 28 32          (the middle third, every 4th value)
    test_interp  18 22 26 30             (strictly between train values)
    test_extrap  0 4 9 39 44 49          (outside [16, 32], near and far, both sides)
    test         test_interp + test_extrap
    all          0..49 (transfer matrices, MBTL's source-task selection)
"""

from __future__ import annotations

from typing import Any

from mtrl_bench.types import Suite, Task

GRID = 50
TRAIN = (16, 20, 24, 28, 32)
TEST_INTERP = (18, 22, 26, 30)
TEST_EXTRAP = (0, 4, 9, 39, 44, 49)


def grid_values(lo: float, hi: float) -> tuple[float, ...]:
    """The 50 evenly spaced context values lo ... hi (rounded to 9 digits)."""
    return tuple(round(lo + (hi - lo) * i / (GRID - 1), 9) for i in range(GRID))


def splits() -> dict[str, tuple[int, ...]]:
    return {
        "train": TRAIN,
        "test": tuple(sorted(TEST_INTERP + TEST_EXTRAP)),
        "test_interp": TEST_INTERP,
        "test_extrap": TEST_EXTRAP,
        "all": tuple(range(GRID)),
    }


def jax_suite(suite: Suite, module: str, model: str) -> Suite:
    """The SUMO suite's tasks and splits on the JAX backend in ``module`` (``make_suite_env``)."""
    return Suite(
        id=suite.id.replace("traffic/", "traffic-jax/", 1),
        tasks=suite.tasks,
        splits=dict(suite.splits),
        env_factory=f"mtrl_bench.envs.traffic.{module}:make_suite_env",
        backend="jax",
        description=suite.description.replace("on SUMO", f"on a JAX {model}"),
        options={**suite.options, "upstream": f"{model} (JAX)"},
    )


def context_suite(
    suite_id: str,
    family: str,
    context: str,
    values: tuple[float, ...],
    *,
    max_episode_steps: int,
    score_bounds: tuple[float, float],
    env_factory: str,
    backend: str,
    description: str,
    options: dict[str, Any],
) -> Suite:
    """One suite of a traffic family: task ``i`` sets ``context = values[i]``."""
    tasks = tuple(
        Task(
            name=f"{family}[{context}={v:g}]",
            index=i,
            max_episode_steps=max_episode_steps,
            score_bounds=score_bounds,
            kwargs=(("attr", context), ("value", v)),
        )
        for i, v in enumerate(values)
    )
    return Suite(
        id=suite_id,
        tasks=tasks,
        splits=splits(),
        env_factory=env_factory,
        backend=backend,  # type: ignore[arg-type]
        description=description,
        options={"context": context, **options},
    )
