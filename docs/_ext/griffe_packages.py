"""Griffe extension for the API reference: ``agents/``, ``envs/`` and ``baselines/`` are
installed as ``mtrl_bench.agents`` / ``.envs`` / ``.baselines`` (setuptools ``package-dir``), which
griffe's static finder cannot see from the source tree; attach them to ``mtrl_bench`` by hand.
Nothing is imported: the pages are built from the source text alone (no JAX, torch or MuJoCo)."""

from __future__ import annotations

from typing import Any

import griffe


class MapPackages(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "mtrl_bench":
            return
        for name in ("agents", "envs", "baselines"):
            pkg.set_member(name, loader.load(name, try_relative_path=False))
