"""Selection, comparison, shape and indexing hooks of the NumPy backend.

Same pattern as :mod:`unified_numpy.ops`: a plain NumPy path, and a tape path
(through :func:`~unified_numpy.tape.record`) when an input is a
:class:`~unified_numpy.tape.Node`. Comparisons and ``argmax`` return plain arrays
(they are not differentiable), also on the tape.

NumPy has no ``erf``; :func:`erf` evaluates it in float64 with a series below
``|x| = 2.5`` and a continued fraction of ``erfc`` above (both to ~1e-15), then
casts back to the input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from unified import hookimpl
from unified_numpy.ops import _like, _values, getitem
from unified_numpy.tape import Node, record, unbroadcast
from unified_numpy.trace import asarray

Array = Any


def _value(x: Any) -> Any:
    return x.value if type(x) is Node else x


# ----------------------------------------------------------------------------------
# Selection and comparison
# ----------------------------------------------------------------------------------


@hookimpl
def where(cond: Array, a: Array, b: Array) -> Array:
    """Return ``a`` where ``cond`` holds and ``b`` elsewhere (broadcasting)."""
    c = asarray(_value(cond))
    if c.dtype != np.bool_:
        c = c != 0
    va, vb = _values(a, b)
    out = np.where(c, va, vb)
    if type(a) is Node or type(b) is Node:
        sa, sb = np.shape(va), np.shape(vb)
        return record(
            out,
            (a, b),
            (
                lambda g: unbroadcast(np.where(c, g, g.dtype.type(0)), sa),
                lambda g: unbroadcast(np.where(c, g.dtype.type(0), g), sb),
            ),
        )
    return out


@hookimpl
def greater(a: Array, b: Array) -> Array:
    """Return the boolean array ``a > b``."""
    return np.greater(*_values(a, b))


@hookimpl
def less(a: Array, b: Array) -> Array:
    """Return the boolean array ``a < b``."""
    return np.less(*_values(a, b))


@hookimpl
def equal(a: Array, b: Array) -> Array:
    """Return the boolean array ``a == b``."""
    return np.equal(*_values(a, b))


@hookimpl
def clip(x: Array, lo: float | None, hi: float | None) -> Array:
    """Return ``x`` limited to ``[lo, hi]``; gradient 1 on the closed interval."""
    xv = _value(x)
    low = None if lo is None else _like(lo, xv)
    high = None if hi is None else _like(hi, xv)
    out = np.clip(xv, low, high)
    if type(x) is not Node:
        return out

    def grad(g: Any) -> Any:
        inside = np.ones_like(xv, dtype=bool, order="C")
        if low is not None:
            inside &= xv >= low
        if high is not None:
            inside &= xv <= high
        return g * inside

    return record(out, (x,), (grad,))


# ----------------------------------------------------------------------------------
# erf
# ----------------------------------------------------------------------------------

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SERIES_TERMS = 60
_FRACTION_TERMS = 60


def _erf64(x: np.ndarray) -> np.ndarray:
    """``erf`` of a float64 array, to about 1e-15."""
    ax = np.abs(x)
    small = ax < 2.5
    # |x| < 2.5: erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!
    # (positive terms: no cancellation).
    xs = np.where(small, ax, 0.0)
    term = xs.copy()
    total = xs.copy()
    x2 = 2.0 * xs * xs
    for n in range(1, _SERIES_TERMS):
        term = term * x2 / (2 * n + 1)
        total = total + term
    series = _TWO_OVER_SQRT_PI * np.exp(-xs * xs) * total
    # |x| >= 2.5: erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/...))),
    # evaluated from the tail.
    xl = np.where(small, 2.5, ax)
    frac = xl.copy()
    for k in range(_FRACTION_TERMS, 0, -1):
        frac = xl + (k / 2.0) / frac
    tail = 1.0 - np.exp(-xl * xl) / math.sqrt(math.pi) / frac
    return np.copysign(np.where(small, series, tail), x)


def _erf(x: Any) -> Any:
    x = asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return _erf64(x.astype(np.float64)).astype(dtype)


@hookimpl
def erf(x: Array) -> Array:
    """Return the error function (computed in float64, cast back)."""
    if type(x) is Node:
        xv = x.value
        out = _erf(xv)
        c = _like(_TWO_OVER_SQRT_PI, out)
        return record(out, (x,), (lambda g: g * (c * np.exp(-(xv * xv))),))
    return _erf(x)


# ----------------------------------------------------------------------------------
# Joining, splitting, padding
# ----------------------------------------------------------------------------------


@hookimpl
def concatenate(arrays: Sequence[Array], axis: int) -> Array:
    """Join arrays along an existing axis."""
    values = [_value(a) for a in arrays]
    out = np.concatenate(values, axis=axis)
    if not any(type(a) is Node for a in arrays):
        return out
    bounds = np.cumsum([np.shape(v)[axis] for v in values])[:-1]

    def piece(i: int) -> Any:
        return lambda g: np.split(g, bounds, axis=axis)[i]

    return record(out, tuple(arrays), tuple(piece(i) for i in range(len(values))))


@hookimpl
def stack(arrays: Sequence[Array], axis: int) -> Array:
    """Join arrays of one shape along a new axis."""
    values = [_value(a) for a in arrays]
    out = np.stack(values, axis=axis)
    if not any(type(a) is Node for a in arrays):
        return out

    def piece(i: int) -> Any:
        return lambda g: np.take(g, i, axis=axis)

    return record(out, tuple(arrays), tuple(piece(i) for i in range(len(values))))


def _cuts(n: int, sections: int | Sequence[int]) -> list[int]:
    """The cut points of ``numpy.split`` for an axis of length ``n``."""
    if isinstance(sections, (int, np.integer)):
        if sections <= 0 or n % sections:
            raise ValueError(
                f"split: {sections} sections do not divide an axis of length {n}"
            )
        step = n // int(sections)
        return [step * i for i in range(1, int(sections))]
    return [int(i) for i in sections]


@hookimpl
def split(x: Array, sections: int | Sequence[int], axis: int) -> list[Array]:
    """Split ``x`` along ``axis`` as ``numpy.split`` does; return a list."""
    xv = _value(x)
    ax = axis % np.ndim(xv)
    cuts = _cuts(np.shape(xv)[ax], sections)
    if type(x) is not Node:
        return np.split(xv, cuts, axis=ax)
    edges = [0, *cuts, np.shape(xv)[ax]]
    lead = (slice(None),) * ax
    return [getitem(x, (*lead, slice(s, e))) for s, e in zip(edges, edges[1:])]


@hookimpl
def pad(x: Array, pad_width: Sequence[tuple[int, int]], value: float = 0.0) -> Array:
    """Pad ``x`` with the constant ``value``."""
    xv = _value(x)
    widths = [(int(b), int(a)) for b, a in pad_width]
    out = np.pad(xv, widths, mode="constant", constant_values=_like(value, xv))
    if type(x) is not Node:
        return out
    interior = tuple(slice(b, b + n) for (b, _), n in zip(widths, np.shape(xv)))
    return record(out, (x,), (lambda g: g[interior],))


# ----------------------------------------------------------------------------------
# Indexing
# ----------------------------------------------------------------------------------


def _index(indices: Any) -> np.ndarray:
    idx = asarray(_value(indices))
    return idx if idx.dtype.kind in "iu" else idx.astype(np.int64)


@hookimpl
def take(x: Array, indices: Array, axis: int = 0) -> Array:
    """Gather along ``axis``; the gradient scatter-adds (repeats add up)."""
    idx = _index(indices)
    xv = _value(x)
    out = np.take(xv, idx, axis=axis)
    if type(x) is not Node:
        return out
    key = (slice(None),) * (axis % xv.ndim) + (idx,)

    def grad(g: Any) -> Any:
        gx = np.zeros_like(g, shape=xv.shape, order="C")  # jit: fresh per replay
        np.add.at(gx, key, g)
        return gx

    return record(out, (x,), (grad,))


@hookimpl
def argmax(x: Array, axis: int) -> Array:
    """Return the index of the maximum along ``axis`` (first on ties; int64)."""
    return np.argmax(_value(x), axis=axis).astype(np.int64)


@hookimpl
def slice_axis(x: Array, axis: int, begin: int, end: int | None) -> Array:
    """Return ``x[begin:end]`` along ``axis``."""
    ndim = np.ndim(_value(x))
    key = (slice(None),) * (axis % ndim) + (slice(begin, end),)
    return getitem(x, key)
