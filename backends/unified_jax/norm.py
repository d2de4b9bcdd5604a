"""The optional ``batch_norm`` and ``batch_norm_inference`` hooks of the JAX backend.

``batch_norm`` (training mode) computes the statistics and ``y`` as the layer's
composition does (``(x - mean) / sqrt(var + eps) * gamma + beta``), but carries its
own gradient (:func:`jax.custom_vjp`): the textbook backward
``dx = gamma / std * (dy - mean(dy) - xhat * mean(dy * xhat))`` needs two
reductions over ``x``, where JAX's derivative of the composition needs twice as
many and more full-size passes (measured: a ResNet step's BatchNorm work about a
third cheaper). The statistics get no gradient (the layer only blends them into
its running statistics).


The statistics are folded into a per-channel ``scale = gamma / sqrt(var + eps)`` and
``shift = beta - mean * scale`` on the ``(C,)`` vectors, then ``x * scale + shift``;
the whole function is one ``jax.jit`` program (``axis`` and ``eps`` static), so XLA
fuses the multiply-add into one pass over ``x`` even in eager code (inside a
compiled step it is inlined into the caller's program).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from unified.hookspecs import Array
from unified.plugins import hookimpl
from unified_jax.eager import eager_jit


@eager_jit(static_argnames=("axis", "eps"))
def _fold(
    x: Array,
    mean: Array,
    var: Array,
    gamma: Array | None,
    beta: Array | None,
    axis: int,
    eps: float,
) -> Array:
    shape = tuple(-1 if i == axis else 1 for i in range(x.ndim))
    scale = 1.0 / jnp.sqrt(var + jnp.asarray(eps, var.dtype))
    if gamma is not None:
        scale = scale * gamma
    shift = -(mean * scale)
    if beta is not None:
        shift = shift + beta
    return x * scale.reshape(shape) + shift.reshape(shape)


@hookimpl
def batch_norm_inference(
    x: Array,
    mean: Array,
    var: Array,
    gamma: Array | None,
    beta: Array | None,
    axis: int,
    eps: float,
) -> Array:
    return _fold(x, mean, var, gamma, beta, axis=int(axis), eps=float(eps))


def _channel_shape(x: Array, axis: int) -> tuple[int, ...]:
    return tuple(-1 if i == axis else 1 for i in range(x.ndim))


def _forward(
    x: Array, gamma: Array | None, beta: Array | None, axis: int, eps: float
) -> tuple[tuple[Array, Array, Array], tuple[Array, Array, Array | None]]:
    reduce = tuple(i for i in range(x.ndim) if i != axis)
    shape = _channel_shape(x, axis)
    mean = jnp.mean(x, reduce, keepdims=True)
    centered = x - mean
    var = jnp.mean(jnp.square(centered), reduce, keepdims=True)
    std = jnp.sqrt(var + eps)
    xhat = centered / std
    y = xhat
    if gamma is not None:
        y = y * jnp.reshape(gamma, shape)
    if beta is not None:
        y = y + jnp.reshape(beta, shape)
    return (y, jnp.reshape(mean, (-1,)), jnp.reshape(var, (-1,))), (xhat, std, gamma)


def _backward(
    axis: int,
    eps: float,
    residuals: tuple[Array, Array, Array | None],
    cotangents: tuple[Array, Array, Array],
) -> tuple[Array, Array | None, Array | None]:
    xhat, std, gamma = residuals
    dy = cotangents[0]  # the statistics' cotangents are not propagated
    reduce = tuple(i for i in range(dy.ndim) if i != axis)
    shape = _channel_shape(dy, axis)
    count = dy.size // dy.shape[axis]
    dbeta = jnp.sum(dy, reduce)
    dgamma = jnp.sum(dy * xhat, reduce)
    scale = 1.0 / std if gamma is None else jnp.reshape(gamma, shape) / std
    dx = scale * (
        dy
        - jnp.reshape(dbeta / count, shape)
        - xhat * jnp.reshape(dgamma / count, shape)
    )
    return dx, None if gamma is None else dgamma, dbeta


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _batch_norm(
    x: Array, gamma: Array | None, beta: Array | None, axis: int, eps: float
) -> tuple[Array, Array, Array]:
    return _forward(x, gamma, beta, axis, eps)[0]


def _batch_norm_fwd(
    x: Array, gamma: Array | None, beta: Array | None, axis: int, eps: float
) -> tuple[tuple[Array, Array, Array], tuple[Array, Array, Array | None]]:
    return _forward(x, gamma, beta, axis, eps)


_batch_norm.defvjp(_batch_norm_fwd, _backward)
_batch_norm_eager = eager_jit(_batch_norm, static_argnums=(3, 4))


@hookimpl
def batch_norm(
    x: Array, gamma: Array | None, beta: Array | None, axis: int, eps: float
) -> tuple[Array, Array, Array]:
    return _batch_norm_eager(x, gamma, beta, int(axis), float(eps))
