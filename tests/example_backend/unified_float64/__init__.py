"""An example third-party backend, certified by the conformance kit in the tests.

``example`` stores float32 data in ordinary NumPy arrays but computes every rounding
op in float64 and rounds the result back to float32 (a "wide accumulator" backend).
Its numbers therefore differ from the NumPy reference in the last bits, which is
what the suite's tolerances allow, while its dtypes and shapes must be the same.

How it is put together (the pattern for any backend):

* the array hooks (``backend_info``, ``is_array``, ``asarray``, ``to_numpy``,
  ``assign``, ``axpby``, ``value_and_grad``) are written out below;
* the math hooks are the reference NumPy backend's, called on float64 copies of
  float32 inputs (:func:`widened`); gradients come from the reference backend's tape,
  through which the casts are differentiable;
* ops that do not round (shape ops, comparisons, gathers) are the reference's as
  they are.

It is registered through a ``unified.backends`` entry point named ``example``
(``example = unified_float64``); :mod:`unified_float64.broken` is the same backend
with one wrong gradient, which the kit must reject.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import unified_numpy as ref

from unified import BackendInfo, hookimpl

NAME = "example"

# Ops whose result is rounded: computed in float64 here.
WIDENED = [
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
    "where",
    "clip",
    "erf",
    "conv",
    "conv_transpose",
    "pool",
]
# Ops that move or compare values exactly: the reference's implementation as is.
EXACT = [
    "zeros",
    "zeros_like",
    "astype",
    "reshape",
    "transpose",
    "one_hot",
    "greater",
    "less",
    "equal",
    "concatenate",
    "stack",
    "split",
    "pad",
    "take",
    "argmax",
    "slice_axis",
]


def info(name: str = NAME) -> BackendInfo:
    """The ``BackendInfo`` of this backend (or of a variant called ``name``)."""
    return BackendInfo(
        name=name,
        framework="numpy-float64",
        version=np.__version__,
        capabilities=frozenset({"inplace"}),
    )


@hookimpl
def backend_info() -> BackendInfo:
    """Name, framework, version and capabilities (``inplace``: assign writes)."""
    return info()


@hookimpl
def is_array(x: Any) -> bool:
    """NumPy arrays and scalars, and the tape's Nodes inside ``value_and_grad``."""
    return isinstance(x, (np.ndarray, np.generic)) or type(x) is ref.Node


@hookimpl
def asarray(x: Any, dtype: str) -> Any:
    """Host data as an array of ``dtype``."""
    return ref.astype(x, dtype) if type(x) is ref.Node else np.asarray(x, dtype)


@hookimpl
def to_numpy(x: Any) -> np.ndarray:
    """The values of ``x`` as a NumPy array."""
    return np.asarray(x.value if type(x) is ref.Node else x)


@hookimpl
def assign(target: np.ndarray, value: Any) -> np.ndarray:
    """Write ``value`` into ``target`` in place."""
    np.copyto(target, to_numpy(value), casting="unsafe")
    return target


@hookimpl
def axpby(a: float, x: np.ndarray, b: float, y: np.ndarray) -> np.ndarray:
    """``y = a*x + b*y`` computed in float64, rounded once into ``y``."""
    wide = a * np.asarray(x, np.float64) + b * np.asarray(y, np.float64)
    np.copyto(y, wide, casting="unsafe")
    return y


@hookimpl
def value_and_grad(
    fn: Callable[[list[Any]], Any], arrays: Sequence[Any]
) -> tuple[Any, list[Any]]:
    """The reference backend's reverse-mode tape (every op here records on it)."""
    return ref.value_and_grad(fn, arrays)


def _dtype(x: Any) -> np.dtype | None:
    return getattr(x, "dtype", None) if is_array(x) else None


def _arrays(args: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for a in args:
        out.extend(a if isinstance(a, (list, tuple)) else [a])
    return out


def _map(fn: Callable[[Any], Any], x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return type(x)(_map(fn, e) for e in x)
    return fn(x)


def widened(op: Callable[..., Any]) -> Callable[..., Any]:
    """``op`` computed on float64 copies of float32 inputs, rounded back to float32
    when every float input was float32 (the dtype NumPy itself would give)."""
    f32, f64 = np.dtype("float32"), np.dtype("float64")

    def hook(*args: Any, **kwargs: Any) -> Any:
        dtypes = {_dtype(a) for a in _arrays(args)}
        if f32 not in dtypes or f64 in dtypes:
            return op(*args, **kwargs)
        up = [
            _map(lambda a: ref.astype(a, "float64") if _dtype(a) == f32 else a, a)
            for a in args
        ]
        out = op(*up, **kwargs)
        return _map(lambda r: ref.astype(r, "float32") if _dtype(r) == f64 else r, out)

    hook.__name__ = op.__name__
    hook.__doc__ = f"{op.__name__}, computed in float64: {op.__doc__}"
    return hook


for _name in WIDENED:
    globals()[_name] = hookimpl(widened(getattr(ref, _name)))
for _name in EXACT:
    globals()[_name] = hookimpl(getattr(ref, _name))
