"""The math hooks of the NumPy backend, each with a plain path and a tape path.

Every op first checks ``type(x) is Node`` for its inputs. With plain arrays (the
usual case outside ``value_and_grad``) it is one NumPy call and nothing else; when
some input is a :class:`~unified_numpy.tape.Node` it computes the same value on the
unwrapped arrays and records a backward closure with :func:`~unified_numpy.tape.record`.

Dtypes: a Python ``float`` or ``int`` operand is turned into a NumPy scalar of the
other operand's float dtype, so float32 stays float32 even for 0-d arrays and NumPy
scalars (which NumPy 1.x would otherwise promote to float64). Constants inside the
formulas are made the same way.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from unified import hookimpl
from unified_numpy.tape import Node, record, unbroadcast
from unified_numpy.trace import Tracer, asarray

Array = Any
Axis = int | tuple[int, ...] | None

_add = np.add
_subtract = np.subtract
_multiply = np.multiply
_divide = np.true_divide
_maximum = np.maximum
_minimum = np.minimum
_power = np.power
_negative = np.negative
_exp = np.exp
_log = np.log
_log1p = np.log1p
_sqrt = np.sqrt
_square = np.square
_abs = np.abs
_tanh = np.tanh
_matmul = np.matmul
_sum = np.sum
_mean = np.mean
_max = np.max
_reshape = np.reshape
_transpose = np.transpose


def _like(s: float, ref: Any) -> Any:
    """Return Python scalar ``s`` as a scalar of ``ref``'s dtype when that is a float
    (or complex) dtype; otherwise return ``s`` and let NumPy promote."""
    dt = getattr(ref, "dtype", None)
    if dt is not None and dt.kind in "fc":
        return dt.type(s)
    return s


def _values(a: Any, b: Any) -> tuple[Any, Any]:
    """Unwrap Nodes and give a Python scalar operand the other one's float dtype."""
    va = a.value if type(a) is Node else a
    vb = b.value if type(b) is Node else b
    ta, tb = type(va), type(vb)
    if tb is float or tb is int:
        vb = _like(vb, va)
    elif ta is float or ta is int:
        va = _like(va, vb)
    return va, vb


# ----------------------------------------------------------------------------------
# Elementwise binary ops (broadcasting; the gradient is summed back to each shape)
# ----------------------------------------------------------------------------------


@hookimpl
def add(a: Array, b: Array) -> Array:
    """Return ``a + b``."""
    if type(a) is Node or type(b) is Node:
        va, vb = _values(a, b)
        sa, sb = np.shape(va), np.shape(vb)
        return record(
            _add(va, vb),
            (a, b),
            (lambda g: unbroadcast(g, sa), lambda g: unbroadcast(g, sb)),
        )
    tb = type(b)
    if tb is float or tb is int:
        b = _like(b, a)
    else:
        ta = type(a)
        if ta is float or ta is int:
            a = _like(a, b)
    return _add(a, b)


@hookimpl
def subtract(a: Array, b: Array) -> Array:
    """Return ``a - b``."""
    if type(a) is Node or type(b) is Node:
        va, vb = _values(a, b)
        sa, sb = np.shape(va), np.shape(vb)
        return record(
            _subtract(va, vb),
            (a, b),
            (lambda g: unbroadcast(g, sa), lambda g: unbroadcast(_negative(g), sb)),
        )
    tb = type(b)
    if tb is float or tb is int:
        b = _like(b, a)
    else:
        ta = type(a)
        if ta is float or ta is int:
            a = _like(a, b)
    return _subtract(a, b)


@hookimpl
def multiply(a: Array, b: Array) -> Array:
    """Return ``a * b``."""
    if type(a) is Node or type(b) is Node:
        va, vb = _values(a, b)
        sa, sb = np.shape(va), np.shape(vb)
        return record(
            _multiply(va, vb),
            (a, b),
            (
                lambda g: unbroadcast(g * vb, sa),
                lambda g: unbroadcast(g * va, sb),
            ),
        )
    tb = type(b)
    if tb is float or tb is int:
        b = _like(b, a)
    else:
        ta = type(a)
        if ta is float or ta is int:
            a = _like(a, b)
    return _multiply(a, b)


