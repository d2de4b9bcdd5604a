"""Window geometry of the convolution and pooling hooks: output sizes and divisors.

These are the formulas the hookspecs :func:`~unified.hookspecs.conv`,
:func:`~unified.hookspecs.conv_transpose` and :func:`~unified.hookspecs.pool` pin
(PyTorch's), written once so that adapters which assemble a kernel from parts (the
NumPy im2col, JAX's ``reduce_window``, MXNet's pooling fix-ups) and the layers agree.
Every function works on one spatial dimension; callers loop over the dimensions.
Plain integers and NumPy only: no framework is imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def conv_output_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int
) -> int:
    """Return ``floor((size + 2p - d(k-1) - 1) / s) + 1``, the length of a conv output.

    :raises ValueError: when the (padded) input is shorter than the dilated kernel.
    """
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(
            f"conv: padded input size {size + 2 * padding} is smaller than the "
            f"dilated kernel size {span}; pad more or use a smaller kernel"
        )
    return (size + 2 * padding - span) // stride + 1


def conv_transpose_output_size(
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    output_padding: int,
    dilation: int,
) -> int:
    """Return ``(size - 1)s - 2p + d(k-1) + output_padding + 1``.

    :raises ValueError: when ``output_padding`` is not smaller than the stride (the
        rule of Gluon and MXNet; PyTorch also accepts values below the dilation) or
        the result is not positive.
    """
    if not 0 <= output_padding < stride:
        raise ValueError(
            f"conv_transpose: output_padding {output_padding} must be smaller than "
            f"the stride {stride}"
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding
    if out + 1 <= 0:
        raise ValueError(
            f"conv_transpose: output size {out + 1} is not positive; use less padding"
        )
    return out + 1


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int, ceil_mode: bool
) -> int:
    """Return the length of a pooling output (PyTorch's rule).

    ``floor`` (or ``ceil`` with ``ceil_mode``) of ``(size + 2p - k) / s``, plus one;
    with ``ceil_mode`` a last window that would start in the right padding (at or
    beyond ``size + p``) is dropped.

    :raises ValueError: when ``padding`` exceeds half the kernel or the padded
        input is shorter than the kernel.
    """
    if not 0 <= 2 * padding <= kernel:
        raise ValueError(
            f"pool: padding {padding} must be at most half the kernel size {kernel}"
        )
    if size + 2 * padding < kernel:
        raise ValueError(
            f"pool: padded input size {size + 2 * padding} is smaller than the "
            f"kernel size {kernel}"
        )
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_right_padding(
    size: int, kernel: int, stride: int, padding: int, out: int
) -> int:
    """Return the padding on the right that makes all ``out`` windows fit.

    At least ``padding``; more when ``ceil_mode`` adds a last, partial window.
    """
    return max(padding, (out - 1) * stride + kernel - size - padding)


def pool_divisor(
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    out: int,
    count_include_pad: bool,
) -> np.ndarray:
    """Return, for each of the ``out`` windows, its average-pooling divisor along one
    dimension (an ``int64`` array; the divisor of a window is the product over the
    dimensions).

    A window starting at ``o*s - p`` is clipped to the padded input ``[-p, size + p)``
    when ``count_include_pad`` (padding counts, the extra ``ceil_mode`` part does
    not), and to the real input ``[0, size)`` otherwise.
    """
    start = np.arange(out, dtype=np.int64) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def pool_divisors(
    sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    out: Sequence[int],
    count_include_pad: bool,
) -> np.ndarray:
    """Return the ``(*out)`` average-pooling divisors of a window grid: the outer
    product over the spatial dimensions of :func:`pool_divisor` (``int64``)."""
    div = np.ones((), dtype=np.int64)
    for dim in zip(sizes, kernel, stride, padding, out, strict=True):
        div = np.multiply.outer(div, pool_divisor(*dim, count_include_pad))
    return div
