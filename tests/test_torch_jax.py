"""``baselines/torch_jax.py``: DLPack hand-off between JAX and torch is zero-copy (same buffer)
and round trips are lossless."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from mtrl_bench.baselines.torch_jax import jax_to_torch, torch_to_jax, tree_to_jax, tree_to_torch

ZERO_COPY = ["float32", "float16", "bfloat16", "uint8", "int8", "int32", "bool"]


def _jax_array(dtype: str, shape=(5, 6)) -> jax.Array:
    x = jax.random.uniform(jax.random.key(0), shape, minval=0, maxval=100)
    return x.astype(jnp.dtype(dtype))


@pytest.mark.parametrize("dtype", ZERO_COPY)
def test_jax_to_torch_and_back_is_zero_copy(dtype):
    x = _jax_array(dtype)
    t = jax_to_torch(x)
    assert t.data_ptr() == x.unsafe_buffer_pointer()
    assert tuple(t.shape) == x.shape and str(t.dtype) == f"torch.{dtype}"
    y = torch_to_jax(t)
    assert y.unsafe_buffer_pointer() == x.unsafe_buffer_pointer()
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(
        np.asarray(y.astype(jnp.float32)), np.asarray(x.astype(jnp.float32))
    )


@pytest.mark.parametrize("dtype", ZERO_COPY)
def test_torch_to_jax_is_zero_copy(dtype):
    t = (torch.rand(4, 7) * 100).to(getattr(torch, dtype))
    x = torch_to_jax(t)
    assert x.unsafe_buffer_pointer() == t.data_ptr() and x.dtype == jnp.dtype(dtype)
    back = jax_to_torch(x)
    assert back.data_ptr() == t.data_ptr() and torch.equal(back, t)


def test_minigrid_batch_zero_copy():
    """A (4096, 7, 7, 3) uint8 observation batch (MiniGrid at batch 4096) crosses without a copy."""
    x = jax.random.randint(jax.random.key(1), (4096, 7, 7, 3), 0, 11).astype(jnp.uint8)
    t = jax_to_torch(x)
    assert t.data_ptr() == x.unsafe_buffer_pointer() and t.dtype == torch.uint8
    assert t.shape == (4096, 7, 7, 3)
    assert torch.equal(t, torch.from_numpy(np.array(x)))
    y = torch_to_jax(t)
    assert y.unsafe_buffer_pointer() == x.unsafe_buffer_pointer()
    assert y.dtype == jnp.uint8 and bool((y == x).all())


def test_documented_copies():
    """Where the module docstring says torch -> jax copies (values still preserved)."""
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    x = torch_to_jax(t.T)  # non-contiguous: made contiguous first
    assert x.unsafe_buffer_pointer() != t.data_ptr()
    np.testing.assert_array_equal(np.asarray(x), t.T.numpy())
    if not jax.config.jax_enable_x64:  # 64-bit tensors are narrowed to JAX's 32-bit dtypes
        d = torch.arange(5, dtype=torch.int64)
        y = torch_to_jax(d)
        assert y.dtype == jnp.int32 and y.unsafe_buffer_pointer() != d.data_ptr()
        np.testing.assert_array_equal(np.asarray(y), d.numpy())


def test_pytree_helpers():
    tree = {"obs": _jax_array("uint8", (3, 7, 7, 3)), "mask": jnp.ones(3, bool)}
    as_torch = tree_to_torch(tree)
    assert set(as_torch) == {"obs", "mask"} and isinstance(as_torch["obs"], torch.Tensor)
    assert as_torch["obs"].data_ptr() == tree["obs"].unsafe_buffer_pointer()
    back = tree_to_jax(as_torch)
    for k in tree:
        assert back[k].dtype == tree[k].dtype and bool((back[k] == tree[k]).all())
