"""The PyTorch backend of ``unified``: every hook of :mod:`unified.hookspecs` on torch.

Registered through the ``unified.backends`` entry point ``torch = "unified_torch"``.
Each math hook is one direct call into a ``torch`` function, so it accepts plain
tensors and the leaves (tensors with ``requires_grad``) that :func:`value_and_grad`
hands to ``fn`` alike.

Notes on the contract:

* Conversion is zero-copy where torch allows: :func:`asarray` wraps a contiguous,
  writeable NumPy array of the requested dtype with :func:`torch.from_numpy`, and
  :func:`to_numpy` returns ``x.detach().cpu().numpy()`` (shared memory on CPU).
* :func:`assign` copies in place (``target.copy_``), outside any autograd graph.
* Binary hooks take a Python scalar in either position: ``torch.add``/``sub``/
  ``mul``/``div`` treat it as a weakly typed "wrapped number", so float32 stays
  float32 and ``divide(2.0, x)`` is a correctly rounded division (the reflected
  operator ``2.0 / x`` would compute ``x.reciprocal() * 2.0`` instead).
  ``torch.maximum``/``minimum`` take tensors only, so a scalar operand is turned
  into a 0-d tensor of the result dtype.
* Gradient conventions, as the contract asks and as checked against torch 2.x:
  ``relu`` and ``abs`` have gradient 0 at 0, ``maximum``/``minimum`` split the
  gradient in half on ties and ``amax`` shares it evenly among tied maxima.
* :func:`value_and_grad` uses :func:`torch.autograd.grad` on fresh leaves, so no
  ``.grad`` attribute is ever written and the inputs are left untouched.
* Reductions follow NumPy for ``axis=()`` (reduce over no axis), where torch's
  ``dim=()`` would reduce over every axis.
* No ``jit`` hook: this backend declares no ``jit`` capability. The optional
  ``rnn_layer`` hook (capability ``rnn_layer``) runs torch's fused RNN kernels, and
  the optional ``batch_norm`` hook (capability ``batch_norm``) ``torch.batch_norm``
  (``batch_norm_inference``: the same kernel with ``training=False``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unified import BackendInfo, hookimpl
from unified.hookspecs import Array, Axis
from unified_torch import shape_ops as _shape_ops
from unified_torch.devices import device_of as device_of
from unified_torch.devices import devices as devices
from unified_torch.devices import to_device as to_device
from unified_torch.nn import conv as conv
from unified_torch.nn import conv_transpose as conv_transpose
from unified_torch.nn import pool as pool
from unified_torch.nn import softmax_cross_entropy as softmax_cross_entropy
from unified_torch.norm import batch_norm as batch_norm
from unified_torch.norm import batch_norm_inference as batch_norm_inference
from unified_torch.recurrent import rnn_layer as rnn_layer

_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}


def _dtype(dtype: Any) -> torch.dtype:
    """Map a NumPy dtype name (or anything ``np.dtype`` accepts) to a torch dtype."""
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):  # np.dtype objects, type objects, aliases
        pass
    name = np.dtype(dtype).name
    try:
        return _DTYPES[name]
    except KeyError:
        raise TypeError(f"the torch backend has no dtype {name!r}") from None


# ----------------------------------------------------------------------------------
# Identity and conversion
# ----------------------------------------------------------------------------------


@hookimpl
def backend_info() -> BackendInfo:
    return BackendInfo(
        name="torch",
        framework="torch",
        version=torch.__version__,
        capabilities=frozenset({"inplace"}),
    )


@hookimpl
def is_array(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


@hookimpl
def asarray(x: Any, dtype: str) -> Array:
    tdtype = _dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x.to(tdtype)
    # NumPy has no bfloat16: go through float32 and cast after wrapping.
    arr = np.asarray(x, dtype=np.float32 if tdtype is torch.bfloat16 else dtype)
    if not (arr.flags.c_contiguous and arr.flags.writeable):
        # torch.from_numpy rejects negative strides and warns on read-only memory.
        arr = np.array(arr, order="C", copy=True)
    out = torch.from_numpy(arr)
    return out if out.dtype is tdtype else out.to(tdtype)


@hookimpl
def to_numpy(x: Array) -> Any:
    return x.detach().cpu().numpy()


@hookimpl
def zeros(shape: tuple[int, ...], dtype: str) -> Array:
    return torch.zeros(shape, dtype=_dtype(dtype))


@hookimpl
def zeros_like(x: Array) -> Array:
    return torch.zeros_like(x)


@hookimpl
def astype(x: Array, dtype: str) -> Array:
    return x.to(_dtype(dtype))


@hookimpl
def assign(target: Array, value: Array) -> Array:
    if target.requires_grad or value.requires_grad:
        with torch.no_grad():  # keep the copy out of any autograd graph
            target.copy_(value)
        return target
    # Neither side is tracked: copy_ records nothing, and skips no_grad's overhead.
    target.copy_(value)
    return target


@hookimpl
def axpby(a: float, x: Array, b: float, y: Array) -> Array:
    """``y = a*x + b*y`` in place (``mul_`` then ``add_(alpha=a)``); return ``y``."""
    if y.requires_grad or x.requires_grad:
        with torch.no_grad():  # keep the update out of any autograd graph
            if b != 1.0:
                y.mul_(b)
            return y.add_(x, alpha=a)
    # Neither side is tracked (the usual optimizer update): the in-place ops record
    # nothing, and skip no_grad's overhead.
    if b != 1.0:
        y.mul_(b)
    return y.add_(x, alpha=a)


# ----------------------------------------------------------------------------------
# Differentiation
# ----------------------------------------------------------------------------------


@hookimpl
def value_and_grad(
    fn: Callable[[list[Array]], Array], arrays: Sequence[Array]
) -> tuple[Array, list[Array]]:
    # Fresh leaves share memory with the inputs but carry their own autograd state;
    # torch.autograd.grad returns the gradients without writing any .grad attribute.
    leaves = [a.detach().requires_grad_() for a in arrays]
    if torch.is_grad_enabled():  # the usual case: skip the context manager's cost
        out = fn(leaves)
    else:
        with torch.enable_grad():
            out = fn(leaves)
    if not (leaves and out.requires_grad):  # fn used none of the arrays
        return out.detach(), [torch.zeros_like(a) for a in leaves]
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    # Unused inputs get zeros; a gradient that is a broadcast view (stride 0, e.g.
    # of a plain sum) is materialized so callers get an ordinary dense tensor.
    return out.detach(), [
        torch.zeros_like(a) if g is None else g.contiguous()
        for a, g in zip(leaves, grads, strict=False)
    ]


# ----------------------------------------------------------------------------------
# Math: elementwise
# ----------------------------------------------------------------------------------


@hookimpl
def add(a: Array, b: Array) -> Array:
    return torch.add(a, b)


@hookimpl
def subtract(a: Array, b: Array) -> Array:
    return torch.sub(a, b)


@hookimpl
def multiply(a: Array, b: Array) -> Array:
    return torch.mul(a, b)


@hookimpl
def divide(a: Array, b: Array) -> Array:
    return torch.div(a, b)


def _as_tensors(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn the scalar operand of a tensor-only binary op into a 0-d tensor.

    The 0-d tensor gets the dtype a Python scalar would produce with the other
    operand (``torch.result_type``), so float32 stays float32.
    """
    if isinstance(a, torch.Tensor):
        return a, torch.scalar_tensor(b, dtype=torch.result_type(a, b))
    return torch.scalar_tensor(a, dtype=torch.result_type(b, a)), b


