"""The optional ``batch_norm`` and ``batch_norm_inference`` hooks of the NumPy
backend: one fused tape node each.

``batch_norm_inference`` folds the statistics into per-channel ``scale`` and
``shift`` vectors and computes ``x * scale + shift`` into one fresh array; its
backward is ``dx = g * scale``, ``dγ = Σ g (x - mean) / sqrt(var + eps)``,
``dβ = Σ g``. The rest of this docstring is about ``batch_norm``.

Training-mode batch normalization computed in a few whole-array NumPy passes, with a
hand-derived backward recorded as *one* node on the tape (the composition in
``unified.layers.norm`` records about a dozen, each with its own broadcasting
gradient and temporaries). With ``x̂ = (x - mean) / sqrt(var + eps)``, ``n`` values
per channel and ``g`` the gradient of ``y``:

* ``dβ = Σ g``, ``dγ = Σ g x̂`` (sums over every axis but the channel axis);
* ``dx = γ / sqrt(var + eps) * (g - dβ / n - x̂ dγ / n)``.

Channel sums of a C-contiguous ``(N, C, ...)`` array reduce the trailing axes first
(contiguous rows), then the batch axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unified import hookimpl
from unified_numpy.tape import Node, record
from unified_numpy.trace import asarray

Array = Any


def _value(x: Any) -> Any:
    return x.value if type(x) is Node else x


def _channel_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` summed over every axis but ``axis``, shape ``(C,)``."""
    if axis == 1 and a.ndim > 2 and a.flags.c_contiguous:
        return a.reshape(a.shape[0], a.shape[1], -1).sum(axis=2).sum(axis=0)
    return a.sum(axis=tuple(i for i in range(a.ndim) if i != axis))


@hookimpl
def batch_norm(
    x: Array, gamma: Array | None, beta: Array | None, axis: int, eps: float
) -> tuple[Array, Array, Array]:
    xv, gv, bv = _value(x), _value(gamma), _value(beta)
    channels = xv.shape[axis]
    n = xv.size // max(channels, 1)
    shape = tuple(channels if i == axis else 1 for i in range(xv.ndim))
    dtype = xv.dtype
    mean = (_channel_sum(xv, axis) / n).astype(dtype, copy=False)
    xhat = xv - mean.reshape(shape)
    var = (_channel_sum(np.square(xhat), axis) / n).astype(dtype, copy=False)
    inv = (1 / np.sqrt(var + asarray(eps, dtype))).astype(dtype, copy=False)
    xhat *= inv.reshape(shape)
    if gv is None:
        y = xhat.copy() if bv is None else xhat + bv.reshape(shape)
    else:
        y = xhat * gv.reshape(shape)
        if bv is not None:
            y += bv.reshape(shape)
    if type(x) is not Node and type(gamma) is not Node and type(beta) is not Node:
        return y, mean, var

    memo: list[Any] = [None, None, None]

    def sums(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if memo[0] is not g:
            memo[0], memo[1], memo[2] = (
                g,
                _channel_sum(g, axis),
                _channel_sum(g * xhat, axis),
            )
        return memo[1], memo[2]

    def grad_x(g: np.ndarray) -> np.ndarray:
        dbeta, dgamma = sums(g)
        scale = inv if gv is None else inv * gv
        dx = xhat * (dgamma / n).reshape(shape)
        np.subtract(g, dx, out=dx)
        dx -= (dbeta / n).reshape(shape)
        dx *= scale.reshape(shape)
        return dx

    def grad_gamma(g: np.ndarray) -> np.ndarray:
        return sums(g)[1]

    def grad_beta(g: np.ndarray) -> np.ndarray:
        return sums(g)[0]

    y = record(y, (x, gamma, beta), (grad_x, grad_gamma, grad_beta))
    return y, mean, var


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
    """``x * scale + shift`` with the statistics folded into ``(C,)`` vectors: one
    fresh full-size array, the shift added in place; one tape node."""
    xv, mv, vv = _value(x), _value(mean), _value(var)
    gv, bv = _value(gamma), _value(beta)
    shape = tuple(-1 if i == axis else 1 for i in range(xv.ndim))
    inv = 1.0 / np.sqrt(vv + asarray(eps, vv.dtype))
    scale = inv if gv is None else inv * gv
    shift = -(mv * scale)
    if bv is not None:
        shift = shift + bv
    y = xv * scale.reshape(shape)
    y += shift.reshape(shape)
    if type(x) is not Node and type(gamma) is not Node and type(beta) is not Node:
        return y

    def grad_x(g: np.ndarray) -> np.ndarray:
        return g * scale.reshape(shape)

    def grad_gamma(g: np.ndarray) -> np.ndarray:
        return _channel_sum(g * (xv - mv.reshape(shape)), axis) * inv

    def grad_beta(g: np.ndarray) -> np.ndarray:
        return _channel_sum(g, axis)

    return record(y, (x, gamma, beta), (grad_x, grad_gamma, grad_beta))
