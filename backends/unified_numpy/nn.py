"""Convolution and pooling of the NumPy backend, with their gradients on the tape.

The kernels follow the contract of :func:`unified.hookspecs.conv`,
:func:`~unified.hookspecs.conv_transpose` and :func:`~unified.hookspecs.pool` for 1
or 2 spatial dimensions, channels first.

* **im2col**: the padded input is viewed as ``(N, C, *out, *kernel)`` windows with
  :func:`numpy.lib.stride_tricks.sliding_window_view` (strides and dilation are
  slices of that view, nothing is copied), rearranged once into a ``(groups, N*P,
  C_g*K)`` matrix, and multiplied with the weight by one batched BLAS ``matmul``.
* **col2im** (the gradient with respect to the input, and the forward of
  ``conv_transpose``): one ``matmul`` gives the window contributions, which are
  added into a zero padded array with one strided-slice ``+=`` per kernel offset
  (``prod(kernel)`` NumPy calls, never a loop over elements), then the padding is
  cropped.
* **stride 1** (and 1x1 kernels without padding at any stride), the common case,
  takes a faster route with the same products: :mod:`unified_numpy.conv_flat`
  (im2col and col2im as contiguous slices of the flattened padded input). The
  generic route above serves strided and ``conv_transpose`` windows.
* ``conv_transpose`` is the input-gradient of ``conv``; its own input-gradient is a
  ``conv``, and its weight-gradient the same product as ``conv``'s.
* Pooling uses the same window view: ``max`` (padding is ``-inf``) is a running
  ``np.maximum`` over the ``prod(kernel)`` strided taps, and its gradient goes to
  the *first* tap (in window order) equal to the maximum, found by one comparison
  per tap (inputs holding NaNs take the slower ``argmax`` route, where the first
  NaN wins); ``avg``
  divides the window sums by the divisors of :func:`unified.windows.pool_divisor`.

As in :mod:`unified_numpy.ops`, plain arrays take the plain path; when an input is a
:class:`~unified_numpy.tape.Node`, the value is computed the same way and the backward
rules are recorded with :func:`~unified_numpy.tape.record`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from unified import hookimpl
from unified.windows import (
    conv_output_size,
    conv_transpose_output_size,
    pool_divisors,
    pool_output_size,
    pool_right_padding,
)
from unified_numpy import conv_flat as _flat
from unified_numpy.tape import Node, record
from unified_numpy.trace import ascontiguousarray

Array = Any
Ints = tuple[int, ...]


def _value(x: Any) -> Any:
    return x.value if type(x) is Node else x


def _check_tuples(x: np.ndarray, **tuples: Sequence[int]) -> int:
    """Return the number of spatial dimensions, checking each tuple has one entry
    per spatial dimension of ``x``."""
    nsp = x.ndim - 2
    if nsp not in (1, 2):
        raise ValueError(
            f"expected an input (N, C, *spatial) with 1 or 2 spatial dimensions, got "
            f"shape {x.shape}"
        )
    for name, t in tuples.items():
        if len(t) != nsp:
            raise ValueError(
                f"{name}={tuple(t)} needs one entry per spatial dimension ({nsp})"
            )
    return nsp


# ----------------------------------------------------------------------------------
# im2col / col2im
# ----------------------------------------------------------------------------------


def _pad(x: np.ndarray, before: Ints, after: Ints, fill: float = 0.0) -> np.ndarray:
    """Pad the spatial dimensions of ``x`` with ``fill``."""
    if not any(before) and not any(after):
        return x
    shape = x.shape[:2] + tuple(
        n + b + a for n, b, a in zip(x.shape[2:], before, after, strict=True)
    )
    out = np.full_like(x, fill, shape=shape, order="C")  # jit: fresh per replay
    inner = tuple(slice(b, b + n) for n, b in zip(x.shape[2:], before, strict=True))
    out[(slice(None), slice(None), *inner)] = x
    return out


def _windows(xp: np.ndarray, kernel: Ints, stride: Ints, dilation: Ints, out: Ints):
    """The ``(N, C, *out, *kernel)`` windows of the padded input, as a strided view."""
    nsp = len(kernel)
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    view = sliding_window_view(xp, span, axis=tuple(range(2, 2 + nsp)))
    starts = tuple(
        slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride, strict=True)
    )
    taps = tuple(slice(None, None, d) for d in dilation)
    return view[(slice(None), slice(None), *starts, *taps)]


def _cols(
    xp: np.ndarray, kernel: Ints, stride: Ints, dilation: Ints, out: Ints, groups: int
) -> np.ndarray:
    """The im2col matrix ``(groups, N*P, C_g*K)`` of the padded input (one copy)."""
    view = _windows(xp, kernel, stride, dilation, out)
    n, c, nsp = xp.shape[0], xp.shape[1], len(kernel)
    view = view.reshape(n, groups, c // groups, *view.shape[2:])
    axes = (1, 0, *range(3, 3 + nsp), 2, *range(3 + nsp, 3 + 2 * nsp))
    return view.transpose(axes).reshape(groups, n * math.prod(out), -1)


def _to_rows(y: np.ndarray, groups: int) -> np.ndarray:
    """``(N, C, *sp)`` to ``(groups, N*P, C_g)``."""
    n, c = y.shape[:2]
    p = math.prod(y.shape[2:])
    return (
        y.reshape(n, groups, c // groups, p)
        .transpose(1, 0, 3, 2)
        .reshape(groups, n * p, c // groups)
    )


def _from_rows(m: np.ndarray, n: int, spatial: Ints) -> np.ndarray:
    """``(groups, N*P, C_g)`` to a new ``(N, groups*C_g, *spatial)`` array."""
    g, _, cg = m.shape
    y = m.reshape(g, n, math.prod(spatial), cg).transpose(1, 0, 3, 2)
    return ascontiguousarray(y).reshape(n, g * cg, *spatial)


def _scatter(
    d: np.ndarray, shape: tuple[int, ...], kernel: Ints, stride: Ints, dilation: Ints
) -> np.ndarray:
    """Add window contributions ``d`` of shape ``(N, C, *kernel, *out)`` into a zero
    array of the padded ``shape``, one strided-slice ``+=`` per kernel offset (the
    caller crops the padding)."""
    out = d.shape[2 + len(kernel) :]
    acc = np.zeros_like(d, shape=shape, order="C")  # jit: fresh per replay
    for offs in np.ndindex(*kernel):
        where = tuple(
            slice(k * dl, k * dl + (o - 1) * s + 1, s)
            for k, dl, o, s in zip(offs, dilation, out, stride, strict=True)
        )
        acc[(slice(None), slice(None), *where)] += d[(slice(None), slice(None), *offs)]
    return acc


def _col2im(
    dcols: np.ndarray,
    shape: tuple[int, ...],
    padding: Ints,
    kernel: Ints,
    stride: Ints,
    dilation: Ints,
    out: Ints,
) -> np.ndarray:
    """Sum the ``(groups, N*P, C_g*K)`` window gradients back into an array of the
    unpadded input ``shape``."""
    n, c, nsp = shape[0], shape[1], len(kernel)
    groups = dcols.shape[0]
    d = dcols.reshape(groups, n, *out, c // groups, *kernel)
    axes = (1, 0, 2 + nsp, *range(3 + nsp, 3 + 2 * nsp), *range(2, 2 + nsp))
    d = ascontiguousarray(d.transpose(axes)).reshape(n, c, *kernel, *out)
    padded = shape[:2] + tuple(
        s + 2 * p for s, p in zip(shape[2:], padding, strict=True)
    )
    acc = _scatter(d, padded, kernel, stride, dilation)
    inner = tuple(slice(p, p + s) for s, p in zip(shape[2:], padding, strict=True))
    return acc[(slice(None), slice(None), *inner)]


def _once(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Memoize ``fn`` on the identity of its argument (shared by the backward rules
    of one op, which the tape calls with the same gradient array)."""
    memo: list[Any] = [None, None]

    def wrapped(g: Any) -> Any:
        if memo[0] is not g:
            memo[0], memo[1] = g, fn(g)
        return memo[1]

    return wrapped