@hookimpl
def maximum(a: Array, b: Array) -> Array:
    # torch.maximum's backward gives each input half of the gradient on ties.
    try:
        return torch.maximum(a, b)
    except TypeError:  # a Python scalar operand
        return torch.maximum(*_as_tensors(a, b))


@hookimpl
def minimum(a: Array, b: Array) -> Array:
    # torch.minimum's backward gives each input half of the gradient on ties.
    try:
        return torch.minimum(a, b)
    except TypeError:  # a Python scalar operand
        return torch.minimum(*_as_tensors(a, b))


@hookimpl
def power(x: Array, exponent: float) -> Array:
    return torch.pow(x, exponent)


@hookimpl
def negative(x: Array) -> Array:
    return torch.neg(x)


@hookimpl
def exp(x: Array) -> Array:
    return torch.exp(x)


@hookimpl
def log(x: Array) -> Array:
    return torch.log(x)


@hookimpl
def log1p(x: Array) -> Array:
    return torch.log1p(x)


@hookimpl
def sqrt(x: Array) -> Array:
    return torch.sqrt(x)


@hookimpl
def square(x: Array) -> Array:
    return torch.square(x)


@hookimpl
def abs(x: Array) -> Array:
    # torch's backward is grad * sgn(x): 0 at 0, as the contract asks.
    return torch.abs(x)


