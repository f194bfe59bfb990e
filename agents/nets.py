"""Shared network leaves of the MiniGrid PPO agents (docs/design.md, "Agents"): MOORE's expert
CNN, the Gram-Schmidt layer, task-linear mixing, per-task heads, and PCGrad's projection.

Facts from MOORE's code (``moore/utils/networks_ppo.py``, ``mixture_layers.py``, ``pcgrad.py``),
written here from their description, not copied:

- **Expert CNN**: Conv(3->16, 2x2) -> ReLU -> Conv(16->32, 2x2) -> ReLU -> Conv(32->64, 2x2) ->
  flatten, 1024-d on a 7x7 grid. The mixture networks have no activation after the last conv;
  the single-trunk MTPPO network has a tanh there (``last_tanh``). Input: the raw symbolic grid
  as float (no scaling, as MOORE).
- **Init**: PyTorch's defaults, which MOORE keeps: weights and biases ~ U(+-1/sqrt(fan_in)).
  The task-weight matrix (``nn.Linear(n_tasks, k, bias=False)``) has fan_in = number of
  *training* tasks, also when held-out tasks get rows of their own.
- **Gram-Schmidt** over each sample's k expert vectors, in expert order (expert 1 is only
  normalised), classical form (each vector minus its projections on the basis so far). Deviation:
  ``/ (norm + eps)`` with eps = 1e-8 (the JAX port's value) instead of ``/ norm``, so a
  degenerate sample gives finite outputs instead of NaN, and a norm whose gradient at a zero
  vector is 0 instead of NaN (same forward values up to rounding).
- **Mixing**: unconstrained task weights w_c (no bias, no softmax), r = tanh(sum_j w_cj v_j).
- **Heads**: one per task, Linear(1024->128) -> tanh -> Linear(128->out).
- **PCGrad**: every task's gradient is projected, in a random order of all task gradients (its
  own included, which never conflicts), onto the normal plane of each gradient it conflicts with
  (negative dot product); shared parameters get the *mean* of the projected gradients, per-task
  parameters (heads) their *sum* (MOORE's ``PCGrad(reduction='mean')``; a head's gradient is
  non-zero only for its own task, so the sum is that task's gradient).

Vector observations (toy and control suites) get MLP experts instead (``MLPExperts``, widths
``mlp_widths``), with the same mixing and heads: MOORE's own design for state inputs (its SAC).

Layout: inputs are *grouped by task*: ``obs`` is ``(G, n, 7, 7, 3)`` with one task id per group
``task_ids: (G,)``. Training batches are stratified (n samples of each task), so per-task heads
are one batched matmul with no wasted FLOPs; arbitrary batches use ``G = B, n = 1``.

``SACNet`` is the state-input family of the SAC agents (``mtsac.py``): MTSAC's one-hot MLP, the
multi-head MLP, and MOORE's / MoE's MLP experts, with Meta-World+'s initialisers (its JAX port,
``rainx0r/metaworld-algorithms``: He-uniform hidden layers, zero biases, heads U(+-1e-3) for
the actor and U(+-3e-3) for critics).

Convolutions are written as im2col matmuls (``conv2x2``): XLA's CPU convolution is slow for 2x2
kernels on 7x7 inputs (``benchmarks/train_throughput.py`` measures both); ``conv2x2_xla`` is the
``lax.conv`` reference the tests compare against.

Performance notes (issue 17, profiled with ``jax.profiler`` per XLA op on one core, MOORE's
MT3 update, 768-sample minibatches; docs/performance.md):

- **im2col by stack + reshape.** ``conv2x2`` stacks the four shifted windows on a new axis and
  merges it with the channels by a reshape, instead of concatenating them on the channel axis.
  The (N*H*W, 4C) matrix and the matmul are the same (values and gradients bitwise equal, checked
  per layer), but XLA CPU copied the minor-axis concatenate at ~1 GB/s (the third layer's im2col:
  6.9 ms of its 20 ms forward + backward); with the stack that layer's forward + backward ran
  18 % faster in isolation.
- **Constant task rows** (``per_group``): the trainers' groups are constant (one per training
  task, in order), so per-task parameters are used as they are instead of gathered, and the
  backward pass has no scatter-add into a (T, 1024, 128) head gradient. Same values.
- What still bounds the update (measured, not changed here): the weight gradients of the
  convolutions and heads (``patches^T @ dout``, a dot contracting the sample axis) run on XLA's
  generic dot, 2-3x slower per FLOP than the forward matmuls it hands to its YNNPACK fusions:
  about 19 % of MOORE's update. Forcing a materialised transpose before the dot (custom VJP +
  ``optimization_barrier``) was no faster on this machine. The im2col copies and the elementwise
  Gram-Schmidt / mixing / tanh passes (memory-bound) take most of the rest. Keeping the experts
  as k separate arrays through Gram-Schmidt (as ``SACNet``) and fusing the experts' first layers
  into one matmul (tried together) gave no measurable gain on the whole update and change the
  rounding of the results, so they are not used here.

``SACNet``'s experts stay k separate (G, n, d) arrays through Gram-Schmidt and the mixing
(``gram_schmidt_list``, ``mix``): no stacked (..., k, d) intermediates. The mixing is then a sum
of k products instead of an einsum, equal up to float reassociation (the pinned first updates
of tests/test_numerics.py are unchanged at their 6 digits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

Kind = Literal["mtppo", "moe", "moore"]
CHANNELS = (16, 32, 64)


def torch_uniform(fan_in: int) -> Callable[..., jax.Array]:
    """PyTorch's default Linear / Conv init for weights and biases: U(+-1/sqrt(fan_in))."""
    bound = 1.0 / fan_in**0.5

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def conv2x2(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """Valid 2x2 convolution as im2col + matmul. ``x``: (..., H, W, C); ``w``: (4 * C, O) with
    rows ordered (dy, dx, c); ``b``: (O,). Leading dims of ``x`` beyond ``w``'s are batch."""
    # The patches are stacked on a new axis and merged with the channels by a reshape, not
    # concatenated on the channel axis: the same (N*H*W, 4C) matrix, but XLA CPU copies a
    # minor-axis concatenate of 4 x C floats slowly (MOORE's third layer: 6.9 ms of a 20 ms
    # forward + backward on a 768-sample minibatch), and the stack 18 % faster overall.
    patches = jnp.stack(
        [x[..., :-1, :-1, :], x[..., :-1, 1:, :], x[..., 1:, :-1, :], x[..., 1:, 1:, :]], axis=-2
    )
    # One 2-D matmul (XLA CPU runs (N*H*W, 4C) @ (4C, O) ~1.5x faster than the 4-D dot).
    shape = patches.shape
    return (patches.reshape(-1, 4 * shape[-1]) @ w).reshape(*shape[:-2], w.shape[-1]) + b


def conv2x2_xla(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """The same convolution with ``lax.conv_general_dilated`` (NHWC, HWIO): the reference."""
    kernel = w.reshape(2, 2, x.shape[-1], w.shape[-1])
    out = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
    return out + b


class CNNExperts(nn.Module):
    """``k`` independent copies of MOORE's MiniGrid CNN: (N, H, W, C) -> (k, N, 64 (H-3)(W-3))."""

    k: int
    last_tanh: bool = False
    conv: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] = conv2x2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        params, cin = [], x.shape[-1]
        for i, cout in enumerate(CHANNELS):
            init = torch_uniform(4 * cin)
            params.append((self.param(f"w{i}", init, (self.k, 4 * cin, cout)),
                           self.param(f"b{i}", init, (self.k, cout))))  # fmt: skip
            cin = cout
        # A Python loop over experts, not ``vmap``: XLA CPU runs the k-batched dots of a vmap
        # 2-3x slower than k plain 2-D matmuls (benchmarks/train_throughput.py, README).
        outs = []
        for j in range(self.k):
            h = x
            for i, (w, b) in enumerate(params):
                h = self.conv(h, w[j], b[j])
                h = nn.relu(h) if i < len(params) - 1 else (jnp.tanh(h) if self.last_tanh else h)
            outs.append(h.reshape(x.shape[0], -1))
        return jnp.stack(outs)


class MLPExperts(nn.Module):
    """``k`` MLP experts for vector observations: (N, D) -> (k, N, widths[-1]); ReLU between
    layers, the last layer linear (tanh with ``last_tanh``), as MOORE's SAC experts."""

    k: int
    widths: tuple[int, ...] = (64, 64)
    last_tanh: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.widths):
            init = torch_uniform(x.shape[-1])
            w = self.param(f"w{i}", init, (self.k, x.shape[-1], width))
            b = self.param(f"b{i}", init, (self.k, width))
            x = (x @ w if i == 0 else jnp.einsum("knd,kdw->knw", x, w)) + b[:, None]
            last = i == len(self.widths) - 1
            x = nn.relu(x) if not last else (jnp.tanh(x) if self.last_tanh else x)
        return x


