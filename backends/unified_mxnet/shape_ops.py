"""Selection, comparison, shape and indexing hooks of the MXNet backend.

Every hook follows the package's pattern (see :mod:`unified_mxnet`): NumPy-shape
semantics on for the duration of its own ``mx.nd`` calls, the caller's setting
restored after. The adaptations to the contract:

* comparisons: legacy ``mx.nd`` comparisons return 0/1 masks of the operands'
  dtype; the hooks cast them to ``bool`` (computed outside autograd: they are not
  differentiable), so results read back as NumPy booleans;
* ``where``: legacy ``where`` rejects a ``bool`` condition and does not broadcast,
  so the condition is cast to the operands' dtype and all three are broadcast
  (``broadcast_to``, whose backward sums) to the common shape first;
* ``clip``: ``nd.clip``'s gradient is 1 on the closed interval; a missing bound is
  an infinite one;
* ``split`` and ``slice_axis`` use ``nd.slice_axis`` (``nd.split`` only makes equal
  parts); ``pad`` concatenates constant blocks (legacy ``nd.pad`` only pads the
  spatial axes of 4-d and 5-d arrays);
* ``take``: ``nd.take`` (``mode="clip"``), whose backward adds repeated indices up;
* ``argmax``: ``nd.argmax`` returns floats; the result is cast to ``int64``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import mxnet as mx
import numpy

from unified import hookimpl
from unified.hookspecs import Array
from unified_mxnet import _np_on, _np_restore, _to_0d

_nd = mx.nd
_NDArray = mx.nd.NDArray
_pause = mx.autograd.pause


def _array(x: Any, dtype: Any = None, ctx: Any = None) -> Array:
    """``x`` as an NDArray; a scalar or host array gets ``dtype`` (if given) and is
    placed on context ``ctx`` (the other operand's; default: the default context)."""
    if isinstance(x, _NDArray):
        return x
    return _nd.array(numpy.asarray(x), dtype=dtype, ctx=ctx)


def _common_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    n = builtins.max(len(s) for s in shapes)
    out = [1] * n
    for s in shapes:
        for i, d in enumerate((1,) * (n - len(s)) + tuple(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise ValueError(f"shapes {shapes} do not broadcast")
                out[i] = d
    return tuple(out)


def _broadcast(x: Array, shape: tuple[int, ...]) -> Array:
    if x.shape == shape:
        return x
    padded = (1,) * (len(shape) - x.ndim) + tuple(x.shape)
    if padded != x.shape:
        x = x.reshape(padded)
    return _nd.broadcast_to(x, shape=shape)


# ----------------------------------------------------------------------------------
# Selection and comparison
# ----------------------------------------------------------------------------------


@hookimpl
def where(cond: Array, a: Array, b: Array) -> Array:
    prev = _np_on()
    try:
        ref = a if isinstance(a, _NDArray) else b
        a = _array(a, ref.dtype, ref.context)
        b = _array(b, ref.dtype, ref.context)
        with _pause():
            c = _array(cond, ctx=ref.context)
            if c.dtype != ref.dtype:
                c = _nd.cast(c, dtype=ref.dtype)
        shape = _common_shape(c.shape, a.shape, b.shape)
        if not shape:  # legacy where needs at least one axis
            out = _nd.where(c.reshape((1,)), a.reshape((1,)), b.reshape((1,)))
            return _to_0d(out)
        return _nd.where(
            _broadcast(c, shape), _broadcast(a, shape), _broadcast(b, shape)
        )
    finally:
        _np_restore(prev)


def _compare(op: Any, a: Any, b: Any) -> Array:
    prev = _np_on()
    try:
        with _pause():
            ref = a if isinstance(a, _NDArray) else b
            a, b = _array(a, ref.dtype, ref.context), _array(b, ref.dtype, ref.context)
            return _nd.cast(op(a, b), dtype="bool")
    finally:
        _np_restore(prev)


@hookimpl
def greater(a: Array, b: Array) -> Array:
    return _compare(_nd.broadcast_greater, a, b)


@hookimpl
def less(a: Array, b: Array) -> Array:
    return _compare(_nd.broadcast_lesser, a, b)


@hookimpl
def equal(a: Array, b: Array) -> Array:
    return _compare(_nd.broadcast_equal, a, b)


@hookimpl
def clip(x: Array, lo: float | None, hi: float | None) -> Array:
    prev = _np_on()
    try:
        low = -numpy.inf if lo is None else float(lo)
        high = numpy.inf if hi is None else float(hi)
        return _nd.clip(x, low, high)  # backward: 1 where low <= x <= high
    finally:
        _np_restore(prev)


@hookimpl
def erf(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.erf(x)
    finally:
        _np_restore(prev)


# ----------------------------------------------------------------------------------
# Joining, splitting, padding
# ----------------------------------------------------------------------------------


@hookimpl
def concatenate(arrays: Sequence[Array], axis: int) -> Array:
    prev = _np_on()
    try:
        arrays = list(arrays)
        return _nd.concat(*arrays, dim=axis % arrays[0].ndim)
    finally:
        _np_restore(prev)


@hookimpl
def stack(arrays: Sequence[Array], axis: int) -> Array:
    prev = _np_on()
    try:
        arrays = list(arrays)
        return _nd.stack(*arrays, axis=axis % (arrays[0].ndim + 1))
    finally:
        _np_restore(prev)


@hookimpl
def split(x: Array, sections: int | Sequence[int], axis: int) -> list[Array]:
    prev = _np_on()
    try:
        axis %= x.ndim
        n = x.shape[axis]
        if isinstance(sections, int | numpy.integer):
            if sections <= 0 or n % sections:
                raise ValueError(
                    f"split: {sections} sections do not divide an axis of length {n}"
                )
            step = n // int(sections)
            cuts = [step * i for i in range(1, int(sections))]
        else:
            cuts = [int(i) for i in sections]
        edges = [0, *cuts, n]
        return [
            _nd.slice_axis(x, axis=axis, begin=s, end=e)
            for s, e in zip(edges, edges[1:], strict=False)
        ]
    finally:
        _np_restore(prev)


@hookimpl
def pad(x: Array, pad_width: Sequence[tuple[int, int]], value: float = 0.0) -> Array:
    prev = _np_on()
    try:
        out = x
        for axis, (before, after) in enumerate(pad_width):
            parts = []
            for width in (int(before), int(after)):
                shape = list(out.shape)
                shape[axis] = width
                parts.append(
                    _nd.full(tuple(shape), value, dtype=x.dtype, ctx=x.context)
                    if width
                    else None
                )
            if parts[0] is None and parts[1] is None:
                continue
            pieces = [p for p in (parts[0], out, parts[1]) if p is not None]
            out = _nd.concat(*pieces, dim=axis)
        return out if out is not x else _nd.identity(x)
    finally:
        _np_restore(prev)


# ----------------------------------------------------------------------------------
# Indexing
# ----------------------------------------------------------------------------------


@hookimpl
def take(x: Array, indices: Array, axis: int = 0) -> Array:
    prev = _np_on()
    try:
        idx = _array(indices, ctx=x.context)
        return _nd.take(x, idx, axis=axis % x.ndim, mode="clip")
    finally:
        _np_restore(prev)


@hookimpl
def argmax(x: Array, axis: int) -> Array:
    prev = _np_on()
    try:
        with _pause():
            out = _nd.cast(_nd.argmax(x, axis=axis), dtype="int64")
        return _to_0d(out) if x.ndim == 1 else out
    finally:
        _np_restore(prev)


@hookimpl
def slice_axis(x: Array, axis: int, begin: int, end: int | None) -> Array:
    prev = _np_on()
    try:
        axis %= x.ndim
        start, stop, _ = slice(begin, end).indices(x.shape[axis])
        return _nd.slice_axis(x, axis=axis, begin=start, end=builtins.max(stop, start))
    finally:
        _np_restore(prev)
