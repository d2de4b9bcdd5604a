"""The backend contract: one pluggy hookspec per operation a backend provides.

A backend is a module (or any object) whose functions are marked with
:data:`unified.hookimpl` and carry the names below. It is registered through the
``unified.backends`` entry-point group, exactly like the four built-in backends::

    [project.entry-points."unified.backends"]
    mybackend = "my_package.backend"

The core never calls ``pm.hook.<name>(...)`` on the hot path. When a backend is
selected, each of its implementations is looked up once and stored in a
:class:`unified.plugins.BackendTable`; ``unified.ops.<name>`` and the layers call the
table directly. Every hook below is required unless it is listed in
:data:`OPTIONAL_HOOKS`; a backend missing any is rejected with the full list.

Conventions shared by every hook:

* *native array*: the backend's own array type (``np.ndarray``, ``torch.Tensor``,
  ``jax.Array``, ``mx.nd.NDArray``). Inside :func:`value_and_grad` a backend may hand
  its traced stand-ins (tape nodes, tracers) to the math hooks instead; every math
  hook must accept them.
* *scalar*: a Python ``float`` or ``int``. Binary math hooks accept a scalar in
  either position; the result keeps the array's dtype (float32 stays float32).
* *dtype*: a NumPy dtype name such as ``"float32"``.
* Math hooks never modify their inputs. Only :func:`assign` and :func:`axpby` write.
* Defaults users rely on through ``unified.ops`` (implementations must provide
  them): ``sum/mean/max(x, axis=None, keepdims=False)``, ``softmax/log_softmax(x,
  axis=-1)``, ``transpose(x, axes=None)``, ``linear(x, weight, bias=None)``,
  ``pad(x, pad_width, value=0.0)``, ``take(x, indices, axis=0)``.
* Capabilities: ``inplace`` (declared in ``BackendInfo``) means :func:`assign` and
  :func:`axpby` write into their target and return it; ``jit`` comes with the
  optional :func:`jit` hook. The conformance suite skips, with the reason, what a
  backend does not declare.
* Floating point is what the library uses and what the suite checks (float32 by
  default); integer arrays appear as labels (``one_hot``, losses). A backend that
  cannot hold a requested 64-bit dtype (JAX without x64) may return the 32-bit one.
* Reductions may return a 0-d array or the framework's scalar type; both count as
  native arrays. ``value_and_grad`` differentiates float inputs only.
"""

from __future__ import annotations

from unified.hookspecs import core as _core
from unified.hookspecs import math as _math
from unified.hookspecs import nn as _nn
from unified.hookspecs.base import Array, Axis, hookspec  # noqa: F401 - re-exported
from unified.hookspecs.core import (  # noqa: F401 - re-exported: pluggy reads them here
    asarray,
    assign,
    astype,
    axpby,
    backend_info,
    device_of,
    devices,
    is_array,
    jit,
    to_device,
    to_numpy,
    value_and_grad,
    zeros,
    zeros_like,
)
from unified.hookspecs.math import (  # noqa: F401 - re-exported: pluggy reads them here
    abs,
    add,
    argmax,
    clip,
    concatenate,
    divide,
    equal,
    erf,
    exp,
    greater,
    less,
    linear,
    log,
    log1p,
    log_softmax,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    multiply,
    negative,
    one_hot,
    pad,
    power,
    relu,
    reshape,
    sigmoid,
    slice_axis,
    softmax,
    split,
    sqrt,
    square,
    stack,
    subtract,
    sum,
    take,
    tanh,
    transpose,
    where,
)
from unified.hookspecs.nn import (  # noqa: F401 - re-exported: pluggy reads them here
    batch_norm,
    batch_norm_inference,
    conv,
    conv_transpose,
    pool,
    rnn_layer,
    softmax_cross_entropy,
)

OPTIONAL_HOOKS: frozenset[str] = frozenset(
    {
        "batch_norm",
        "batch_norm_inference",
        "device_of",
        "devices",
        "jit",
        "rnn_layer",
        "softmax_cross_entropy",
        "to_device",
    }
)
"""Hooks a backend may leave out; each one it implements adds a capability."""

NN_HOOKS: tuple[str, ...] = ("conv", "conv_transpose", "pool")
"""The neural-network kernels (convolution and pooling)."""

MATH_HOOKS: tuple[str, ...] = (
    "add",
    "subtract",
    "multiply",
    "divide",
    "maximum",
    "minimum",
    "power",
    "negative",
    "exp",
    "log",
    "log1p",
    "sqrt",
    "square",
    "abs",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "matmul",
    "linear",
    "sum",
    "mean",
    "max",
    "reshape",
    "transpose",
    "one_hot",
    "astype",
    "zeros",
    "zeros_like",
    "where",
    "greater",
    "less",
    "equal",
    "clip",
    "erf",
    "concatenate",
    "stack",
    "split",
    "pad",
    "take",
    "argmax",
    "slice_axis",
    *NN_HOOKS,
)
"""The hooks re-exported as ``unified.ops``: the math a custom ``forward`` may use."""


def hook_names() -> tuple[str, ...]:
    """Return the name of every hookspec of the contract, in definition order
    (the family modules in turn: :mod:`~unified.hookspecs.core`,
    :mod:`~unified.hookspecs.math`, :mod:`~unified.hookspecs.nn`)."""
    return tuple(
        name
        for module in (_core, _math, _nn)
        for name, obj in vars(module).items()
        if callable(obj) and hasattr(obj, "unified_spec")
    )
