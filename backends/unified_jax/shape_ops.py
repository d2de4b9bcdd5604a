"""Selection, comparison, shape and indexing hooks of the JAX backend.

Thin wrappers over :mod:`jax.numpy` and :mod:`jax.lax`; they accept tracers. The
adaptations to the contract:

* ``clip``: ``jnp.clip`` is ``min(max(x, lo), hi)``, whose gradient is halved at a
  bound; here the value is ``where(lo <= x <= hi, x, clipped)`` with the clipped
  branch cut from the graph, so the gradient is 1 on the closed interval.
* ``split``: ``numpy.split``'s cut points, through ``jnp.split``.
* ``take``: ``jnp.take`` with ``mode="clip"`` (callers guarantee the range; the
  default ``"fill"`` costs an extra select); its transpose is a scatter-add.
* ``argmax``: ``int32`` without x64 (the backend's integer default).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unified.hookspecs import Array
from unified.plugins import hookimpl
from unified_jax.eager import eager_jit


@hookimpl
def where(cond: Array, a: Array, b: Array) -> Array:
    cond = jnp.asarray(cond)
    if cond.dtype != jnp.bool_:
        cond = cond != 0
    return jnp.where(cond, a, b)


@hookimpl
def greater(a: Array, b: Array) -> Array:
    return jnp.greater(a, b)


@hookimpl
def less(a: Array, b: Array) -> Array:
    return jnp.less(a, b)


@hookimpl
def equal(a: Array, b: Array) -> Array:
    return jnp.equal(a, b)


def _clip(x: Array, lo: float | None, hi: float | None) -> Array:
    clipped = jax.lax.stop_gradient(jnp.clip(x, lo, hi))
    inside = jnp.ones(jnp.shape(x), dtype=bool)
    if lo is not None:
        inside = inside & (x >= lo)
    if hi is not None:
        inside = inside & (x <= hi)
    return jnp.where(inside, x, clipped)


_clip_jit = eager_jit(_clip, static_argnames=("lo", "hi"))


@hookimpl
def clip(x: Array, lo: float | None, hi: float | None) -> Array:
    return _clip_jit(x, lo=lo, hi=hi)


@hookimpl
def erf(x: Array) -> Array:
    return jax.lax.erf(x)


@hookimpl
def concatenate(arrays: Sequence[Array], axis: int) -> Array:
    return jnp.concatenate(list(arrays), axis=axis)


@hookimpl
def stack(arrays: Sequence[Array], axis: int) -> Array:
    return jnp.stack(list(arrays), axis=axis)


@hookimpl
def split(x: Array, sections: int | Sequence[int], axis: int) -> list[Array]:
    if isinstance(sections, int | np.integer):
        n = x.shape[axis]
        if sections <= 0 or n % sections:
            raise ValueError(
                f"split: {sections} sections do not divide an axis of length {n}"
            )
        return list(jnp.split(x, int(sections), axis=axis))
    return list(jnp.split(x, [int(i) for i in sections], axis=axis))


@hookimpl
def pad(x: Array, pad_width: Sequence[tuple[int, int]], value: float = 0.0) -> Array:
    widths = [(int(b), int(a)) for b, a in pad_width]
    return jnp.pad(x, widths, mode="constant", constant_values=value)


@hookimpl
def take(x: Array, indices: Array, axis: int = 0) -> Array:
    idx = jnp.asarray(indices)
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        idx = idx.astype(jnp.int32)
    return jnp.take(x, idx, axis=axis, mode="clip")


@hookimpl
def argmax(x: Array, axis: int) -> Array:
    return jnp.argmax(x, axis=axis)


@hookimpl
def slice_axis(x: Array, axis: int, begin: int, end: int | None) -> Array:
    axis %= x.ndim
    start, stop, _ = slice(begin, end).indices(x.shape[axis])
    return jax.lax.slice_in_dim(x, start, max(stop, start), axis=axis)
