"""Convolution and pooling of the MXNet backend: ``mx.nd`` Convolution, Deconvolution
and Pooling, wrapped like every other hook of :mod:`unified_mxnet` (NumPy-shape
semantics on for the duration of the call, recorded by ``mx.autograd``).

Where MXNet 1.9.1 differs from the contract (PyTorch's definitions), the numbers are
fixed up here:

* ``ceil_mode``: ``pooling_convention="full"`` counts ``ceil((in + 2p - k)/s) + 1``
  windows, without PyTorch's rule that drops a last window starting in the right
  padding; the surplus window is sliced off (a recorded slice).
* average pooling: MXNet's ``avg`` forward divides a partial last ``ceil_mode``
  window as PyTorch does, but its backward divides by a different count (gradients
  off by up to ~10% there). So ``avg`` is ``sum`` pooling divided by the divisors of
  :func:`unified.windows.pool_divisor` (a constant array), exact in both directions.
* ``output_padding`` (``adj``) and the pooling padding are validated with
  :mod:`unified.windows` first: MXNet would accept values PyTorch rejects.
"""

from __future__ import annotations

import functools
from typing import Any

import mxnet as mx
import numpy

from unified import hookimpl
from unified.windows import conv_transpose_output_size, pool_divisors, pool_output_size
from unified_mxnet import _np_on, _np_restore, _to_0d

Array = Any
Ints = tuple[int, ...]
_nd = mx.nd


def _spatial(x: Array, what: str, **tuples: Ints) -> int:
    nsp = x.ndim - 2
    if nsp not in (1, 2):
        raise ValueError(
            f"{what}: expected an input (N, C, *spatial) with 1 or 2 spatial "
            f"dimensions, got shape {x.shape}"
        )
    for name, t in tuples.items():
        if len(t) != nsp:
            raise ValueError(
                f"{what}: {name}={tuple(t)} needs one entry per spatial dimension"
            )
    return nsp


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
    prev = _np_on()
    try:
        stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
        _spatial(x, "conv", stride=stride, padding=padding, dilation=dilation)
        args = (x, weight) if bias is None else (x, weight, bias)
        return _nd.Convolution(
            *args,
            kernel=weight.shape[2:],
            stride=stride,
            pad=padding,
            dilate=dilation,
            num_filter=weight.shape[0],
            num_group=groups,
            no_bias=bias is None,
        )
    finally:
        _np_restore(prev)


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
    prev = _np_on()
    try:
        stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
        output_padding = tuple(output_padding)
        _spatial(
            x,
            "conv_transpose",
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
        )
        kernel = weight.shape[2:]
        for a in zip(x.shape[2:], kernel, stride, padding, output_padding, dilation):
            conv_transpose_output_size(*a)  # PyTorch's checks
        args = (x, weight) if bias is None else (x, weight, bias)
        return _nd.Deconvolution(
            *args,
            kernel=kernel,
            stride=stride,
            pad=padding,
            adj=output_padding,
            dilate=dilation,
            num_filter=weight.shape[1] * groups,
            num_group=groups,
            no_bias=bias is None,
        )
    finally:
        _np_restore(prev)


@functools.lru_cache(maxsize=256)
def _divisor(
    insz: Ints,
    kernel: Ints,
    stride: Ints,
    padding: Ints,
    out: Ints,
    count_include_pad: bool,
) -> numpy.ndarray:
    """The ``(*out)`` divisors of average pooling, float64 and read-only (cached)."""
    div = pool_divisors(insz, kernel, stride, padding, out, count_include_pad)
    div = div.astype(numpy.float64)
    div.setflags(write=False)
    return div


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
    if mode not in ("max", "avg"):
        raise ValueError(f"pool: mode must be 'max' or 'avg', got {mode!r}")
    prev = _np_on()
    try:
        kernel, stride, padding = tuple(kernel), tuple(stride), tuple(padding)
        _spatial(x, "pool", kernel=kernel, stride=stride, padding=padding)
        out = tuple(
            pool_output_size(*a, ceil_mode)
            for a in zip(x.shape[2:], kernel, stride, padding, strict=True)
        )
        y = _nd.Pooling(
            x,
            kernel=kernel,
            stride=stride,
            pad=padding,
            pool_type="max" if mode == "max" else "sum",
            pooling_convention="full" if ceil_mode else "valid",
        )
        if y.shape[2:] != out:
            # "full" keeps a last window that starts in the right padding.
            y = _nd.slice(
                y, begin=(None, None) + (0,) * len(out), end=(None, None) + out
            )
        if mode == "avg":
            div = _divisor(x.shape[2:], kernel, stride, padding, out, count_include_pad)
            y = _nd.broadcast_div(y, _nd.array(div, ctx=x.context, dtype=x.dtype))
        return y
    finally:
        _np_restore(prev)


_REDUCTIONS = ("mean", "sum", "none")


@hookimpl
def softmax_cross_entropy(logits: Array, labels: Array, reduction: str) -> Array:
    """``log_softmax`` (the exact kernel, as the ``log_softmax`` hook), ``pick`` of
    the labels' entries, the reduction and ``negative``: four operators where the
    composition issues about eight (and no host-computed index array)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    prev = _np_on()
    try:
        logp = _nd.log_softmax(logits, axis=-1, temperature=1.0)
        loss = _nd.negative(_nd.pick(logp, labels, axis=-1))
        if reduction == "mean":
            return _to_0d(_nd.mean(loss))  # 0-d results are Scalars (SPEC 10)
        if reduction == "sum":
            return _to_0d(_nd.sum(loss))
        return loss
    finally:
        _np_restore(prev)
