"""The stride-1 convolution of the NumPy backend on the flattened padded input.

For stride 1, the window of output position ``p`` at kernel offset ``k`` starts at
flat index ``p + off[k]`` of the padded input when the input is laid out as
``(C, N * Hp * Wp)`` (channels first, then every padded sample, row after row), with
``off[k] = i * d0 * Wp + j * d1`` for offset ``(i, j)`` and dilation ``(d0, d1)``. So:

* **im2col** is ``prod(kernel)`` *contiguous* slices ``xf[:, off[k]:off[k] + L]``
  copied into a ``(C, K, L)`` buffer (row copies, where the generic path of
  :mod:`unified_numpy.nn` gathers a 6-d transposed window view), followed by one
  batched ``matmul`` per group;
* **col2im** (the input gradient) is one ``matmul`` then ``prod(kernel)`` contiguous
  slice additions ``dxf[:, off[k]:off[k] + L] += dcols[:, k]``;
* the outputs are computed at every padded position (``L = N * Hp * Wp``; the input
  buffer has ``off[-1]`` trailing zeros), and the rows and columns past the valid
  output are cropped, so the arithmetic grows by ``Hp * Wp / (Ho * Wo)`` (1.13 for
  32x32 maps with padding 1, 1.56 for 8x8) while the copies shrink.

A 1x1 convolution without padding and with stride ``s`` is the same on the input
subsampled by ``s`` (its gradient scattered back to every ``s``-th position).
Every sum is the same set of float32 products as the generic path, accumulated by
BLAS in a different order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from unified_numpy.tape import Node, record
from unified_numpy.trace import ascontiguousarray

Ints = tuple[int, ...]


def weight_first(
    grad_x: Callable[[Any], Any], grad_w: Callable[[Any], Any], weight: Any
) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """A convolution's input and weight gradient functions, the weight's computed
    first when both are needed (the tape calls ``grad_x`` first). The im2col buffer
    the weight gradient reads can then be released (a compiled step releases every
    value after its last use) before the input gradient allocates its own: the
    same kernels on the same operands, so the same numbers, with less memory."""
    if type(weight) is not Node:
        return grad_x, grad_w
    memo: list[Any] = []

    def first_w_then_x(g: Any) -> Any:
        memo.append(grad_w(g))
        return grad_x(g)

    def w_computed(g: Any) -> Any:
        return memo.pop() if memo else grad_w(g)

    return first_w_then_x, w_computed


def applies(kernel: Ints, stride: Ints, padding: Ints) -> bool:
    """Whether :func:`conv_flat` handles this configuration."""
    if all(s == 1 for s in stride):
        return True
    return all(k == 1 for k in kernel) and not any(padding)


def _layout(xv: np.ndarray, padding: Ints, extra: int) -> np.ndarray:
    """``(N, C, *sp)`` to the zero-padded ``(C, N * prod(padded) + extra)`` layout."""
    n, c, sp = xv.shape[0], xv.shape[1], xv.shape[2:]
    padded = tuple(s + 2 * p for s, p in zip(sp, padding, strict=True))
    length = n * math.prod(padded)
    if not any(padding) and not extra:
        return ascontiguousarray(xv.transpose(1, 0, *range(2, xv.ndim))).reshape(
            c, length
        )
    # zeros_like: a fresh buffer on every replay when ``xv`` is traced (jit)
    flat = np.zeros_like(xv, shape=(c, length + extra), order="C")
    inner = tuple(slice(p, p + s) for s, p in zip(sp, padding, strict=True))
    view = flat[:, :length].reshape(c, n, *padded)
    view[(slice(None), slice(None), *inner)] = xv.transpose(1, 0, *range(2, xv.ndim))
    return flat


def conv_flat(
    x: Any,
    weight: Any,
    bias: Any,
    xv: np.ndarray,
    wv: np.ndarray,
    bv: np.ndarray | None,
    stride: Ints,
    padding: Ints,
    dilation: Ints,
    groups: int,
    expand: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Any:
    """``conv`` for stride 1 (or a 1x1 kernel without padding); see the module.

    ``x``/``weight``/``bias`` are the operands as passed (Nodes or arrays), ``xv``
    etc. their values; ``expand`` maps the gradient of ``xv`` to that of ``x`` (when
    ``xv`` was cut from it)."""
    if any(s != 1 for s in stride):  # 1x1, no padding: subsample, then stride 1
        return _strided_1x1(x, weight, bias, xv, wv, bv, stride, groups)
    n, c, sp = xv.shape[0], xv.shape[1], xv.shape[2:]
    co, kernel = wv.shape[0], wv.shape[2:]
    padded = tuple(s + 2 * p for s, p in zip(sp, padding, strict=True))
    out = tuple(
        pp - d * (k - 1) for pp, k, d in zip(padded, kernel, dilation, strict=True)
    )
    row = padded[1] if len(padded) == 2 else 1
    offsets = [
        sum(o * d * r for o, d, r in zip(offs, dilation, (row, 1)[-len(offs) :]))
        for offs in np.ndindex(*kernel)
    ]
    nk, length = len(offsets), n * math.prod(padded)
    xf = _layout(xv, padding, offsets[-1])
    if nk == 1:
        cols = xf[:, :length].reshape(groups, c // groups, length)
    else:
        buf = np.empty_like(xv, shape=(c, nk, length), order="C")
        for k, off in enumerate(offsets):
            buf[:, k] = xf[:, off : off + length]
        cols = buf.reshape(groups, (c // groups) * nk, length)
    wm = wv.reshape(groups, co // groups, -1)  # (G, Co_g, C_g * K)
    yfull = np.matmul(wm, cols).reshape(co, n, *padded)
    crop = (slice(None), slice(None), *(slice(0, o) for o in out))
    y = ascontiguousarray(yfull[crop].transpose(1, 0, *range(2, xv.ndim)))
    if bv is not None:
        y += bv.reshape(-1, *(1,) * len(sp)).astype(y.dtype, copy=False)
    if type(x) is not Node and type(weight) is not Node and type(bias) is not Node:
        return y

    memo: list[Any] = [None, None]

    def gfull(g: np.ndarray) -> np.ndarray:
        """The output gradient in the ``(G, Co_g, L)`` layout, zero where cropped."""
        if memo[0] is not g:
            full = np.zeros_like(g, shape=(co, n, *padded), order="C")
            full[crop] = g.transpose(1, 0, *range(2, g.ndim))
            memo[0], memo[1] = g, full.reshape(groups, co // groups, length)
        return memo[1]

    def grad_x(g: np.ndarray) -> np.ndarray:
        dcols = np.matmul(wm.transpose(0, 2, 1), gfull(g)).reshape(c, nk, length)
        if nk == 1 and not any(padding):
            dxf = dcols.reshape(c, n, *sp)
        else:
            acc = np.zeros_like(dcols, shape=(c, length + offsets[-1]), order="C")
            for k, off in enumerate(offsets):
                acc[:, off : off + length] += dcols[:, k]
            inner = tuple(slice(p, p + s) for s, p in zip(sp, padding, strict=True))
            dxf = acc[:, :length].reshape(c, n, *padded)[
                (slice(None), slice(None), *inner)
            ]
        dx = ascontiguousarray(dxf.transpose(1, 0, *range(2, xv.ndim)))
        return dx if expand is None else expand(dx)

    def grad_w(g: np.ndarray) -> np.ndarray:
        return np.matmul(gfull(g), cols.transpose(0, 2, 1)).reshape(wv.shape)

    def grad_b(g: np.ndarray) -> np.ndarray:
        return g.sum(axis=(0, *range(2, g.ndim)))

    grad_x, grad_w = weight_first(grad_x, grad_w, weight)
    if bias is None:
        return record(y, (x, weight), (grad_x, grad_w))
    return record(y, (x, weight, bias), (grad_x, grad_w, grad_b))


def _strided_1x1(
    x: Any,
    weight: Any,
    bias: Any,
    xv: np.ndarray,
    wv: np.ndarray,
    bv: np.ndarray | None,
    stride: Ints,
    groups: int,
) -> Any:
    """A 1x1 convolution, stride ``s``, no padding: stride 1 on ``x[..., ::s]``."""
    pick = (slice(None), slice(None), *(slice(None, None, s) for s in stride))
    ones, zeros = (1,) * len(stride), (0,) * len(stride)

    def expand(dxs: np.ndarray) -> np.ndarray:
        dx = np.zeros_like(dxs, shape=xv.shape, order="C")
        dx[pick] = dxs
        return dx

    return conv_flat(
        x, weight, bias, xv[pick], wv, bv, ones, zeros, ones, groups, expand
    )
