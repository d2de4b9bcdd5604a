"""0-d MXNet results that behave as Python numbers (SPEC 10).

Legacy ``mx.nd`` treats the shape ``()`` as unknown, so a 0-d ``NDArray`` (a loss,
a full reduction) fails with ``-``, ``>`` or ``float()`` outside this adapter's
hooks. Such results are returned as :class:`Scalar`, a subclass of ``NDArray`` with
no state of its own, whose Python operators run under NumPy-shape semantics for
their own duration (as every hook does) and return a :class:`Scalar` again when the
result is 0-d. It is still an ``NDArray`` for every MXNet function and for Gluon.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import mxnet as mx

from unified_mxnet import _np_on, _np_restore

_NDArray = mx.nd.NDArray


class Scalar(_NDArray):  # type: ignore[misc]
    """A 0-d ``NDArray`` usable with ``float()``, arithmetic and comparisons."""

    __slots__ = ()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __index__(self) -> int:
        return operator.index(self.item())

    def __round__(self, ndigits: int | None = None) -> Any:
        return round(self.item(), ndigits)

    def __format__(self, spec: str) -> str:
        return format(self.item(), spec)

    def item(self) -> Any:
        """The value as a Python number."""
        prev = _np_on()
        try:
            return self.asnumpy().item()
        finally:
            _np_restore(prev)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        prev = _np_on()
        try:
            out = self.asnumpy()
        finally:
            _np_restore(prev)
        return out if dtype is None else out.astype(dtype)


def as_scalar(x: Any) -> Any:
    """Give a 0-d ``NDArray`` the :class:`Scalar` class (in place); return it."""
    if type(x) is _NDArray:
        x.__class__ = Scalar
    return x


def _scoped(name: str) -> Callable[..., Any]:
    method = getattr(_NDArray, name)

    def scoped(self: Any, *args: Any) -> Any:
        prev = _np_on()
        try:
            out = method(self, *args)
            if isinstance(out, _NDArray) and out.ndim == 0:
                as_scalar(out)
            return out
        finally:
            _np_restore(prev)

    scoped.__name__ = name
    return scoped


_SCOPED = (
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__pow__",
    "__rpow__",
    "__neg__",
    "__abs__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__eq__",
    "__ne__",
    "__repr__",
    "__str__",
    "asnumpy",
    "asscalar",
    "astype",
    "copy",
    "detach",
)
for _name in _SCOPED:
    setattr(Scalar, _name, _scoped(_name))
Scalar.__hash__ = _NDArray.__hash__
