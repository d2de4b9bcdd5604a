"""Float64 oracles of convolution and pooling, written from the definitions.

Direct loops over output (or input) positions, in plain NumPy, independent of every
backend and of :mod:`unified.windows`: a conv output is a sum over one window, a
transposed conv scatters each input element through the kernel, and pooling follows
PyTorch's documented C++ loops (``ceil_mode`` rule, the two divisors). Slow, and
meant for the small inputs of the conformance suite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Ints = Sequence[int]


def _window(pos: Ints, stride: Ints, dilation: Ints, kernel: Ints) -> tuple:
    """Spatial slices of the window of output position ``pos`` in a padded input."""
    return tuple(
        slice(o * s, o * s + d * (k - 1) + 1, d)
        for o, s, d, k in zip(pos, stride, dilation, kernel, strict=True)
    )


def conv64(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: Ints,
    padding: Ints,
    dilation: Ints,
    groups: int,
) -> np.ndarray:
    """``out[n, o, pos] = b[o] + sum(window(x_pad, pos) * w[o])`` (o's group only)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    cin_g, cout = w.shape[1], w.shape[0]
    cout_g = cout // groups
    kernel = w.shape[2:]
    out = [
        (size - d * (k - 1) - 1) // s + 1
        for size, d, k, s in zip(xp.shape[2:], dilation, kernel, stride, strict=True)
    ]
    y = np.zeros((x.shape[0], cout, *out))
    axes = tuple(range(1, w.ndim))
    for o in range(cout):
        g = o // cout_g
        xs = xp[:, g * cin_g : (g + 1) * cin_g]
        for pos in np.ndindex(*out):
            win = xs[
                (slice(None), slice(None), *_window(pos, stride, dilation, kernel))
            ]
            y[(slice(None), o, *pos)] = np.sum(win * w[o], axis=axes)
        if b is not None:
            y[:, o] += b[o]
    return y


def conv_transpose64(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: Ints,
    padding: Ints,
    output_padding: Ints,
    dilation: Ints,
    groups: int,
) -> np.ndarray:
    """Scatter ``x[n, c, pos] * w[c, :, k]`` to ``pos*s + k*d``, crop ``p`` per side."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, cin = x.shape[:2]
    cin_g, cout_g = cin // groups, w.shape[1]
    kernel, insz = w.shape[2:], x.shape[2:]
    full = [
        (i - 1) * s + d * (k - 1) + 1 + op
        for i, s, d, k, op in zip(
            insz, stride, dilation, kernel, output_padding, strict=True
        )
    ]
    y = np.zeros((n, cout_g * groups, *full))
    for c in range(cin):
        g = c // cin_g
        outs = slice(g * cout_g, (g + 1) * cout_g)
        for pos in np.ndindex(*insz):
            xv = x[(slice(None), c, *pos)][:, None]  # (n, 1)
            for k in np.ndindex(*kernel):
                tgt = tuple(
                    q * s + t * d
                    for q, s, t, d in zip(pos, stride, k, dilation, strict=True)
                )
                y[(slice(None), outs, *tgt)] += xv * w[(c, slice(None), *k)][None, :]
    crop = tuple(slice(p, f - p) for p, f in zip(padding, full, strict=True))
    out = y[(slice(None), slice(None), *crop)]
    if b is not None:
        out = out + np.asarray(b, np.float64).reshape(-1, *[1] * len(insz))
    return out


def pool_size64(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """PyTorch's ``pooling_output_shape`` (dilation 1)."""
    num = size + 2 * p - k
    out = (math.ceil(num / s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def pool64(
    x: np.ndarray,
    mode: str,
    kernel: Ints,
    stride: Ints,
    padding: Ints,
    ceil_mode: bool,
    count_include_pad: bool,
) -> np.ndarray:
    """Max or average pooling by PyTorch's loops over output positions."""
    x = np.asarray(x, np.float64)
    insz = x.shape[2:]
    out = [
        pool_size64(*a, ceil_mode)
        for a in zip(insz, kernel, stride, padding, strict=True)
    ]
    y = np.zeros(x.shape[:2] + tuple(out))
    axes = tuple(range(2, x.ndim))
    for pos in np.ndindex(*out):
        start = [o * s - p for o, s, p in zip(pos, stride, padding, strict=True)]
        end = [
            min(a + k, n + p)
            for a, k, n, p in zip(start, kernel, insz, padding, strict=True)
        ]
        pool_size = math.prod(e - a for a, e in zip(start, end, strict=True))
        start = [max(a, 0) for a in start]
        end = [min(e, n) for e, n in zip(end, insz, strict=True)]
        win = x[(slice(None), slice(None), *(slice(a, e) for a, e in zip(start, end)))]
        if mode == "max":
            y[(slice(None), slice(None), *pos)] = win.max(axis=axes)
        else:
            count = pool_size if count_include_pad else win[0, 0].size
            y[(slice(None), slice(None), *pos)] = win.sum(axis=axes) / count
    return y
