"""The MXNet 1.9 backend of ``unified``: every hook on the legacy, imperative ``mx.nd``.

Arrays are plain ``mx.nd.NDArray`` objects, so a model ported to ``unified`` and a
native Gluon model (``nn.Dense``, ``gluon.Trainer``, ``autograd``) can run side by
side in one process and exchange arrays. Differentiation goes through
``mx.autograd.record()`` and ``backward()``.

0-d arrays and NumPy-shape semantics
------------------------------------
The contract needs 0-d arrays (reductions over all axes, the value returned by
``value_and_grad``), and legacy ``mx.nd`` treats the shape ``()`` as "unknown": every
operator fails on a 0-d input unless NumPy-shape semantics are on
(``mx.util.set_np_shape(True)``). Turning them on for the whole process at import
was tried and rejected, because it changes the behaviour of native MXNet code that
shares the process:

* Gluon's deferred initialization relies on ``0`` meaning "unknown dimension";
  under NumPy shapes ``0`` is a zero-size dimension, and a hybridized
  ``nn.Conv2D(4, 3)`` (``in_channels=0``) fails with "kernel size exceed input";
* indexing changes: ``x[0, 1]`` becomes 0-d instead of shape ``(1,)``;
* the flag is thread-local in MXNet 1.9, so other threads would not see it anyway.

(``nn.Dense``, ``BatchNorm``, ``Trainer``, ``autograd`` and parameter files kept
working with the flag on; the breakage is in the other layers and in indexing.)

So the flag is scoped instead: every hook turns NumPy shapes on for the duration of
its own MXNet calls and then restores the caller's setting, through one direct
``MXSetIsNumpyShape`` call on each side (about 0.4 us per hook, a few percent of
the cost of the cheapest MXNet operator). ``value_and_grad`` keeps the flag on for
the whole of ``fn`` and ``backward()``. Native code outside the hooks never sees
the flag. Legacy reductions still return shape ``(1,)`` for a full reduction even
under NumPy shapes, so the reduction hooks reshape that result to ``()`` (a
recorded, zero-copy reshape).

0-d arrays produced here work as inputs to every hook. Outside the hooks, native
``mx.nd`` code can read them (``asnumpy()``, ``asscalar()``) but not compute on them
unless it enables NumPy shapes itself (``with mx.util.np_shape(True): ...``).

Gradient conventions the contract fixes and MXNet does not:

* ``max``: MXNet's backward gives the full gradient to every tied element; here the
  value is the sum of the tied entries divided by their count (tie mask and count
  computed off the tape), so each tie gets an equal share;
* ``maximum`` / ``minimum``: MXNet gives a tie wholly to its left operand; here the
  value is ``op(a, b) / 2 + op(b, a) / 2``, so each side gets half (the value stays
  exact);
* ``relu'(0) = 0`` and ``abs'(0) = 0`` already hold in MXNet.

MXNet 1.9.1 defects worked around:

* ``FullyConnected``'s backward leaves the bias gradient unwritten when the weight
  gets no gradient (a frozen weight): ``linear`` then adds the bias separately
  (only when recording and the weight is not a marked variable; otherwise the
  fused bias is kept, it is much faster);
* the oneDNN ``log_softmax`` kernel is off by up to ~3e-6 in values and gradients:
  ``log_softmax`` passes ``temperature=1.0``, which selects the exact kernel.

Speed: ``value_and_grad`` differentiates detached views of its inputs (no copy) and
recycles gradient buffers the caller has released (see :class:`_GradBuffers`;
MXNet 1.9 does not pool CPU memory, and fresh multi-megabyte buffers cost page
faults on every step). A gradient array is never reused while anything refers to
it; only a *native* view of it (``g.reshape``, ``g[i]``, ``g.detach()``) kept after
the array itself is dropped is not tracked, so copy such a view if you keep it.

Importing this module imports ``mxnet``, applying :func:`_numpy_bool_shim` first.
"""

from __future__ import annotations

import builtins
import ctypes
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy


def _numpy_bool_shim() -> None:
    """Restore ``numpy.bool`` (removed in NumPy 1.24), which MXNet 1.9.1 still uses.

    Sets ``numpy.bool = bool`` only when NumPy lacks the attribute and patches nothing
    else. The lookup is silenced because NumPy 1.24 to 1.26 warn (``FutureWarning``)
    when the missing attribute is merely probed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        missing = not hasattr(numpy, "bool")
    if missing:
        numpy.bool = bool  # type: ignore[attr-defined]


_numpy_bool_shim()

import mxnet as mx  # noqa: E402  (needs the shim above)
from mxnet.base import NDArrayHandle, c_array  # noqa: E402

from unified import BackendInfo, hookimpl  # noqa: E402

Array = Any
Axis = int | tuple[int, ...] | None

_nd = mx.nd
_NDArray = mx.nd.NDArray
_LIB = mx.base._LIB
_MXNetError = mx.base.MXNetError
_is_recording = mx.autograd.is_recording

# ----------------------------------------------------------------------------------
# Scoped NumPy-shape semantics (see the module docstring)
# ----------------------------------------------------------------------------------

_set_is_np_shape = _LIB.MXSetIsNumpyShape  # (int active, int *previous) -> status


class _PreviousFlag(threading.local):
    """Per-thread buffer receiving the previous flag (ctypes releases the GIL)."""

    def __init__(self) -> None:
        self.value = ctypes.c_int()
        self.ref = ctypes.byref(self.value)


_previous = _PreviousFlag()
_sink = ctypes.c_int()
_SINK = ctypes.byref(_sink)


def _np_on() -> int:
    """Turn NumPy-shape semantics on in this thread; return the previous setting."""
    prev = _previous
    _set_is_np_shape(1, prev.ref)
    return prev.value.value


def _np_restore(previous: int) -> None:
    """Restore the setting returned by :func:`_np_on`."""
    _set_is_np_shape(previous, _SINK)


from unified_mxnet.scalar import Scalar as _Scalar  # noqa: E402  (needs _np_on)
from unified_mxnet.scalar import as_scalar as _as_scalar  # noqa: E402

_NO_DIMS = c_array(ctypes.c_int64, ())


def _to_0d(x: Array) -> Array:
    """Return the one-element array ``x`` as a 0-d view, recorded by autograd.

    ``NDArray.reshape`` would do the same through ``MXNDArrayReshape64`` but spends
    most of its time in a NumPy size check that is pointless here (the size is 1).
    """
    handle = NDArrayHandle()
    mx.base.check_call(
        _LIB.MXNDArrayReshape64(x.handle, 0, _NO_DIMS, False, ctypes.byref(handle))
    )
    return _Scalar(handle=handle, writable=x.writable)


def _reduce(op: Callable[..., Array], x: Array, axis: Axis, keepdims: bool) -> Array:
    """Apply the legacy reduction ``op`` with NumPy's result shape.

    Default arguments are left out of the call: each one passed costs MXNet's
    Python front end about a microsecond.
    """
    if axis is None:
        return op(x, keepdims=True) if keepdims else _to_0d(op(x))
    if axis == ():  # NumPy reduces nothing; MXNet would reduce everything
        return _nd.identity(x)
    out = op(x, axis=axis, keepdims=keepdims)
    return out if keepdims or not _reduces_all(x, axis) else _to_0d(out)


def _reduces_all(x: Array, axis: int | tuple[int, ...]) -> bool:
    """Tell whether reducing ``x`` over ``axis`` leaves no axis."""
    ndim = x.ndim
    if isinstance(axis, int):
        return ndim <= 1
    return len({a % ndim for a in axis}) == ndim


# ----------------------------------------------------------------------------------
# Identity and conversion
# ----------------------------------------------------------------------------------


@hookimpl
def backend_info() -> BackendInfo:
    return BackendInfo(
        name="mxnet",
        framework="mxnet",
        version=mx.__version__,
        capabilities=frozenset({"inplace"}),
    )


@hookimpl
def is_array(x: Any) -> bool:
    return isinstance(x, _NDArray)


@hookimpl
def asarray(x: Any, dtype: str) -> Array:
    prev = _np_on()
    try:
        if isinstance(x, _NDArray):
            return x.astype(dtype, copy=False)
        return _nd.array(x, dtype=dtype)
    finally:
        _np_restore(prev)


@hookimpl
def to_numpy(x: Array) -> Any:
    prev = _np_on()
    try:
        return x.asnumpy()
    finally:
        _np_restore(prev)


@hookimpl
def zeros(shape: tuple[int, ...], dtype: str) -> Array:
    prev = _np_on()
    try:
        return _nd.zeros(tuple(shape), dtype=dtype)
    finally:
        _np_restore(prev)


@hookimpl
def zeros_like(x: Array) -> Array:
    prev = _np_on()
    try:
        return _nd.zeros_like(x)
    finally:
        _np_restore(prev)


@hookimpl
def astype(x: Array, dtype: str) -> Array:
    prev = _np_on()
    try:
        return _nd.cast(x, dtype=dtype)
    finally:
        _np_restore(prev)


@hookimpl
def assign(target: Array, value: Array) -> Array:
    if value is target:
        return target
    prev = _np_on()
    try:
        if isinstance(value, _NDArray):
            value.copyto(target)  # one in-place copy; works for 0-d arrays too
        else:
            target[:] = value
        return target
    finally:
        _np_restore(prev)


@hookimpl
def axpby(a: float, x: Array, b: float, y: Array) -> Array:
    """``y = a*x + b*y`` in place (the optimizers' fused update); return ``y``."""
    prev = _np_on()
    try:
        if b != 1.0:
            y *= b
        if a == 1.0:
            y += x
        else:
            y += x * a
        return y
    finally:
        _np_restore(prev)


# ----------------------------------------------------------------------------------
# Differentiation
# ----------------------------------------------------------------------------------


class _GradBuffers:
    """Gradient buffers of earlier ``value_and_grad`` calls, reused once released.

    MXNet 1.9 does not pool CPU memory: a fresh gradient buffer of a few megabytes is
    mapped anew by the C allocator and page-faulted while backward writes it, about
    10% of the CPU time of a 784-512-512-10 MLP training step. Gluon never pays it,
    its gradient buffers live as long as the parameters. Here a buffer returned by
    an earlier call is reused only when this pool holds the sole reference to it
    (the caller dropped or replaced it), and it is then entirely overwritten
    (grad_req "write") or zero-filled, so no value crosses calls. The pool keeps at
    most two buffers per input of the latest call (the one the caller holds and a
    spare) and forgets the shapes that call did not use.

    A view shares its buffer without referencing the Python object, so one made by
    the ``reshape`` hook pins the buffer (it leaves the pool for good). Native views
    (``g.reshape``, ``g[i]``, ``g.detach()``) are not seen: a caller keeping one past
    the gradient array itself must copy it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[tuple[Any, ...], list[Array]] = {}
        self.ids: frozenset[int] = frozenset()  # of the pooled buffers

    def take(self, keys: list[tuple[Any, ...]]) -> list[Array | None]:
        """Return a released buffer for each key, or ``None`` where there is none."""
        out: list[Array | None] = []
        with self._lock:
            for key in keys:
                found = None
                held = self._free.get(key)
                if held:
                    for j in range(len(held)):
                        # References: the list slot and getrefcount's argument.
                        if sys.getrefcount(held[j]) == 2:
                            found = held.pop(j)
                            break
                out.append(found)
        return out

    def keep(self, keys: list[tuple[Any, ...]], grads: list[Array]) -> None:
        """Remember the buffers just returned; forget everything else but a spare."""
        fresh: dict[tuple[Any, ...], list[Array]] = {}
        for key, g in zip(keys, grads, strict=True):
            fresh.setdefault(key, []).append(g)
        with self._lock:
            for key, bufs in fresh.items():
                bufs.extend(self._free.get(key, ())[: len(bufs)])
            self._free = fresh
            self.ids = frozenset(id(g) for bufs in fresh.values() for g in bufs)

    def pin(self, buffer: Array) -> None:
        """Never reuse ``buffer`` (a view of it exists)."""
        with self._lock:
            for bufs in self._free.values():
                for j, g in enumerate(bufs):
                    if g is buffer:
                        del bufs[j]
                        self.ids = self.ids - {id(buffer)}
                        return


_grad_buffers = _GradBuffers()


@hookimpl
def value_and_grad(
    fn: Callable[[list[Array]], Array], arrays: Sequence[Array]
) -> tuple[Array, list[Array]]:
    prev = _np_on()
    try:
        # Fresh handles sharing the inputs' memory (no copy): the autograd marks and
        # the gradient buffers live on them, never on the caller's arrays.
        leaves = [a.detach() for a in arrays]
        keys = [(leaf.shape, leaf.dtype, leaf.context) for leaf in leaves]
        grads = _grad_buffers.take(keys)
        for i, g in enumerate(grads):
            if g is None:
                shape, dtype, ctx = keys[i]
                grads[i] = _nd.empty(shape, ctx=ctx, dtype=dtype)
        if leaves:
            mx.autograd.mark_variables(leaves, grads, "write")
        with mx.autograd.record():
            out = fn(leaves)
        if out.size != 1:
            raise ValueError(
                f"value_and_grad needs fn to return a scalar, got shape {out.shape}"
            )
        try:
            out.backward()
        except _MXNetError as exc:
            # ``fn`` returned a constant: no input reaches the output.
            if "not in a computational graph" not in str(exc):
                raise
        for leaf, g in zip(leaves, grads, strict=True):
            if not leaf._fresh_grad:  # backward did not reach this input
                _nd.zeros_like(leaf, out=g)
        _grad_buffers.keep(keys, grads)
        value = out.detach()
        value = _to_0d(value) if value.ndim != 0 else _as_scalar(value)
        return value, grads
    finally:
        _np_restore(prev)


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
    return _nd.full((), value, dtype=like.dtype)


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


# The hookimpls of :mod:`unified_mxnet.shape_ops`, re-exported: pluggy registers this
# package module, so they must be its attributes. Imported last: that module uses
# the scoped-flag helpers above.
from unified_mxnet import shape_ops as _shape_ops  # noqa: E402

argmax = _shape_ops.argmax
clip = _shape_ops.clip
concatenate = _shape_ops.concatenate
equal = _shape_ops.equal
erf = _shape_ops.erf
greater = _shape_ops.greater
less = _shape_ops.less
pad = _shape_ops.pad
slice_axis = _shape_ops.slice_axis
split = _shape_ops.split
stack = _shape_ops.stack
take = _shape_ops.take
where = _shape_ops.where
# The convolution and pooling hooks use the scoped-flag helpers above: import them
# last, once those exist.
from unified_mxnet.nn import conv as conv  # noqa: E402
from unified_mxnet.nn import conv_transpose as conv_transpose  # noqa: E402
from unified_mxnet.nn import pool as pool  # noqa: E402
