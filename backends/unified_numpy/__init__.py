"""The NumPy reference backend of ``unified``.

Native arrays are ``np.ndarray`` (NumPy scalars are accepted wherever arrays are).
Gradients come from a small reverse-mode tape (:mod:`unified_numpy.tape`); the math
hooks live in :mod:`unified_numpy.ops`, :mod:`unified_numpy.shape_ops` and
:mod:`unified_numpy.nn` (convolution and pooling) and are re-exported here, where
pluggy finds them. Importing this package imports NumPy and nothing else heavy.

Capabilities: ``inplace`` (``assign``/``axpby`` write into their target) and ``jit``
(:mod:`unified_numpy.replay`): a pure function, such as ``Trainer``'s whole step, is
run once on tracers per input signature, recording every NumPy kernel (forward,
the tape's backward, the update) into one generated straight-line function that
later calls replay with no Net, tape or optimizer machinery, bitwise equal to the
eager step. What cannot be traced runs eagerly (logged at DEBUG). And ``donate``:
``jit(fn, donate)`` writes the results into the donated arguments' arrays (the
``Trainer``'s step updates parameters and optimizer state in place).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unified import BackendInfo, hookimpl
from unified_numpy import replay as _replay
from unified_numpy import tape as _tape
from unified_numpy.losses import softmax_cross_entropy
from unified_numpy.nn import conv, conv_transpose, pool
from unified_numpy.norm import batch_norm, batch_norm_inference
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
from unified_numpy.trace import Tracer
from unified_numpy.trace import asarray as _asarray

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
    "batch_norm_inference",
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
    "jit",
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
        capabilities=frozenset({"donate", "inplace", "jit"}),
    )


@hookimpl
def is_array(x: Any) -> bool:
    """Tell whether ``x`` is an ``np.ndarray``, a NumPy scalar or a tape Node."""
    return isinstance(x, (np.ndarray, np.generic)) or type(x) in (Node, Tracer)


@hookimpl
def asarray(x: Any, dtype: str) -> Any:
    """Return ``x`` as an ndarray of ``dtype`` (``x`` itself when nothing changes)."""
    if type(x) is Node:
        return astype(x, dtype)
    return _asarray(x, dtype)


@hookimpl
def to_numpy(x: Any) -> np.ndarray:
    """Return the values of ``x`` as an ndarray (sharing its memory)."""
    return np.asarray(x.value if type(x) is Node else x)


@hookimpl
def assign(target: np.ndarray, value: Any) -> np.ndarray:
    """Copy ``value`` into ``target`` in place and return ``target`` (nothing to
    copy when ``value`` is ``target``: a compiled step that updated it in place)."""
    if value is not target:
        np.copyto(target, value.value if type(value) is Node else value)
    return target


@hookimpl
def axpby(a: float, x: np.ndarray, b: float, y: np.ndarray) -> np.ndarray:
    """``y = a*x + b*y`` in place (the optimizers' fused update); return ``y``.

    Inside a :func:`jit` trace (coefficients are traced arrays there) it is
    ``y*b + x*a`` into a new array: the same float32 roundings, so bitwise equal.
    """
    if type(a) is Tracer or type(b) is Tracer or type(y) is Tracer:
        return np.add(np.multiply(y, b), np.multiply(x, a))
    if b != 1.0:
        np.multiply(y, b, out=y, casting="unsafe")
    if a == 1.0:
        np.add(y, x, out=y, casting="unsafe")
    else:
        np.add(y, np.multiply(x, a, dtype=y.dtype), out=y, casting="unsafe")
    return y


@hookimpl
def jit(fn: Callable[..., Any], donate: Sequence[int] = ()) -> Callable[..., Any]:
    """Trace ``fn`` once per input signature and replay the recorded NumPy kernels
    (see :mod:`unified_numpy.replay`; an untraceable ``fn`` runs eagerly); the
    program writes its results into the arrays of the ``donate`` arguments."""
    return _replay.jit(fn, donate)


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
