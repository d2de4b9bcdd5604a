"""Convolution and pooling of the PyTorch backend: ``torch.nn.functional`` kernels.

The contract of :func:`unified.hookspecs.conv`,
:func:`~unified.hookspecs.conv_transpose` and :func:`~unified.hookspecs.pool` is
PyTorch's own definition (output sizes, ``ceil_mode``, the average-pooling divisors,
the first-maximum gradient rule of max pooling), so each hook is one call of the 1-
or 2-d functional for the input's number of spatial dimensions. Autograd records
them like any other op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from unified import hookimpl
from unified.hookspecs import Array

Ints = tuple[int, ...]

_CONV: dict[int, Callable[..., Any]] = {1: F.conv1d, 2: F.conv2d}
_CONV_T: dict[int, Callable[..., Any]] = {
    1: F.conv_transpose1d,
    2: F.conv_transpose2d,
}
_MAX: dict[int, Callable[..., Any]] = {
    1: F.max_pool1d,
    2: F.max_pool2d,
}
_AVG: dict[int, Callable[..., Any]] = {
    1: F.avg_pool1d,
    2: F.avg_pool2d,
}


def _kernel(table: dict[int, Callable[..., Any]], x: Array, what: str) -> Any:
    try:
        return table[x.ndim - 2]
    except KeyError:
        raise ValueError(
            f"{what}: expected an input (N, C, *spatial) with 1 or 2 spatial "
            f"dimensions, got shape {tuple(x.shape)}"
        ) from None


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
    fn = _kernel(_CONV, x, "conv")
    return fn(x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), groups)


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
    fn = _kernel(_CONV_T, x, "conv_transpose")
    for op, s in zip(output_padding, stride, strict=True):
        if not 0 <= op < s:  # torch accepts op < dilation too; the contract does not
            raise ValueError(
                f"conv_transpose: output_padding {tuple(output_padding)} must be "
                f"smaller than the stride {tuple(stride)}"
            )
    return fn(
        x,
        weight,
        bias,
        tuple(stride),
        tuple(padding),
        tuple(output_padding),
        groups,
        tuple(dilation),
    )


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
    for k, p in zip(kernel, padding, strict=True):
        if not 0 <= 2 * p <= k:  # torch raises RuntimeError; the contract ValueError
            raise ValueError(
                f"pool: padding {tuple(padding)} must be at most half the kernel "
                f"{tuple(kernel)}"
            )
    if mode == "max":
        fn = _kernel(_MAX, x, "pool")
        return fn(x, tuple(kernel), tuple(stride), tuple(padding), ceil_mode=ceil_mode)
    if mode == "avg":
        fn = _kernel(_AVG, x, "pool")
        return fn(
            x,
            tuple(kernel),
            tuple(stride),
            tuple(padding),
            ceil_mode=ceil_mode,
            count_include_pad=count_include_pad,
        )
    raise ValueError(f"pool: mode must be 'max' or 'avg', got {mode!r}")


_REDUCTIONS = ("mean", "sum", "none")


@hookimpl
def softmax_cross_entropy(logits: Array, labels: Array, reduction: str) -> Array:
    """``F.cross_entropy`` (``log_softmax`` and ``nll_loss`` in one call, one
    backward) over ``(N, C)`` logits; other shapes are flattened around it."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    x = logits if logits.ndim == 2 else logits.reshape(-1, logits.shape[-1])
    t = labels if labels.ndim == 1 else labels.reshape(-1)
    if t.dtype != torch.int64:
        t = t.long()
    out = F.cross_entropy(x, t, reduction=reduction)
    return out.reshape(labels.shape) if reduction == "none" else out