def gram_schmidt(u: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Orthonormalise the k vectors of each sample: (..., k, d) -> (..., k, d), expert order."""
    return jnp.stack(gram_schmidt_list([u[..., i, :] for i in range(u.shape[-2])], eps), axis=-2)


def gram_schmidt_list(experts: list[jax.Array], eps: float = 1e-8) -> list[jax.Array]:
    """``gram_schmidt`` on k arrays (..., d), one per expert (the same operations): the networks
    keep their experts apart, since a stacked (..., k, d) array puts k on a minor axis and XLA
    then transposes every GS intermediate (moore-sac's update moved 7.6 GB per step that way)."""
    basis: list[jax.Array] = []
    for u in experts:
        v = u
        for e in basis:  # classical GS: project the original vector on each basis vector
            v = v - jnp.sum(u * e, axis=-1, keepdims=True) * e
        basis.append(v / (_safe_norm(v) + eps))
    return basis


def mix(weights: jax.Array, experts: list[jax.Array]) -> jax.Array:
    """tanh(sum_j w_j v_j): ``weights`` (G, k) one row per group, experts k x (G, n, d)."""
    z = weights[:, 0, None, None] * experts[0]
    for j in range(1, len(experts)):
        z = z + weights[:, j, None, None] * experts[j]
    return jnp.tanh(z)


def _safe_norm(v: jax.Array) -> jax.Array:
    """``jnp.linalg.norm(v, axis=-1, keepdims=True)`` with a zero (not NaN) gradient at v = 0,
    which ReLU experts do produce (an all-zero input meets zero-initialised biases)."""
    sq = jnp.sum(v * v, axis=-1, keepdims=True)
    nonzero = sq > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


class MultiTaskNet(nn.Module):
    """One actor or critic network of the MiniGrid PPO agents (module docstring).

    ``kind``: ``mtppo`` (one CNN with tanh, per-task heads), ``moe`` (k CNNs, task-linear mixing,
    tanh, per-task heads), ``moore`` (``moe`` with Gram-Schmidt before the mixing)."""

    kind: Kind
    n_experts: int
    num_tasks: int
    num_train_tasks: int
    out: int
    hidden: int = 128
    eps: float = 1e-8
    mlp_widths: tuple[int, ...] = (64, 64)
    flatten: bool = False
    """MLP experts on the flattened observation, also for grids."""
    conv: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] = conv2x2

    @nn.compact
    def __call__(self, obs: jax.Array, task_ids: jax.Array) -> jax.Array:
        g, n = obs.shape[:2]
        x = obs.reshape(g * n, *obs.shape[2:]).astype(jnp.float32)
        k, tanh = (1, True) if self.kind == "mtppo" else (self.n_experts, False)
        if x.ndim == 4 and not self.flatten:  # (N, H, W, C) grids: MOORE's CNN
            u = CNNExperts(k, last_tanh=tanh, conv=self.conv, name="experts")(x)
        else:  # vector observations (toy, control suites): MLP experts
            x = x.reshape(g * n, -1)
            u = MLPExperts(k, self.mlp_widths, last_tanh=tanh, name="experts")(x)
        u = jnp.moveaxis(u.reshape(k, g, n, -1), 0, 2)  # (G, n, k, d)
        if self.kind == "mtppo":
            z = u[:, :, 0]
        else:
            if self.kind == "moore":
                u = gram_schmidt(u, self.eps)
            weights = self.param("task_weights", torch_uniform(self.num_train_tasks),
                                 (self.num_tasks, k))  # fmt: skip
            z = jnp.tanh(jnp.einsum("gk,gnkd->gnd", per_group(weights, task_ids), u))
        d = z.shape[-1]
        w1 = self.param("head_w1", torch_uniform(d), (self.num_tasks, d, self.hidden))
        b1 = self.param("head_b1", torch_uniform(d), (self.num_tasks, self.hidden))
        init2 = torch_uniform(self.hidden)
        w2 = self.param("head_w2", init2, (self.num_tasks, self.hidden, self.out))
        b2 = self.param("head_b2", init2, (self.num_tasks, self.out))
        w1, b1, w2, b2 = (per_group(p, task_ids) for p in (w1, b1, w2, b2))
        h = jnp.tanh(jnp.einsum("gnd,gdh->gnh", z, w1) + b1[:, None])
        return jnp.einsum("gnh,gho->gno", h, w2) + b2[:, None]


def per_group(param: jax.Array, task_ids: jax.Array) -> jax.Array:
    """``param[task_ids]``: the rows of a per-task parameter, one per group. Where ``task_ids``
    is a constant (the trainers' groups, one per training task, closed over by their jitted
    functions), the rows are static slices, and ``param`` itself when the groups are all tasks
    in order: no gather, and no scatter-add of a (T, 1024, 128) head gradient in the backward
    pass. Traced ids (acting on arbitrary batches) gather. The values are the same either way."""
    if isinstance(task_ids, jax.core.Tracer):
        return param[task_ids]
    ids = [int(i) for i in np.asarray(task_ids)]
    if ids == list(range(param.shape[0])):
        return param
    return jnp.stack([param[i] for i in ids])


SACKind = Literal["mtsac", "mh", "moe", "moore"]


class SACNet(nn.Module):
    """A SAC actor or critic on vector inputs, grouped like ``MultiTaskNet``: ``x (G, n, D)``,
    ``slots (G,)`` -> ``(G, n, out)``. ``mtsac``: MLP on ``x`` + one-hot, one output layer;
    ``mh``: the same trunk (ReLU after every layer) and one head per task; ``moe`` / ``moore``:
    k MLP experts on ``x`` alone (last layer linear), [Gram-Schmidt,] task-linear mixing (no
    bias), tanh, one head per task (MOORE's ``networks_sac.py``)."""

    kind: SACKind
    n_experts: int
    num_slots: int
    out: int
    widths: tuple[int, ...] = (400, 400, 400)
    head_scale: float = 1e-3
    eps: float = 1e-8

    @nn.compact
    def __call__(self, x: jax.Array, slots: jax.Array) -> jax.Array:
        g, n, _ = x.shape
        hidden, zeros = nn.initializers.he_uniform(), nn.initializers.zeros
        head = symmetric_uniform(self.head_scale)
        if self.kind in ("mtsac", "mh"):
            onehot = jax.nn.one_hot(slots, self.num_slots, dtype=x.dtype)
            h = jnp.concatenate([x, jnp.broadcast_to(onehot[:, None], (g, n, self.num_slots))], -1)
            for i, width in enumerate(self.widths):
                h = nn.relu(nn.Dense(width, kernel_init=hidden, name=f"trunk{i}")(h))
            if self.kind == "mtsac":
                return nn.Dense(self.out, kernel_init=head, name="out")(h)
            z = h
        else:
            k, x2 = self.n_experts, x.reshape(g * n, x.shape[-1])
            params, fan_in = [], x2.shape[-1]
            for i, width in enumerate(self.widths):
                params.append((self.param(f"experts_w{i}", stacked(hidden, k), (fan_in, width)),
                               self.param(f"experts_b{i}", zeros, (k, width))))  # fmt: skip
                fan_in = width
            outs = []  # a Python loop over experts: plain 2-D matmuls (see CNNExperts)
            for j in range(k):
                h = x2
                for i, (w, b) in enumerate(params):
                    h = h @ w[j] + b[j]
                    h = nn.relu(h) if i < len(params) - 1 else h
                outs.append(h.reshape(g, n, -1))
            if self.kind == "moore":
                outs = gram_schmidt_list(outs, self.eps)
            weights = self.param("task_weights", hidden, (self.num_slots, k))
            z = mix(weights[slots], outs)
        w = self.param("head_w", stacked(head, self.num_slots), (z.shape[-1], self.out))
        b = self.param("head_b", zeros, (self.num_slots, self.out))
        return jnp.einsum("gnd,gdo->gno", z, w[slots]) + b[slots][:, None]


def twin(params: Any, i: int) -> Any:
    """Network ``i`` of parameters stacked on a leading axis (SAC's twin critics). The agents
    loop over the twins instead of ``vmap``: plain 2-D matmuls, which XLA CPU runs faster than
    the batched dots of a vmap (moore-sac's update: 1.4x with the unstacked experts)."""
    return jax.tree.map(lambda leaf: leaf[i], params)


def symmetric_uniform(scale: float) -> Callable[..., jax.Array]:
    """U(-scale, scale), the classic SAC output-layer init."""
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -scale, scale
    )