def _bias_grad(g: np.ndarray) -> np.ndarray:
    return g.sum(axis=(0, *range(2, g.ndim)))


def _add_bias(y: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    if b is not None:
        y += b.reshape(-1, *(1,) * (y.ndim - 2)).astype(y.dtype, copy=False)
    return y


# ----------------------------------------------------------------------------------
# conv / conv_transpose
# ----------------------------------------------------------------------------------


@hookimpl
def conv(
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: Ints,
    padding: Ints,
    dilation: Ints,
    groups: int,
) -> Array:
    """Cross-correlation by im2col and one batched ``matmul``."""
    xv, wv, bv = _value(x), _value(weight), _value(bias)
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    _check_tuples(xv, stride=stride, padding=padding, dilation=dilation)
    if xv.shape[1] != wv.shape[1] * groups or wv.shape[0] % groups:
        raise ValueError(
            f"conv: input channels {xv.shape[1]} and weight {wv.shape} do not fit "
            f"groups={groups} (weight must be (C_out, C_in // groups, *kernel))"
        )
    n, kernel, co = xv.shape[0], wv.shape[2:], wv.shape[0]
    out = tuple(
        conv_output_size(*a)
        for a in zip(xv.shape[2:], kernel, stride, padding, dilation, strict=True)
    )
    if _flat.applies(kernel, stride, padding):
        return _flat.conv_flat(
            x, weight, bias, xv, wv, bv, stride, padding, dilation, groups
        )
    cols = _cols(_pad(xv, padding, padding), kernel, stride, dilation, out, groups)
    wm = wv.reshape(groups, co // groups, -1)
    y = _add_bias(_from_rows(np.matmul(cols, wm.transpose(0, 2, 1)), n, out), bv)
    if type(x) is not Node and type(weight) is not Node and type(bias) is not Node:
        return y

    rows = _once(lambda g: _to_rows(g, groups))

    def grad_x(g: np.ndarray) -> np.ndarray:
        dcols = np.matmul(rows(g), wm)
        return _col2im(dcols, xv.shape, padding, kernel, stride, dilation, out)

    def grad_w(g: np.ndarray) -> np.ndarray:
        return np.matmul(rows(g).transpose(0, 2, 1), cols).reshape(wv.shape)

    grad_x, grad_w = _flat.weight_first(grad_x, grad_w, weight)
    if bias is None:
        return record(y, (x, weight), (grad_x, grad_w))
    return record(y, (x, weight, bias), (grad_x, grad_w, _bias_grad))


@hookimpl
def conv_transpose(
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: Ints,
    padding: Ints,
    output_padding: Ints,
    dilation: Ints,
    groups: int,
) -> Array:
    """The input-gradient of ``conv``: one ``matmul``, then col2im."""
    xv, wv, bv = _value(x), _value(weight), _value(bias)
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    output_padding = tuple(output_padding)
    _check_tuples(
        xv,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )
    if xv.shape[1] != wv.shape[0] or wv.shape[0] % groups:
        raise ValueError(
            f"conv_transpose: input channels {xv.shape[1]} and weight {wv.shape} do "
            f"not fit groups={groups} (weight must be (C_in, C_out // groups, *kernel))"
        )
    n, kernel, insz = xv.shape[0], wv.shape[2:], xv.shape[2:]
    cout = wv.shape[1] * groups
    outsz = tuple(
        conv_transpose_output_size(*a)
        for a in zip(
            insz, kernel, stride, padding, output_padding, dilation, strict=True
        )
    )
    wm = wv.reshape(groups, wv.shape[0] // groups, -1)  # (G, C_in_g, C_out_g * K)
    xrows = _to_rows(xv, groups)
    shape = (n, cout, *outsz)
    y = _col2im(np.matmul(xrows, wm), shape, padding, kernel, stride, dilation, insz)
    y = _add_bias(y, bv)
    if type(x) is not Node and type(weight) is not Node and type(bias) is not Node:
        return y

    cols = _once(
        lambda g: _cols(
            _pad(g, padding, padding), kernel, stride, dilation, insz, groups
        )
    )

    def grad_x(g: np.ndarray) -> np.ndarray:
        return _from_rows(np.matmul(cols(g), wm.transpose(0, 2, 1)), n, insz)

    def grad_w(g: np.ndarray) -> np.ndarray:
        return np.matmul(xrows.transpose(0, 2, 1), cols(g)).reshape(wv.shape)

    if bias is None:
        return record(y, (x, weight), (grad_x, grad_w))
    return record(y, (x, weight, bias), (grad_x, grad_w, _bias_grad))


# ----------------------------------------------------------------------------------
# pool
# ----------------------------------------------------------------------------------


def _tap_index(kernel: Ints, stride: Ints, out: Ints) -> list[tuple[slice, ...]]:
    """For each kernel offset (row-major: the order of a flattened window), the
    index of the strided view of the padded input holding that element of every
    window."""
    return [
        (slice(None), slice(None))
        + tuple(
            slice(k, k + (o - 1) * s + 1, s)
            for k, o, s in zip(offs, out, stride, strict=True)
        )
        for offs in np.ndindex(*kernel)
    ]


def _first_max_grad(
    xp: np.ndarray,
    index: list[tuple[slice, ...]],
    y: np.ndarray,
    insz: Ints,
    padding: Ints,
) -> Callable[[np.ndarray], np.ndarray]:
    """The backward of max pooling: each window's gradient goes to the first tap
    (in window order) equal to the window's maximum, or the first NaN of a window
    holding one (its maximum is NaN then, as ``argmax`` finds it)."""

    def grad(g: np.ndarray) -> np.ndarray:
        acc = np.zeros_like(g, shape=xp.shape, order="C")
        taken = np.zeros_like(y, dtype=bool, order="C")
        for where in index:
            tap = xp[where]
            hit = tap == y
            hit |= np.isnan(tap)  # y is NaN exactly where a tap is
            hit &= ~taken
            taken |= hit
            acc[where] += np.where(hit, g, 0)
        inner = tuple(slice(p, p + s) for s, p in zip(insz, padding, strict=True))
        return acc[(slice(None), slice(None), *inner)]

    return grad


@hookimpl
def pool(
    x: Array,
    mode: str,
    kernel: Ints,
    stride: Ints,
    padding: Ints,
    ceil_mode: bool,
    count_include_pad: bool,
) -> Array:
    """Max or average pooling on the window view of the padded input."""
    if mode not in ("max", "avg"):
        raise ValueError(f"pool: mode must be 'max' or 'avg', got {mode!r}")
    xv = _value(x)
    kernel, stride, padding = tuple(kernel), tuple(stride), tuple(padding)
    nsp = _check_tuples(xv, kernel=kernel, stride=stride, padding=padding)
    n, c, insz = xv.shape[0], xv.shape[1], xv.shape[2:]
    out = tuple(
        pool_output_size(*a, ceil_mode)
        for a in zip(insz, kernel, stride, padding, strict=True)
    )
    right = tuple(
        pool_right_padding(*a)
        for a in zip(insz, kernel, stride, padding, out, strict=True)
    )
    fill = -np.inf if mode == "max" else 0.0
    xp = _pad(xv, padding, right, fill)
    view = _windows(xp, kernel, stride, (1,) * nsp, out)  # (N, C, *out, *kernel)
    ones = (1,) * nsp
    kaxes = tuple(range(2 + nsp, 2 + 2 * nsp))

    def scatter(d: np.ndarray) -> np.ndarray:
        acc = _scatter(d, xp.shape, kernel, stride, ones)
        inner = tuple(slice(p, p + s) for s, p in zip(insz, padding, strict=True))
        return acc[(slice(None), slice(None), *inner)]

    if mode == "avg":
        div = pool_divisors(insz, kernel, stride, padding, out, count_include_pad)
        div = div.astype(xv.dtype)
        y = view.sum(axis=kaxes) / div
        if type(x) is not Node:
            return y

        def grad_avg(g: np.ndarray) -> np.ndarray:
            share = (g / div)[(slice(None), slice(None), *(None,) * nsp)]
            return scatter(np.broadcast_to(share, (n, c, *kernel, *out)))

        return record(y, (x,), (grad_avg,))

    # max: a running maximum over the taps (NaN propagates: the first NaN's value)
    index = _tap_index(kernel, stride, out)
    y = xp[index[0]].copy()
    for where in index[1:]:
        np.maximum(y, xp[where], out=y)
    if type(x) is not Node:
        return y
    # No branch on the values (NaN or not): a jit trace records the same kernels.
    return record(y, (x,), (_first_max_grad(xp, index, y, insz, padding),))