# ----------------------------------------------------------------------------------
# Math: activations
# ----------------------------------------------------------------------------------


@hookimpl
def relu(x: Array) -> Array:
    # threshold_backward passes the gradient only where the output is > 0.
    return torch.relu(x)


@hookimpl
def sigmoid(x: Array) -> Array:
    return torch.sigmoid(x)


@hookimpl
def tanh(x: Array) -> Array:
    return torch.tanh(x)


@hookimpl
def softmax(x: Array, axis: int = -1) -> Array:
    # torch.softmax is the kernel behind torch.nn.functional.softmax, without the
    # Python-level argument handling.
    return torch.softmax(x, axis)


@hookimpl
def log_softmax(x: Array, axis: int = -1) -> Array:
    return torch.log_softmax(x, axis)


# ----------------------------------------------------------------------------------
# Math: linear algebra
# ----------------------------------------------------------------------------------


@hookimpl
def matmul(a: Array, b: Array) -> Array:
    return torch.matmul(a, b)


@hookimpl
def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    return F.linear(x, weight, bias)


# ----------------------------------------------------------------------------------
# Math: reductions and shapes
# ----------------------------------------------------------------------------------


# An empty axis tuple reduces over no axis in NumPy, but over every axis in torch
# (``dim=()``): the reductions return an unreduced copy for it.


@hookimpl
def sum(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    if isinstance(axis, tuple | list) and not axis:
        return torch.clone(x)
    # dim=None reduces every dimension, with or without keepdim.
    return torch.sum(x, axis, keepdims)


@hookimpl
def mean(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    if isinstance(axis, tuple | list) and not axis:
        return torch.clone(x)
    return torch.mean(x, axis, keepdims)


@hookimpl
def max(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    # amax (not torch.max) shares the gradient evenly among tied maxima.
    if axis is None:
        return torch.amax(x, (), keepdims)  # dim=() reduces every dimension
    if isinstance(axis, tuple | list) and not axis:
        return torch.clone(x)
    return torch.amax(x, axis, keepdims)


@hookimpl
def reshape(x: Array, shape: tuple[int, ...]) -> Array:
    return torch.reshape(x, shape)


@hookimpl
def transpose(x: Array, axes: tuple[int, ...] | None = None) -> Array:
    if axes is None:
        axes = tuple(range(x.ndim - 1, -1, -1))
    return torch.permute(x, axes)


@hookimpl
def one_hot(indices: Array, depth: int, dtype: str) -> Array:
    # .long() accepts float indices holding whole numbers; the result is not tracked.
    return F.one_hot(torch.as_tensor(indices).long(), int(depth)).to(_dtype(dtype))


# The hookimpls of :mod:`unified_torch.shape_ops`, re-exported: pluggy registers this
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
