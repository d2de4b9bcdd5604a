"""The optional ``batch_norm_inference`` hook of the JAX backend: one jitted kernel.

The statistics are folded into a per-channel ``scale = gamma / sqrt(var + eps)`` and
``shift = beta - mean * scale`` on the ``(C,)`` vectors, then ``x * scale + shift``;
the whole function is one ``jax.jit`` program (``axis`` and ``eps`` static), so XLA
fuses the multiply-add into one pass over ``x`` even in eager code (inside a
compiled step it is inlined into the caller's program). No training-mode
``batch_norm``: under ``jax.jit`` XLA fuses BatchNorm's composition.
"""

from __future__ import annotations

import jax.numpy as jnp

from unified.hookspecs import Array
from unified.plugins import hookimpl
from unified_jax.eager import eager_jit


@eager_jit(static_argnames=("axis", "eps"))
def _fold(
    x: Array,
    mean: Array,
    var: Array,
    gamma: Array | None,
    beta: Array | None,
    axis: int,
    eps: float,
) -> Array:
    shape = tuple(-1 if i == axis else 1 for i in range(x.ndim))
    scale = 1.0 / jnp.sqrt(var + jnp.asarray(eps, var.dtype))
    if gamma is not None:
        scale = scale * gamma
    shift = -(mean * scale)
    if beta is not None:
        shift = shift + beta
    return x * scale.reshape(shape) + shift.reshape(shape)


@hookimpl
def batch_norm_inference(
    x: Array,
    mean: Array,
    var: Array,
    gamma: Array | None,
    beta: Array | None,
    axis: int,
    eps: float,
) -> Array:
    return _fold(x, mean, var, gamma, beta, axis=int(axis), eps=float(eps))
