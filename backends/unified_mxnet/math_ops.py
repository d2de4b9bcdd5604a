"""The math hooks of the MXNet backend: elementwise, activations, linear algebra,
reductions and shapes, each under the scoped NumPy-shape flag."""

from __future__ import annotations

import builtins
from typing import Any

import mxnet as mx

from unified import hookimpl
from unified_mxnet import (
    Array,
    Axis,
    _is_recording,
    _nd,
    _NDArray,
    _np_on,
    _np_restore,
    _reduce,
    _reduces_all,
    _to_0d,
)
from unified_mxnet.autodiff import _grad_buffers

# ----------------------------------------------------------------------------------
# Math: elementwise
# ----------------------------------------------------------------------------------


@hookimpl
def add(a: Array, b: Array) -> Array:
    prev = _np_on()
    try:
        return a + b
    finally:
        _np_restore(prev)


@hookimpl
def subtract(a: Array, b: Array) -> Array:
    prev = _np_on()
    try:
        return a - b
    finally:
        _np_restore(prev)


@hookimpl
def multiply(a: Array, b: Array) -> Array:
    prev = _np_on()
    try:
        return a * b
    finally:
        _np_restore(prev)


@hookimpl
def divide(a: Array, b: Array) -> Array:
    prev = _np_on()
    try:
        return a / b
    finally:
        _np_restore(prev)


def _as_operand(value: Any, like: Array) -> Array:
    """Return ``value`` as an array (a scalar becomes 0-d, of ``like``'s dtype)."""
    if isinstance(value, _NDArray):
        return value
    return _nd.full((), value, dtype=like.dtype, ctx=like.context)


@hookimpl
def maximum(a: Array, b: Array) -> Array:
    prev = _np_on()
    try:
        a = _as_operand(a, b)
        b = _as_operand(b, a)
        # broadcast_maximum's backward gives a tie to its left operand; averaging
        # both orders splits it in half. Halving before adding keeps the value
        # exact (no overflow near the largest float).
        return _nd.broadcast_maximum(a, b) * 0.5 + _nd.broadcast_maximum(b, a) * 0.5
    finally:
        _np_restore(prev)


@hookimpl
def minimum(a: Array, b: Array) -> Array:
    prev = _np_on()
    try:
        a = _as_operand(a, b)
        b = _as_operand(b, a)
        return _nd.broadcast_minimum(a, b) * 0.5 + _nd.broadcast_minimum(b, a) * 0.5
    finally:
        _np_restore(prev)


@hookimpl
def power(x: Array, exponent: float) -> Array:
    prev = _np_on()
    try:
        return x**exponent
    finally:
        _np_restore(prev)


