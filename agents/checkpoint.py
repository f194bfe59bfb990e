"""Checkpoints of JAX training state (shared leaf; docs/design.md, "Agents"): a pytree's leaves
in one ``.npz`` (``allow_pickle=False`` on load: no pickled objects), typed PRNG keys stored as
their key data,
plus ``state.json`` with counters. Both files are replaced atomically, ``state.json`` last, so a
kill at any point leaves the previous complete checkpoint or the new one. Loading needs a
template of the same structure (what the config builds), and refuses a shape mismatch."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mtrl_bench.errors import UsageError
from mtrl_bench.results import atomic_write_bytes, atomic_write_text


def _is_key(x: Any) -> bool:
    return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def save_tree(path: Path, tree: Any, meta: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    leaves = [jax.random.key_data(x) if _is_key(x) else x for x in jax.tree.leaves(tree)]
    buf = io.BytesIO()
    np.savez(buf, *[np.asarray(x) for x in leaves])
    atomic_write_bytes(path / "state.npz", buf.getvalue())
    atomic_write_text(path / "state.json", json.dumps(meta))


def load_tree(path: Path, template: Any) -> tuple[Any, dict[str, Any]] | None:
    """``(tree, meta)`` of the checkpoint in ``path``, or ``None`` if there is none."""
    if not (path / "state.json").exists():
        return None
    leaves, treedef = jax.tree.flatten(template)
    with np.load(path / "state.npz", allow_pickle=False) as data:
        if len(data.files) != len(leaves):
            raise UsageError(f"checkpoint {path} has {len(data.files)} arrays, this config "
                             f"{len(leaves)}; delete it or use another run directory")  # fmt: skip
        arrays = [data[f"arr_{i}"] for i in range(len(leaves))]
    out = []
    for like, x in zip(leaves, arrays, strict=True):
        if _is_key(like):
            out.append(jax.random.wrap_key_data(jnp.asarray(x), impl="threefry2x32"))
            continue
        if x.shape != like.shape:
            raise UsageError(f"checkpoint {path} does not match this config (an array of shape "
                             f"{x.shape}, expected {like.shape}); delete it or use another run "
                             "directory")  # fmt: skip
        out.append(jnp.asarray(x, like.dtype))
    return jax.tree.unflatten(treedef, out), json.loads((path / "state.json").read_text())


def saved_config(path: Path, suite_id: str, tuple_fields: tuple[str, ...]) -> dict[str, Any]:
    """The run directory's saved config (``config.json``) with its agent config's list fields
    ``tuple_fields`` as tuples; refuses a run trained on another suite."""
    saved = json.loads((Path(path) / "config.json").read_text())
    if saved["suite"] != suite_id:
        raise UsageError(f"{path} was trained on {saved['suite']}, not {suite_id}")
    fields = saved["agent_config"]
    saved["agent_config"] = {**fields, **{k: tuple(fields[k]) for k in tuple_fields}}
    return saved