@hookimpl
def divide(a: Array, b: Array) -> Array:
    """Return ``a / b`` (true division)."""
    if type(a) is Node or type(b) is Node:
        va, vb = _values(a, b)
        sa, sb = np.shape(va), np.shape(vb)
        out = _divide(va, vb)
        return record(
            out,
            (a, b),
            (
                lambda g: unbroadcast(g / vb, sa),
                lambda g: unbroadcast(_negative(g * out / vb), sb),
            ),
        )
    tb = type(b)
    if tb is float or tb is int:
        b = _like(b, a)
    else:
        ta = type(a)
        if ta is float or ta is int:
            a = _like(a, b)
    return _divide(a, b)


def _extremum_node(a: Any, b: Any, pick: Any, wins: Any) -> Node:
    """Tape path of maximum/minimum: ``wins(u, v)`` is where ``u`` is picked
    strictly; on ties each operand gets half of the gradient."""
    va, vb = _values(a, b)
    sa, sb = np.shape(va), np.shape(vb)

    def share(g: Any, mine: Any, other: Any, shape: tuple[int, ...]) -> Any:
        half = g * g.dtype.type(0.5)
        return unbroadcast(g * wins(mine, other) + half * (mine == other), shape)

    return record(
        pick(va, vb),
        (a, b),
        (lambda g: share(g, va, vb, sa), lambda g: share(g, vb, va, sb)),
    )


@hookimpl
def maximum(a: Array, b: Array) -> Array:
    """Return the elementwise maximum; on ties the gradient is split in half."""
    if type(a) is Node or type(b) is Node:
        return _extremum_node(a, b, _maximum, np.greater)
    tb = type(b)
    if tb is float or tb is int:
        b = _like(b, a)
    else:
        ta = type(a)
        if ta is float or ta is int:
            a = _like(a, b)
    return _maximum(a, b)


@hookimpl
def minimum(a: Array, b: Array) -> Array:
    """Return the elementwise minimum; on ties the gradient is split in half."""
    if type(a) is Node or type(b) is Node:
        return _extremum_node(a, b, _minimum, np.less)
    tb = type(b)
    if tb is float or tb is int:
        b = _like(b, a)
    else:
        ta = type(a)
        if ta is float or ta is int:
            a = _like(a, b)
    return _minimum(a, b)


@hookimpl
def power(x: Array, exponent: float) -> Array:
    """Return ``x ** exponent`` for a scalar exponent."""
    te = type(exponent)
    if type(x) is Node:
        xv = x.value
        if te is float or te is int:
            e, e_minus_1 = _like(exponent, xv), _like(exponent - 1, xv)
        else:
            e, e_minus_1 = exponent, exponent - 1
        return record(_power(xv, e), (x,), (lambda g: g * e * _power(xv, e_minus_1),))
    if te is float or te is int:
        exponent = _like(exponent, x)
    return _power(x, exponent)


# ----------------------------------------------------------------------------------
# Elementwise unary ops
# ----------------------------------------------------------------------------------


@hookimpl
def negative(x: Array) -> Array:
    """Return ``-x``."""
    if type(x) is Node:
        return record(_negative(x.value), (x,), (_negative,))
    return _negative(x)


@hookimpl
def exp(x: Array) -> Array:
    """Return ``e ** x``."""
    if type(x) is Node:
        out = _exp(x.value)
        return record(out, (x,), (lambda g: g * out,))
    return _exp(x)


@hookimpl
def log(x: Array) -> Array:
    """Return the natural logarithm."""
    if type(x) is Node:
        xv = x.value
        return record(_log(xv), (x,), (lambda g: g / xv,))
    return _log(x)


@hookimpl
def log1p(x: Array) -> Array:
    """Return ``log(1 + x)``, accurate for small ``x``."""
    if type(x) is Node:
        xv = x.value
        return record(_log1p(xv), (x,), (lambda g: g / (xv + _like(1, xv)),))
    return _log1p(x)