@hookimpl
def negative(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.negative(x)
    finally:
        _np_restore(prev)


@hookimpl
def exp(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.exp(x)
    finally:
        _np_restore(prev)


@hookimpl
def log(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.log(x)
    finally:
        _np_restore(prev)


@hookimpl
def log1p(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.log1p(x)
    finally:
        _np_restore(prev)


@hookimpl
def sqrt(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.sqrt(x)
    finally:
        _np_restore(prev)


@hookimpl
def square(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.square(x)
    finally:
        _np_restore(prev)


@hookimpl
def abs(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.abs(x)  # backward is sign(x): 0 at 0
    finally:
        _np_restore(prev)


# ----------------------------------------------------------------------------------
# Math: activations
# ----------------------------------------------------------------------------------


@hookimpl
def relu(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.relu(x)  # backward is (x > 0): 0 at 0
    finally:
        _np_restore(prev)


@hookimpl
def sigmoid(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.sigmoid(x)
    finally:
        _np_restore(prev)


@hookimpl
def tanh(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.tanh(x)
    finally:
        _np_restore(prev)


@hookimpl
def softmax(x: Array, axis: int = -1) -> Array:
    prev = _np_on()
    try:
        return _nd.softmax(x, axis=axis)
    finally:
        _np_restore(prev)


@hookimpl
def log_softmax(x: Array, axis: int = -1) -> Array:
    prev = _np_on()
    try:
        # An explicit temperature keeps MXNet off its oneDNN kernel, whose values and
        # gradients are off by up to ~3e-6 absolute (beyond float32 tolerances).
        return _nd.log_softmax(x, axis=axis, temperature=1.0)
    finally:
        _np_restore(prev)


# ----------------------------------------------------------------------------------
# Math: linear algebra
# ----------------------------------------------------------------------------------


@hookimpl
def matmul(a: Array, b: Array) -> Array:
    prev = _np_on()
    try:
        sa, sb = a.shape, b.shape
        if len(sa) == 2 and len(sb) == 2:
            return _nd.dot(a, b)
        return _matmul_general(a, b, sa, sb)
    finally:
        _np_restore(prev)


def _matmul_general(
    a: Array, b: Array, sa: tuple[int, ...], sb: tuple[int, ...]
) -> Array:
    """NumPy ``matmul`` beyond 2-d @ 2-d: promoted vectors, broadcast batch axes."""
    vec_a, vec_b = len(sa) == 1, len(sb) == 1
    if vec_a:
        sa = (1,) + sa
    if vec_b:
        sb = sb + (1,)
    batch = _broadcast_shapes(sa[:-2], sb[:-2])
    a = _broadcast_batch(a, sa, batch)
    b = _broadcast_batch(b, sb, batch)
    if batch:
        out = _nd.batch_dot(a.reshape((-1,) + sa[-2:]), b.reshape((-1,) + sb[-2:]))
    else:
        out = _nd.dot(a, b)
    shape = batch + (sa[-2], sb[-1])
    if vec_a:
        shape = shape[:-2] + shape[-1:]
    if vec_b:
        shape = shape[:-1]
    return _to_0d(out) if not shape else out.reshape(shape)


def _broadcast_batch(x: Array, shape: tuple[int, ...], batch: tuple[int, ...]) -> Array:
    """Return ``x`` (of ``shape`` up to missing unit axes) as ``batch + shape[-2:]``."""
    full = batch + shape[-2:]
    if shape == full:
        return x.reshape(full) if x.ndim != len(full) else x
    padded = (1,) * (len(full) - len(shape)) + shape
    return _nd.broadcast_to(x.reshape(padded), shape=full)


def _broadcast_shapes(s: tuple[int, ...], t: tuple[int, ...]) -> tuple[int, ...]:
    """Return NumPy's broadcast of two shapes (raising ``ValueError`` if they clash)."""
    n = builtins.max(len(s), len(t))
    s, t = (1,) * (n - len(s)) + s, (1,) * (n - len(t)) + t
    out = []
    for i, j in zip(s, t, strict=True):
        if i != j and 1 not in (i, j):
            raise ValueError(f"matmul: batch shapes {s} and {t} do not broadcast")
        out.append(j if i == 1 else i)
    return tuple(out)


@hookimpl
def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    prev = _np_on()
    try:
        units = weight.shape[0]
        if bias is None:
            return _nd.FullyConnected(
                x, weight, num_hidden=units, no_bias=True, flatten=False
            )
        if not _is_recording() or weight.grad is not None:
            # Not recording, or the weight is a differentiated input (a marked
            # variable): the fused bias is exact and much faster than adding it.
            return _nd.FullyConnected(x, weight, bias, num_hidden=units, flatten=False)
        # MXNet 1.9.1's FullyConnected backward leaves the bias gradient unwritten
        # when the weight gets none (a frozen weight), so add the bias separately.
        y = _nd.FullyConnected(x, weight, num_hidden=units, no_bias=True, flatten=False)
        return _nd.broadcast_add(y, bias)
    finally:
        _np_restore(prev)


# ----------------------------------------------------------------------------------
# Math: reductions and shapes
# ----------------------------------------------------------------------------------


@hookimpl
def sum(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    prev = _np_on()
    try:
        return _reduce(_nd.sum, x, axis, keepdims)
    finally:
        _np_restore(prev)


@hookimpl
def mean(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    prev = _np_on()
    try:
        return _reduce(_nd.mean, x, axis, keepdims)
    finally:
        _np_restore(prev)


@hookimpl
def max(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    prev = _np_on()
    try:
        if axis == ():
            return _nd.identity(x)
        with mx.autograd.pause():
            top = _nd.max(x, axis=axis, keepdims=True)
            tied = _nd.broadcast_equal(x, top)
            count = _nd.sum(tied, axis=axis, keepdims=keepdims)
            fill = _nd.zeros_like(x)
        # Only the tied entries reach the sum (``where`` keeps -inf out of any
        # product), and dividing by their count shares the gradient evenly.
        picked = _nd.where(tied, x, fill)
        out = _nd.sum(picked, axis=axis, keepdims=keepdims) / count
        if not keepdims and (axis is None or _reduces_all(x, axis)):
            out = _to_0d(out)
        return out
    finally:
        _np_restore(prev)


@hookimpl
def reshape(x: Array, shape: tuple[int, ...]) -> Array:
    prev = _np_on()
    try:
        if id(x) in _grad_buffers.ids:
            _grad_buffers.pin(x)  # the result shares the gradient's buffer
        shape = tuple(shape)
        if shape:
            return x.reshape(shape)
        if x.size != 1:
            raise ValueError(f"cannot reshape array of size {x.size} into shape ()")
        return _to_0d(x)
    finally:
        _np_restore(prev)


@hookimpl
def transpose(x: Array, axes: tuple[int, ...] | None = None) -> Array:
    prev = _np_on()
    try:
        if axes is None:
            return _nd.transpose(x)
        n = len(axes)  # a permutation names every axis once
        return _nd.transpose(x, axes=tuple(a % n for a in axes))
    finally:
        _np_restore(prev)


@hookimpl
def one_hot(indices: Array, depth: int, dtype: str) -> Array:
    prev = _np_on()
    try:
        return _nd.one_hot(indices, depth, dtype=dtype)
    finally:
        _np_restore(prev)