def stacked(init: Callable[..., jax.Array], k: int) -> Callable[..., jax.Array]:
    """``k`` independent draws of ``init`` stacked on a new leading axis (one per expert / task),
    so each gets the fan-in of a single matrix."""
    return lambda key, shape, dtype=jnp.float32: jax.vmap(lambda kk: init(kk, shape, dtype))(
        jax.random.split(key, k)
    )


def is_head(path: tuple, _leaf: object = None) -> bool:
    """Per-task head parameters (PCGrad sums these; everything else is shared)."""
    return any(str(getattr(p, "key", p)).startswith("head_") for p in path)


def pcgrad(grads: jax.Array, key: jax.Array, head_mask: jax.Array) -> jax.Array:
    """PCGrad (Yu et al., 2020) on flattened per-task gradients ``(T, P)``: returns ``(P,)``,
    the mean of projected gradients on shared entries and their sum where ``head_mask``."""
    num_tasks = grads.shape[0]
    orders = jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(
        jax.random.split(key, num_tasks)
    )

    def project(g_i: jax.Array, order: jax.Array) -> jax.Array:
        def body(g: jax.Array, j: jax.Array) -> tuple[jax.Array, None]:
            g_j = grads[j]
            dot = g @ g_j
            return jnp.where(dot < 0, g - dot / (g_j @ g_j) * g_j, g), None

        return jax.lax.scan(body, g_i, order)[0]

    projected = jax.vmap(project)(grads, orders)
    return jnp.where(head_mask, projected.sum(0), projected.mean(0))