@hookimpl
def sqrt(x: Array) -> Array:
    """Return the square root."""
    if type(x) is Node:
        out = _sqrt(x.value)
        return record(out, (x,), (lambda g: g / (out + out),))
    return _sqrt(x)


@hookimpl
def square(x: Array) -> Array:
    """Return ``x * x``."""
    if type(x) is Node:
        xv = x.value
        return record(_square(xv), (x,), (lambda g: g * (xv + xv),))
    return _square(x)


@hookimpl
def abs(x: Array) -> Array:
    """Return ``|x|``; the gradient at 0 is 0 (``sign(0) == 0``)."""
    if type(x) is Node:
        xv = x.value
        return record(_abs(xv), (x,), (lambda g: g * np.sign(xv),))
    return _abs(x)


# ----------------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------------


@hookimpl
def relu(x: Array) -> Array:
    """Return ``max(x, 0)``; the gradient at 0 is 0."""
    if type(x) is Node:
        xv = x.value
        return record(_maximum(xv, _like(0, xv)), (x,), (lambda g: g * (xv > 0),))
    if type(x) is np.ndarray:
        return _maximum(x, x.dtype.type(0))
    return _maximum(x, _like(0, x))


def _sigmoid(x: Any) -> Any:
    # exp(min(x, 0)) / (1 + exp(-|x|)): both exponents are <= 0, so nothing overflows
    # and the tail for x << 0 keeps its relative precision (no 1 - (1 - tiny)).
    return _exp(_minimum(x, _like(0, x))) / (_like(1, x) + _exp(_negative(_abs(x))))


@hookimpl
def sigmoid(x: Array) -> Array:
    """Return ``1 / (1 + exp(-x))`` (computed without overflow)."""
    if type(x) is Node:
        out = _sigmoid(x.value)
        one = _like(1, out)
        return record(out, (x,), (lambda g: g * (out * (one - out)),))
    return _sigmoid(x)


@hookimpl
def tanh(x: Array) -> Array:
    """Return the hyperbolic tangent."""
    if type(x) is Node:
        out = _tanh(x.value)
        one = _like(1, out)
        return record(out, (x,), (lambda g: g * (one - out * out),))
    return _tanh(x)


def _softmax(x: Any, axis: int) -> Any:
    e = _exp(x - _max(x, axis=axis, keepdims=True))
    return e / _sum(e, axis=axis, keepdims=True)


def _log_softmax(x: Any, axis: int) -> Any:
    z = x - _max(x, axis=axis, keepdims=True)
    return z - _log(_sum(_exp(z), axis=axis, keepdims=True))


@hookimpl
def softmax(x: Array, axis: int = -1) -> Array:
    """Return the softmax along ``axis`` (the max is subtracted first)."""
    if type(x) is Node:
        out = _softmax(x.value, axis)

        def grad(g: Any) -> Any:
            return out * (g - _sum(g * out, axis=axis, keepdims=True))

        return record(out, (x,), (grad,))
    return _softmax(x, axis)


@hookimpl
def log_softmax(x: Array, axis: int = -1) -> Array:
    """Return the log of the softmax along ``axis`` (the max is subtracted first)."""
    if type(x) is Node:
        out = _log_softmax(x.value, axis)

        def grad(g: Any) -> Any:
            return g - _exp(out) * _sum(g, axis=axis, keepdims=True)

        return record(out, (x,), (grad,))
    return _log_softmax(x, axis)


# ----------------------------------------------------------------------------------
# Linear algebra
# ----------------------------------------------------------------------------------


