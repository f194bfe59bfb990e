"""``mtrl datasets make`` / ``mtrl datasets info``: learning-history datasets for in-context RL.

Only parsing lives here; the work needs agents (a PPO learner per task), so it is reached through
the lazy ``"module:attr"`` strings of ``HOOKS`` (``mtrl_bench/agents/icl_data.py``; its docstring
documents the file format). Datasets go to ``data/in_context/`` by default, which git ignores.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from mtrl_bench.types import load_attr

HOOKS = {
    "make": "mtrl_bench.agents.icl_data:make_command",
    "load": "mtrl_bench.agents.icl_data:load",
    "info": "mtrl_bench.agents.icl_data:info_lines",
}


@dataclass(frozen=True)
class MakeArgs:
    """Train one PPO learner per train task of a JAX suite (vmapped over tasks) and write every
    episode in learning order to one .npz file (data/in_context/<suite>/seed<N>.npz)."""

    suite: Annotated[str, tyro.conf.Positional]
    """A JAX suite, e.g. darkroom/dpt-v1, darkroom/ad-v1, point-robot/t2mir-v1."""
    preset: str = "default"
    """Learner preset: default or ci."""
    seed: int = 0
    """Learner seed."""
    out: Path | None = None
    """Output file (default data/in_context/<suite>/seed<N>.npz)."""
    updates: int | None = None
    """PPO updates per task (overrides the preset)."""
    envs: int | None = None
    """Env slots per task (overrides the preset)."""


@dataclass(frozen=True)
class InfoArgs:
    """Print a dataset's size, provenance and return curve over the learning history."""

    path: Annotated[Path, tyro.conf.Positional]
    """A dataset file written by `mtrl datasets make`."""
    points: int = 10
    """Points of the return curve."""


Command = (
    Annotated[MakeArgs, tyro.conf.subcommand("make")]
    | Annotated[InfoArgs, tyro.conf.subcommand("info")]
)


def datasets(cmd: tyro.conf.OmitArgPrefixes[Command]) -> None:
    """Learning-history datasets for in-context RL: make, info."""
    from mtrl_bench.errors import require_positive

    if isinstance(cmd, MakeArgs):
        overrides = {k: v for k, v in (("updates", cmd.updates), ("envs", cmd.envs))
                     if v is not None}  # fmt: skip
        for k, v in overrides.items():
            require_positive(k, v)
        path = load_attr(HOOKS["make"])(cmd.suite, cmd.preset, cmd.seed, cmd.out, overrides)
        print(path)
        return
    require_positive("points", cmd.points)
    data = load_attr(HOOKS["load"])(cmd.path)
    print("\n".join(load_attr(HOOKS["info"])(data, cmd.points)))
