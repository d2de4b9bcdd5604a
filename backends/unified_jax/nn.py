"""Convolution and pooling of the JAX backend, on ``lax`` primitives.

* :func:`conv`: ``lax.conv_general_dilated`` with channels-first dimension numbers
  (``NCW``/``NCHW``), ``feature_group_count`` for groups and
  ``precision="highest"`` (full float32 on every device).
* :func:`conv_transpose`: the same primitive with the input dilated by the stride
  (``lhs_dilation``), padding ``d(k-1) - p`` on the left and ``d(k-1) - p +
  output_padding`` on the right (negative padding crops), and the kernel flipped
  spatially with its in/out axes swapped within each group.
* :func:`pool`: ``lax.reduce_window``; max with a ``-inf`` initial value (JAX
  recognizes it as ``reduce_window_max``, whose gradient picks the first maximum of
  a window), avg as a window sum divided by the divisors of
  :func:`unified.windows.pool_divisor` (a constant computed from the static
  shapes); ``ceil_mode`` adds the extra right padding of
  :func:`unified.windows.pool_right_padding`.

Everything depends only on static shapes, so the hooks run eagerly, under
``jax.jit`` and under ``jax.grad`` alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from unified.hookspecs import Array
from unified.plugins import hookimpl
from unified.windows import (
    conv_transpose_output_size,
    pool_divisors,
    pool_output_size,
    pool_right_padding,
)
from unified_jax.eager import eager_jit

Ints = tuple[int, ...]
_PRECISION = lax.Precision.HIGHEST
_SPATIAL = {1: "W", 2: "HW"}


def _numbers(ndim: int, what: str) -> tuple[str, str, str]:
    sp = _SPATIAL.get(ndim - 2)
    if sp is None:
        raise ValueError(
            f"{what}: expected an input (N, C, *spatial) with 1 or 2 spatial "
            f"dimensions, got {ndim} dimensions"
        )
    return ("NC" + sp, "OI" + sp, "NC" + sp)


def _add_bias(y: Array, bias: Array | None) -> Array:
    if bias is None:
        return y
    return y + jnp.reshape(bias, (-1,) + (1,) * (y.ndim - 2))


@eager_jit(static_argnums=(3, 4, 5, 6))
def _conv(
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: Ints,
    padding: Ints,
    dilation: Ints,
    groups: int,
) -> Array:
    y = lax.conv_general_dilated(
        x,
        weight,
        window_strides=stride,
        padding=[(p, p) for p in padding],
        rhs_dilation=dilation,
        dimension_numbers=_numbers(x.ndim, "conv"),
        feature_group_count=groups,
        precision=_PRECISION,
    )
    return _add_bias(y, bias)


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
    return _conv(
        x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), int(groups)
    )


@eager_jit(static_argnums=(3, 4, 5, 6, 7))
def _conv_transpose(
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: Ints,
    padding: Ints,
    output_padding: Ints,
    dilation: Ints,
    groups: int,
) -> Array:
    nsp = x.ndim - 2
    kernel = weight.shape[2:]
    for a in zip(x.shape[2:], kernel, stride, padding, output_padding, dilation):
        conv_transpose_output_size(*a)  # validates output_padding and the size
    cin, cout_g = weight.shape[:2]
    # (C_in, C_out/g, *k) -> (g, C_in/g, C_out/g, *k) -> (C_out, C_in/g, *k), flipped
    w = jnp.reshape(weight, (groups, cin // groups, cout_g) + kernel)
    w = jnp.swapaxes(w, 1, 2).reshape((groups * cout_g, cin // groups) + kernel)
    w = jnp.flip(w, axis=tuple(range(2, 2 + nsp)))
    edge = [d * (k - 1) - p for k, p, d in zip(kernel, padding, dilation, strict=True)]
    y = lax.conv_general_dilated(
        x,
        w,
        window_strides=(1,) * nsp,
        padding=[(e, e + op) for e, op in zip(edge, output_padding, strict=True)],
        lhs_dilation=stride,
        rhs_dilation=dilation,
        dimension_numbers=_numbers(x.ndim, "conv_transpose"),
        feature_group_count=groups,
        precision=_PRECISION,
    )
    return _add_bias(y, bias)


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
    return _conv_transpose(
        x,
        weight,
        bias,
        tuple(stride),
        tuple(padding),
        tuple(output_padding),
        tuple(dilation),
        int(groups),
    )


@eager_jit(static_argnums=(1, 2, 3, 4, 5, 6))
def _pool(
    x: Array,
    mode: str,
    kernel: Ints,
    stride: Ints,
    padding: Ints,
    ceil_mode: bool,
    count_include_pad: bool,
) -> Array:
    _numbers(x.ndim, "pool")
    insz = x.shape[2:]
    geometry = list(zip(insz, kernel, stride, padding, strict=True))
    out = [pool_output_size(*g, ceil_mode) for g in geometry]
    right = [pool_right_padding(*g, o) for g, o in zip(geometry, out, strict=True)]
    pads = ((0, 0), (0, 0)) + tuple(zip(padding, right, strict=True))
    window, strides = (1, 1) + kernel, (1, 1) + stride
    if mode == "max":
        y = lax.reduce_window(x, -jnp.inf, lax.max, window, strides, pads)
    elif mode == "avg":
        y = lax.reduce_window(x, 0.0, lax.add, window, strides, pads)
        div = pool_divisors(insz, kernel, stride, padding, out, count_include_pad)
        y = y / jnp.asarray(div, dtype=x.dtype)
    else:
        raise ValueError(f"pool: mode must be 'max' or 'avg', got {mode!r}")
    # The right padding may allow more windows than pool_output_size counts.
    return y[(slice(None), slice(None), *(slice(0, o) for o in out))]


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
    return _pool(
        x,
        mode,
        tuple(kernel),
        tuple(stride),
        tuple(padding),
        bool(ceil_mode),
        bool(count_include_pad),
    )


_REDUCTIONS = ("mean", "sum", "none")


def _cross_entropy(logits: Array, labels: Array, reduction: str) -> Array:
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    if reduction == "mean":
        picked = jnp.mean(picked)
    elif reduction == "sum":
        picked = jnp.sum(picked)
    return -picked


_cross_entropy_jit = eager_jit(_cross_entropy, static_argnames="reduction")


@hookimpl
def softmax_cross_entropy(logits: Array, labels: Array, reduction: str) -> Array:
    """``log_softmax``, ``take_along_axis`` of the labels, the reduction and the
    negation as one compiled function (one dispatch when called eagerly; inlined
    into a compiled step)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return _cross_entropy_jit(logits, labels, reduction=reduction)