def _matmul_node(a: Any, b: Any) -> Node:
    va = a.value if type(a) is Node else a
    vb = b.value if type(b) is Node else b
    # Treat 1-d operands as matrices, (n,) -> (1, n) on the left and (n, 1) on the
    # right, like matmul itself; the output gradient gets the removed axis back.
    a2 = va[None, :] if va.ndim == 1 else va
    b2 = vb[:, None] if vb.ndim == 1 else vb
    sa, sb = va.shape, vb.shape

    def as_2d(g: Any) -> Any:
        if vb.ndim == 1:  # first: for vector @ vector, g goes () -> (1,) -> (1, 1)
            g = np.expand_dims(g, -1)
        if va.ndim == 1:
            g = np.expand_dims(g, -2)
        return g

    def grad_a(g: Any) -> Any:
        ga = _matmul(as_2d(g), np.swapaxes(b2, -1, -2))
        return unbroadcast(ga, a2.shape).reshape(sa)

    def grad_b(g: Any) -> Any:
        gb = _matmul(np.swapaxes(a2, -1, -2), as_2d(g))
        return unbroadcast(gb, b2.shape).reshape(sb)

    return record(_matmul(va, vb), (a, b), (grad_a, grad_b))


@hookimpl
def matmul(a: Array, b: Array) -> Array:
    """Return the matrix product with NumPy's ``matmul`` semantics."""
    if type(a) is Node or type(b) is Node:
        return _matmul_node(a, b)
    return _matmul(a, b)


def _linear(x: Any, weight: Any, bias: Any) -> Any:
    if x.ndim > 2:  # one GEMM over all leading axes instead of one per batch entry
        y = _matmul(x.reshape(-1, x.shape[-1]), weight.T)
        y = y.reshape(x.shape[:-1] + (weight.shape[0],))
    else:
        y = _matmul(x, weight.T)
    if bias is not None:
        y = _add(y, bias)
    return y


@hookimpl
def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """Return ``x @ weight.T + bias`` for ``x`` of shape ``(..., in_units)``."""
    if type(x) is Node or type(weight) is Node or type(bias) is Node:
        xv = x.value if type(x) is Node else x
        wv = weight.value if type(weight) is Node else weight
        bv = bias.value if type(bias) is Node else bias
        units = wv.shape[0]
        x2 = xv.reshape(-1, xv.shape[-1])  # (rows, in)

        def grad_x(g: Any) -> Any:
            return _matmul(g.reshape(-1, units), wv).reshape(xv.shape)

        def grad_w(g: Any) -> Any:
            return _matmul(g.reshape(-1, units).T, x2)

        def grad_b(g: Any) -> Any:
            return unbroadcast(_sum(g.reshape(-1, units), axis=0), np.shape(bv))

        return record(_linear(xv, wv, bv), (x, weight, bias), (grad_x, grad_w, grad_b))
    return _linear(x, weight, bias)


# ----------------------------------------------------------------------------------
# Reductions and shapes
# ----------------------------------------------------------------------------------


def _axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    """Return ``axis`` as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    return tuple(sorted(a % ndim for a in axis))


def _spread(g: Any, axes: tuple[int, ...], keepdims: bool, shape: Any) -> Any:
    """Broadcast a reduction's output gradient back over the reduced axes."""
    if not keepdims:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