def task_grad(loss_fn: Callable[[Any], jax.Array], params: Any, use_pcgrad: bool,
              key: jax.Array) -> tuple[jax.Array, Any]:  # fmt: skip
    """``(mean loss, gradient)`` of the per-task losses ``loss_fn(params) -> (T,)``: the
    gradient of their mean, or with ``use_pcgrad`` the PCGrad combination of per-task gradients
    (shared parameters: mean; per-task heads, ``is_head``: sum)."""
    if not use_pcgrad:
        return jax.value_and_grad(lambda p: loss_fn(p).mean())(params)
    per_task, losses = jax.jacrev(lambda p: (loss_fn(p),) * 2, has_aux=True)(params)
    unravel = ravel_pytree(params)[1]
    grads = jax.vmap(lambda g: ravel_pytree(g)[0])(per_task)  # (T, P)
    heads = jax.tree_util.tree_map_with_path(lambda p, x: jnp.full(x.shape, is_head(p)), params)
    return losses.mean(), unravel(pcgrad(grads, key, ravel_pytree(heads)[0] > 0))


def apply_chunked(net, params, obs, task_ids, chunk: int) -> jax.Array:
    """``net.apply(params, obs, task_ids)`` on a grouped batch ``(T, n, ...)``, computed in
    ``lax.map`` chunks of ``chunk`` samples per group (the tail padded, then dropped).

    A sample's output depends on that sample alone, and the values are bitwise those of one call
    (tested, with XLA CPU's kernels); faster, because a minibatch-sized chunk's activations stay
    in cache, while one call on MOORE's whole 3 x 2000 batch moves every im2col matrix through
    memory (a forward of the actor: 1.1 s whole, 0.64 s in chunks of 256 x 3, on the loaded
    2-core machine)."""
    t, n = obs.shape[:2]
    if n <= chunk:
        return net.apply(params, obs, task_ids)
    m = -(-n // chunk)
    obs = jnp.pad(obs, ((0, 0), (0, m * chunk - n)) + ((0, 0),) * (obs.ndim - 2))
    obs = jnp.moveaxis(obs.reshape(t, m, chunk, *obs.shape[2:]), 1, 0)
    out = jax.lax.map(lambda o: net.apply(params, o, task_ids), obs)
    return jnp.moveaxis(out, 0, 1).reshape(t, m * chunk, *out.shape[3:])[:, :n]
