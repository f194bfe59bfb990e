"""Optional adapter to run a torch policy on a JAX env zero-copy, through DLPack.

A JAX suite's observations are JAX arrays; ``jax_to_torch`` / ``tree_to_torch`` hand them to a
torch policy and ``torch_to_jax`` / ``tree_to_jax`` hand its actions back, without copying. It
needs both ``jax`` and ``torch`` (the ``jax`` and ``sb3`` extras), which is why it lives with the
baselines and not in the core.

Both directions share the buffer (no copy) when it lives on one device both frameworks see; the
result aliases the input, so never mutate one while the other is in use (JAX assumes its
arrays are immutable). Zero-copy both ways (tested in ``tests/test_torch_jax.py``, CPU): float32,
float16, bfloat16, complex64, uint8/16/32, int8/16/32, bool. ``torch_to_jax`` copies instead:

- 64-bit tensors (float64, int64, uint64) unless ``jax_enable_x64`` is on: JAX narrows them
  to 32 bits (its canonical dtypes), so dtype changes too; with x64 on they are zero-copy;
- non-contiguous tensors (``t.T``, strided slices): made contiguous first, JAX imports only
  dense row-major buffers;
- buffers not 64-byte aligned (e.g. ``t[1:]`` of a fresh tensor): XLA-CPU copies them.

``jax_to_torch`` is always zero-copy (JAX buffers are dense and aligned).
"""

from __future__ import annotations

from typing import Any

import jax
import torch

PyTree = Any


def jax_to_torch(x: jax.Array) -> torch.Tensor:
    """The torch view of a JAX array (same buffer, same dtype and shape)."""
    return torch.from_dlpack(x)


def torch_to_jax(t: torch.Tensor) -> jax.Array:
    """The JAX view of a torch tensor; copies only a non-contiguous tensor."""
    return jax.dlpack.from_dlpack(t if t.is_contiguous() else t.contiguous())


def tree_to_torch(tree: PyTree) -> PyTree:
    """``jax_to_torch`` on every array leaf of a pytree (e.g. a batch of dict observations)."""
    return jax.tree.map(jax_to_torch, tree)


def tree_to_jax(tree: PyTree) -> PyTree:
    """``torch_to_jax`` on every tensor leaf (torch tensors are leaves for ``jax.tree``)."""
    return jax.tree.map(torch_to_jax, tree)