@hookimpl
def sum(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    """Return the sum over ``axis`` (all axes when ``None``)."""
    if type(x) is Node:
        xv = x.value
        out = _sum(xv, axis=axis, keepdims=keepdims)  # first: NumPy checks ``axis``
        axes = _axes(axis, xv.ndim)
        return record(out, (x,), (lambda g: _spread(g, axes, keepdims, xv.shape),))
    return _sum(x, axis=axis, keepdims=keepdims)


@hookimpl
def mean(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    """Return the mean over ``axis`` (all axes when ``None``)."""
    if type(x) is Node:
        xv = x.value
        out = _mean(xv, axis=axis, keepdims=keepdims)  # first: NumPy checks ``axis``
        axes = _axes(axis, xv.ndim)
        count = 1
        for a in axes:
            count *= xv.shape[a]
        inv = 1.0 / builtins.max(count, 1)
        return record(
            out,
            (x,),
            (lambda g: _spread(g * _like(inv, g), axes, keepdims, xv.shape),),
        )
    return _mean(x, axis=axis, keepdims=keepdims)


@hookimpl
def max(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    """Return the maximum over ``axis``; the gradient is shared evenly among ties."""
    if type(x) is Node:
        xv = x.value
        out = _max(xv, axis=axis, keepdims=keepdims)  # first: NumPy checks ``axis``
        axes = _axes(axis, xv.ndim)

        def grad(g: Any) -> Any:
            winners = xv == (out if keepdims else np.expand_dims(out, axes))
            ties = _sum(winners, axis=axes, keepdims=True).astype(g.dtype)
            g = g if keepdims else np.expand_dims(g, axes)
            return winners * (g / ties)

        return record(out, (x,), (grad,))
    return _max(x, axis=axis, keepdims=keepdims)


@hookimpl
def reshape(x: Array, shape: tuple[int, ...]) -> Array:
    """Return ``x`` with a new shape (one dimension may be ``-1``)."""
    if type(x) is Node:
        xshape = x.value.shape
        return record(_reshape(x.value, shape), (x,), (lambda g: _reshape(g, xshape),))
    return _reshape(x, shape)


@hookimpl
def transpose(x: Array, axes: tuple[int, ...] | None = None) -> Array:
    """Return ``x`` with its axes permuted (reversed when ``axes`` is ``None``)."""
    if type(x) is Node:
        xv = x.value
        if axes is None:
            inverse = None
        else:
            order = [0] * xv.ndim
            for i, a in enumerate(axes):
                order[a % xv.ndim] = i
            inverse = tuple(order)
        return record(_transpose(xv, axes), (x,), (lambda g: _transpose(g, inverse),))
    return _transpose(x, axes)


@hookimpl
def one_hot(indices: Array, depth: int, dtype: str) -> Array:
    """Return one-hot rows for integer ``indices`` (not differentiable).

    An index outside ``[0, depth)`` gives a row of zeros.
    """
    idx = asarray(indices.value if type(indices) is Node else indices)
    return (idx[..., None] == np.arange(depth)).astype(dtype)


@hookimpl
def astype(x: Array, dtype: str) -> Array:
    """Return ``x`` cast to ``dtype`` (``x`` itself when it already has it).

    On the tape, a cast to a float dtype passes the gradient back cast to ``x``'s
    dtype; a cast to any other dtype is a constant (it cuts the graph).
    """
    if type(x) is Node:
        xv = x.value
        out = asarray(xv, dtype=dtype)
        if out.dtype.kind not in "fc":
            return out
        src = xv.dtype
        return record(out, (x,), (lambda g: asarray(g, dtype=src),))
    return asarray(x, dtype=dtype)


@hookimpl
def zeros(shape: tuple[int, ...], dtype: str) -> Array:
    """Return a new array of zeros."""
    return np.zeros(shape, dtype)


@hookimpl
def zeros_like(x: Array) -> Array:
    """Return a new array of zeros with ``x``'s shape and dtype (a constant)."""
    return np.zeros_like(x.value if type(x) is Node else x)


# ----------------------------------------------------------------------------------
# Indexing (not a hook: used by Node.__getitem__)
# ----------------------------------------------------------------------------------


def _gathers(key: Any) -> bool:
    """Tell whether ``key`` holds integer index arrays (which may repeat entries)."""
    parts = key if type(key) is tuple else (key,)
    for k in parts:
        if isinstance(k, (list, np.ndarray, Tracer)) and asarray(k).dtype.kind in "iu":
            return True
    return False


def getitem(x: Array, key: Any) -> Array:
    """Return ``x[key]``; on the tape the gradient is scattered back (summed where an
    integer index array selects the same entry twice)."""
    if type(key) is Node:
        key = key.value
    elif type(key) is tuple:
        key = tuple(k.value if type(k) is Node else k for k in key)
    if type(x) is not Node:
        return x[key]
    xv = x.value
    gather = _gathers(key)

    def grad(g: Any) -> Any:
        gx = np.zeros_like(g, shape=xv.shape, order="C")  # jit: fresh per replay
        if gather:
            np.add.at(gx, key, g)
        else:
            gx[key] += g
        return gx

    return record(xv[key], (x,), (grad,))
