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
:func:`asarray` hands a private copy of host data to MXNet through DLPack
(``nd.from_numpy``) instead of ``nd.array``, whose ``SyncCopyFromCPU`` waits for
every operator already queued in the engine: a new batch no longer stalls until
the previous step has finished computing.

Optional hooks: ``batch_norm`` and ``batch_norm_inference`` (the fused
``BatchNorm`` operator with batch / global statistics, :mod:`unified_mxnet.norm`)
and ``rnn_layer`` (the fused ``RNN`` operator, :mod:`unified_mxnet.recurrent`);
``jit`` (:mod:`unified_mxnet.jit`: a function traced once per input signature into
``CachedOp`` graphs, the forward differentiated as a hybridized Gluon block, the
rest, the ``Trainer``'s optimizer update, as one graph; what it cannot trace runs
eagerly).

Importing this module imports ``mxnet``, applying :func:`_numpy_bool_shim` first.
"""

from __future__ import annotations

import ctypes
import threading
import warnings
from collections.abc import Callable
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
from unified_mxnet.scalar import as_scalar as _as_scalar  # noqa: E402, F401

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
        capabilities=frozenset({"inplace", "jit"}),
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
        name = numpy.dtype(dtype).name
        if name in _DLPACK_DTYPES:
            # A private C-contiguous copy handed over through DLPack: unlike
            # ``nd.array`` (``SyncCopyFromCPU``), this does not wait for every
            # operator already queued in the engine (the previous training step),
            # so the next batch converts while the engine is still busy.
            host = numpy.array(x, dtype=name, copy=True, order="C")
            if host.size:
                return _nd.from_numpy(host, zero_copy=True)
        return _nd.array(x, dtype=dtype)
    finally:
        _np_restore(prev)


_DLPACK_DTYPES = frozenset(
    {"float16", "float32", "float64", "int8", "int32", "int64", "uint8"}
)


@hookimpl
def to_numpy(x: Array) -> Any:
    if _jit.active.recorder is not None:  # a host value would be baked in
        raise _jit.Refused("to_numpy of a traced array")
    if isinstance(x, numpy.ndarray):  # host data (a batch the Trainer kept)
        return x
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


# The hookimpls of the modules below, re-exported: pluggy registers this package
# module, so they must be its attributes. Imported last: they use the helpers above.
from unified_mxnet import autodiff as _autodiff  # noqa: E402
from unified_mxnet import devices as _devices  # noqa: E402
from unified_mxnet import jit as _jit  # noqa: E402
from unified_mxnet import math_ops as _math_ops  # noqa: E402

value_and_grad = _autodiff.value_and_grad
jit = _jit.jit
devices = _devices.devices
to_device = _devices.to_device
device_of = _devices.device_of
add = _math_ops.add
subtract = _math_ops.subtract
multiply = _math_ops.multiply
divide = _math_ops.divide
maximum = _math_ops.maximum
minimum = _math_ops.minimum
power = _math_ops.power
negative = _math_ops.negative
exp = _math_ops.exp
log = _math_ops.log
log1p = _math_ops.log1p
sqrt = _math_ops.sqrt
square = _math_ops.square
abs = _math_ops.abs
relu = _math_ops.relu
sigmoid = _math_ops.sigmoid
tanh = _math_ops.tanh
softmax = _math_ops.softmax
log_softmax = _math_ops.log_softmax
matmul = _math_ops.matmul
linear = _math_ops.linear
sum = _math_ops.sum
mean = _math_ops.mean
max = _math_ops.max
reshape = _math_ops.reshape
transpose = _math_ops.transpose
one_hot = _math_ops.one_hot

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
from unified_mxnet.nn import softmax_cross_entropy as softmax_cross_entropy  # noqa: E402
from unified_mxnet.norm import batch_norm as batch_norm  # noqa: E402
from unified_mxnet.norm import (  # noqa: E402
    batch_norm_inference as batch_norm_inference,
)
from unified_mxnet.recurrent import rnn_layer as rnn_layer  # noqa: E402
