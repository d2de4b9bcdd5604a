"""The NumPy reference backend of ``unified``.

Native arrays are ``np.ndarray`` (NumPy scalars are accepted wherever arrays are).
Gradients come from a small reverse-mode tape (:mod:`unified_numpy.tape`); the math
hooks live in :mod:`unified_numpy.ops`, :mod:`unified_numpy.shape_ops` and
:mod:`unified_numpy.nn` (convolution and pooling) and are re-exported here, where
pluggy finds them. Importing this package imports NumPy and nothing else heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unified import BackendInfo, hookimpl
from unified_numpy import tape as _tape
from unified_numpy.losses import softmax_cross_entropy
from unified_numpy.nn import conv, conv_transpose, pool
from unified_numpy.norm import batch_norm
from unified_numpy.ops import (
    abs,
    add,
    astype,
    divide,
    exp,
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
    power,
    relu,
    reshape,
    sigmoid,
    softmax,
    sqrt,
    square,
    subtract,
    sum,
    tanh,
    transpose,
    zeros,
    zeros_like,
)
from unified_numpy.shape_ops import (
    argmax,
    clip,
    concatenate,
    equal,
    erf,
    greater,
    less,
    pad,
    slice_axis,
    split,
    stack,
    take,
    where,
)
from unified_numpy.tape import Node

__all__ = [
    "Node",
    "abs",
    "add",
    "argmax",
    "asarray",
    "assign",
    "astype",
    "backend_info",
    "batch_norm",
    "clip",
    "concatenate",
    "conv",
    "conv_transpose",
    "divide",
    "equal",
    "erf",
    "exp",
    "greater",
    "is_array",
    "less",
    "linear",
    "log",
    "log1p",
    "log_softmax",
    "matmul",
    "max",
    "maximum",
    "mean",
    "minimum",
    "multiply",
    "negative",
    "one_hot",
    "pad",
    "pool",
    "power",
    "relu",
    "reshape",
    "sigmoid",
    "slice_axis",
    "softmax",
    "softmax_cross_entropy",
    "split",
    "sqrt",
    "square",
    "stack",
    "subtract",
    "sum",
    "take",
    "tanh",
    "to_numpy",
    "transpose",
    "value_and_grad",
    "where",
    "zeros",
    "zeros_like",
]


@hookimpl
def backend_info() -> BackendInfo:
    """Describe the backend: NumPy, with in-place ``assign``."""
    return BackendInfo(
        name="numpy",
        framework="numpy",
        version=np.__version__,
        capabilities=frozenset({"inplace"}),
    )


@hookimpl
def is_array(x: Any) -> bool:
    """Tell whether ``x`` is an ``np.ndarray``, a NumPy scalar or a tape Node."""
    return isinstance(x, (np.ndarray, np.generic)) or type(x) is Node


@hookimpl
def asarray(x: Any, dtype: str) -> Any:
    """Return ``x`` as an ndarray of ``dtype`` (``x`` itself when nothing changes)."""
    if type(x) is Node:
        return astype(x, dtype)
    return np.asarray(x, dtype=dtype)


@hookimpl
def to_numpy(x: Any) -> np.ndarray:
    """Return the values of ``x`` as an ndarray (sharing its memory)."""
    return np.asarray(x.value if type(x) is Node else x)


@hookimpl
def assign(target: np.ndarray, value: Any) -> np.ndarray:
    """Copy ``value`` into ``target`` in place and return ``target``."""
    np.copyto(target, value.value if type(value) is Node else value)
    return target


@hookimpl
def axpby(a: float, x: np.ndarray, b: float, y: np.ndarray) -> np.ndarray:
    """``y = a*x + b*y`` in place (the optimizers' fused update); return ``y``."""
    if b != 1.0:
        np.multiply(y, b, out=y, casting="unsafe")
    if a == 1.0:
        np.add(y, x, out=y, casting="unsafe")
    else:
        np.add(y, np.multiply(x, a, dtype=y.dtype), out=y, casting="unsafe")
    return y


@hookimpl
def value_and_grad(
    fn: Callable[[list[Any]], Any], arrays: Sequence[Any]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Evaluate ``fn(arrays)`` and its gradient for every array with the tape.

    ``fn`` receives :class:`~unified_numpy.tape.Node` leaves; every math hook (and
    the Node operators) records onto the tape. See
    :func:`unified_numpy.tape.value_and_grad`.
    """
    return _tape.value_and_grad(fn, arrays)
