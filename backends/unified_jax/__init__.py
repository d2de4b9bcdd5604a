"""The JAX backend of ``unified``: every hook of :mod:`unified.hookspecs` on JAX.

Registered through the ``unified.backends`` entry point ``jax = "unified_jax"``.
The math hooks are thin wrappers over :mod:`jax.numpy`, :mod:`jax.nn` and
:mod:`jax.lax`, so they accept concrete ``jax.Array`` values and the tracers that
``jax.jit`` and ``jax.value_and_grad`` hand to them alike.

Notes on the contract:

* JAX arrays are immutable: :func:`assign` returns ``value`` (the caller rebinds).
* Binary hooks rely on JAX's weak typing: a Python scalar in either position keeps
  the array's dtype (``1.0 - float32`` stays ``float32``).
* Gradient conventions: ``jax.nn.relu`` has gradient 0 at 0; ``lax.max``/``lax.min``
  split the gradient in half on ties and ``reduce_max`` shares it evenly among
  ties, as the contract asks. ``lax.abs`` has gradient ``+1`` at 0, so :func:`abs`
  carries its own JVP rule (``sign(x)``, which is 0 at 0).
* Matrix products request ``precision="highest"``: full float32 on every device
  (no TF32/bfloat16 passes on GPUs/TPUs), the same numbers as the other backends.
* Importing this module imports ``jax`` and ``jax.numpy`` and changes no global
  JAX setting (x64 stays disabled; float32 is the library default). Without x64,
  a request for a 64-bit dtype gives its 32-bit counterpart (``int64`` labels
  become ``int32``), without JAX's per-call warning.
* Optional hooks: ``jit`` (with ``donate``: buffer donation), ``rnn_layer`` (one
  ``lax.scan`` per direction, :mod:`unified_jax.recurrent`: a compiled step no
  longer unrolls the time loop), ``batch_norm`` (the composition's numbers with a
  two-reduction custom gradient) and ``batch_norm_inference`` (one jitted
  scale-and-shift), both in :mod:`unified_jax.norm`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from unified.hookspecs import Array, Axis
from unified.plugins import BackendInfo, hookimpl
from unified_jax import shape_ops as _shape_ops
from unified_jax.devices import device_of as device_of
from unified_jax.devices import devices as devices
from unified_jax.devices import to_device as to_device
from unified_jax.eager import eager_jit
from unified_jax.nn import conv as conv
from unified_jax.nn import conv_transpose as conv_transpose
from unified_jax.nn import pool as pool
from unified_jax.nn import softmax_cross_entropy as softmax_cross_entropy
from unified_jax.norm import batch_norm as batch_norm
from unified_jax.norm import batch_norm_inference as batch_norm_inference
from unified_jax.recurrent import rnn_layer as rnn_layer

_PRECISION = "highest"


def _dtype(dtype: str) -> Any:
    # Without x64 (the default, left alone here) JAX stores 64-bit dtypes as their
    # 32-bit counterparts and warns on every explicit request; ask for the canonical
    # dtype directly so int64 labels and float64 requests convert quietly.
    return jax.dtypes.canonicalize_dtype(dtype)


# ----------------------------------------------------------------------------------
# Identity and conversion
# ----------------------------------------------------------------------------------


@hookimpl
def backend_info() -> BackendInfo:
    return BackendInfo(
        name="jax",
        framework="jax",
        version=jax.__version__,
        capabilities=frozenset({"jit", "donate"}),
    )


@hookimpl
def is_array(x: Any) -> bool:
    # Tracers (inside jit, grad, vmap) are virtual subclasses of jax.Array.
    return isinstance(x, jax.Array)


@hookimpl
def asarray(x: Any, dtype: str) -> Array:
    target = _dtype(dtype)
    if isinstance(x, np.ndarray) and x.dtype != target:
        # Cast on the host (int64 labels to int32): one transfer, where a device
        # cast would compile a convert kernel per shape on first use.
        x = x.astype(target)
    return jnp.asarray(x, dtype=target)


@hookimpl
def to_numpy(x: Array) -> Any:
    return np.asarray(x)


@hookimpl
def zeros(shape: tuple[int, ...], dtype: str) -> Array:
    return jnp.zeros(tuple(shape), dtype=_dtype(dtype))


@hookimpl
def zeros_like(x: Array) -> Array:
    return jnp.zeros_like(x)


@hookimpl
def astype(x: Array, dtype: str) -> Array:
    return jnp.asarray(x).astype(_dtype(dtype))


@hookimpl
def assign(target: Array, value: Array) -> Array:
    # Immutable arrays: the caller rebinds the parameter to the returned array.
    return value


@hookimpl
def axpby(a: Any, x: Array, b: Any, y: Array) -> Array:
    # Immutable arrays: a new array; inside a compiled step XLA fuses it. A factor
    # 1.0 (a Python float: the SGD update's, momentum's) is left out of the trace.
    ax = x if type(a) is float and a == 1.0 else a * x
    by = y if type(b) is float and b == 1.0 else b * y
    return ax + by


# ----------------------------------------------------------------------------------
# Differentiation
# ----------------------------------------------------------------------------------


@hookimpl
def value_and_grad(
    fn: Callable[[list[Array]], Array], arrays: Sequence[Array]
) -> tuple[Array, list[Array]]:
    # Pure tracing: no host synchronisation, so this also runs inside jax.jit.
    value, grads = jax.value_and_grad(fn)(list(arrays))
    return value, list(grads)


@hookimpl
def jit(fn: Callable[..., Any], donate: Sequence[int] = ()) -> Callable[..., Any]:
    # jax.jit caches one executable per input pytree structure, shapes and dtypes.
    # Donated arguments' buffers are reused for outputs of the same shape and dtype
    # (capability "donate"); the jitted function's .trace(*args) traces only.
    return jax.jit(fn, donate_argnums=tuple(donate))


# ----------------------------------------------------------------------------------
# Math: elementwise
# ----------------------------------------------------------------------------------


@hookimpl
def add(a: Array, b: Array) -> Array:
    return jnp.add(a, b)


@hookimpl
def subtract(a: Array, b: Array) -> Array:
    return jnp.subtract(a, b)


@hookimpl
def multiply(a: Array, b: Array) -> Array:
    return jnp.multiply(a, b)


@hookimpl
def divide(a: Array, b: Array) -> Array:
    return jnp.divide(a, b)


@hookimpl
def maximum(a: Array, b: Array) -> Array:
    # lax.max's JVP gives each input half of the gradient on ties.
    return jnp.maximum(a, b)


@hookimpl
def minimum(a: Array, b: Array) -> Array:
    # lax.min's JVP gives each input half of the gradient on ties.
    return jnp.minimum(a, b)


@hookimpl
def power(x: Array, exponent: float) -> Array:
    if isinstance(exponent, int | float):
        # A Python int would select lax.integer_pow (repeated multiplication, up to
        # ~1.5 ulp); lax.pow with a float exponent is correctly rounded on CPU and
        # its JVP handles exponent 0 and x = 0.
        exponent = float(exponent)
    return jnp.power(x, exponent)


@hookimpl
def negative(x: Array) -> Array:
    return jnp.negative(x)


@hookimpl
def exp(x: Array) -> Array:
    return jnp.exp(x)


@hookimpl
def log(x: Array) -> Array:
    return jnp.log(x)


@hookimpl
def log1p(x: Array) -> Array:
    return jnp.log1p(x)


@hookimpl
def sqrt(x: Array) -> Array:
    return jnp.sqrt(x)


@hookimpl
def square(x: Array) -> Array:
    return jnp.square(x)


@jax.custom_jvp
def _abs_0(x: Array) -> Array:
    return jnp.abs(x)


@_abs_0.defjvp
def _abs_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    # lax.abs differentiates to +1 at 0; the contract wants 0 (sign(0) == 0).
    return jnp.abs(x), dx * jnp.sign(x)


# Functions with a custom JVP, and jax.nn's Python-level wrappers, cost ~30-120 us
# per eager call; behind jax.jit they dispatch in a few microseconds. Inside an outer
# jit or value_and_grad eager_jit calls them directly (inlined, gradient rules kept).
_abs = eager_jit(_abs_0)
_relu = eager_jit(jax.nn.relu)
_softmax = eager_jit(jax.nn.softmax, static_argnames="axis")
_log_softmax = eager_jit(jax.nn.log_softmax, static_argnames="axis")


@hookimpl
def abs(x: Array) -> Array:
    return _abs(x)


# ----------------------------------------------------------------------------------
# Math: activations
# ----------------------------------------------------------------------------------


@hookimpl
def relu(x: Array) -> Array:
    # jax.nn.relu has a custom JVP with gradient 0 at 0 (jnp.maximum would give 0.5).
    return _relu(x)


@hookimpl
def sigmoid(x: Array) -> Array:
    return jax.nn.sigmoid(x)


@hookimpl
def tanh(x: Array) -> Array:
    return jnp.tanh(x)


@hookimpl
def softmax(x: Array, axis: int = -1) -> Array:
    return _softmax(x, axis=axis)


@hookimpl
def log_softmax(x: Array, axis: int = -1) -> Array:
    return _log_softmax(x, axis=axis)


# ----------------------------------------------------------------------------------
# Math: linear algebra
# ----------------------------------------------------------------------------------


@hookimpl
def matmul(a: Array, b: Array) -> Array:
    return jnp.matmul(a, b, precision=_PRECISION)


@eager_jit
def _linear(x: Array, weight: Array, bias: Array | None) -> Array:
    # One dot_general contracting x's last axis with the weight's in-axis (XLA folds
    # the transpose), then the bias add, fused: one dispatch when called eagerly.
    y = jnp.matmul(x, jnp.swapaxes(weight, -1, -2), precision=_PRECISION)
    return y if bias is None else y + bias


@hookimpl
def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    return _linear(x, weight, bias)


# ----------------------------------------------------------------------------------
# Math: reductions and shapes
# ----------------------------------------------------------------------------------


def _axis(axis: Axis) -> Axis:
    # jax.numpy wants an int or a tuple; accept any sequence of ints as well.
    return axis if axis is None or isinstance(axis, int) else tuple(axis)


@hookimpl
def sum(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    return jnp.sum(x, axis=_axis(axis), keepdims=keepdims)


@hookimpl
def mean(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    return jnp.mean(x, axis=_axis(axis), keepdims=keepdims)


@hookimpl
def max(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    # reduce_max's JVP shares the gradient evenly among tied maxima.
    return jnp.max(x, axis=_axis(axis), keepdims=keepdims)


@hookimpl
def reshape(x: Array, shape: tuple[int, ...]) -> Array:
    return jnp.reshape(x, tuple(shape))


@hookimpl
def transpose(x: Array, axes: tuple[int, ...] | None = None) -> Array:
    return jnp.transpose(x, None if axes is None else tuple(axes))


@hookimpl
def one_hot(indices: Array, depth: int, dtype: str) -> Array:
    indices = jnp.asarray(indices)
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        # Whole numbers stored as floats: newer JAX deprecates non-integer indices.
        indices = indices.astype(jnp.int32)
    return jax.nn.one_hot(indices, int(depth), dtype=_dtype(dtype))


# The hookimpls of :mod:`unified_jax.shape_ops`, re-exported: pluggy registers this
# package module, so they must be its attributes.
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
