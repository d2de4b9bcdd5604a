"""Independent float64 NumPy oracles: plain formulas, never unified's own code.

Everything here is written from the published definitions (SPEC.md, torch.optim's
documentation, the initializer formulas) so that a test comparing a backend with
these functions proves something about the backend.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np

F64 = np.float64


def stream(seed: int, epoch: int, name: str) -> np.random.Generator:
    """The per-parameter generator of SPEC 3."""
    return np.random.Generator(
        np.random.Philox(
            np.random.SeedSequence([seed, epoch, zlib.crc32(name.encode())])
        )
    )


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


# -- forward and backward of an MLP ----------------------------------------------------
def mlp_forward(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray, str | None]]):
    """Return the output and the cache of ``act(x @ W.T + b)`` layers, in float64."""
    h = x.astype(F64)
    cache = []
    for w, b, act in layers:
        z = h @ w.astype(F64).T + b.astype(F64)
        cache.append((h, z, act))
        h = _act(z, act)
    return h, cache


def _act(z: np.ndarray, act: str | None) -> np.ndarray:
    if act == "relu":
        return np.maximum(z, 0)
    if act == "tanh":
        return np.tanh(z)
    if act == "sigmoid":
        return 1 / (1 + np.exp(-z))
    return z


def _act_grad(z: np.ndarray, act: str | None) -> np.ndarray:
    if act == "relu":
        return (z > 0).astype(F64)
    if act == "tanh":
        return 1 - np.tanh(z) ** 2
    if act == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)
    return np.ones_like(z)


def mlp_backward(layers, cache, grad_out: np.ndarray):
    """Hand-derived backprop: return ``[(dW, db), ...]`` for each layer."""
    grads = []
    g = grad_out
    for (w, _, _), (h, z, act) in zip(reversed(layers), reversed(cache)):
        gz = g * _act_grad(z, act)
        grads.append((gz.T @ h, gz.sum(axis=0)))
        g = gz @ w.astype(F64)
    return grads[::-1]


def softmax_xent(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy over integer labels and its gradient wrt logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -np.log(p[np.arange(n), labels]).mean()
    g = p.copy()
    g[np.arange(n), labels] -= 1
    return float(loss), g / n


# -- optimizers (torch.optim's documented algorithms) ----------------------------------
Grad = Callable[[np.ndarray], np.ndarray]


# Every optimizer takes the per-parameter multipliers of SPEC 2/6: the effective
# learning rate is ``lr * lr_mult`` and the decay coefficient ``wd * wd_mult``.


def sgd(
    w,
    g,
    state,
    lr,
    momentum=0.0,
    dampening=0.0,
    nesterov=False,
    wd=0.0,
    lr_mult=1.0,
    wd_mult=1.0,
):
    lr, wd = lr * lr_mult, wd * wd_mult
    g = g + wd * w
    if momentum:
        if "buf" not in state:
            state["buf"] = g.copy()
        else:
            state["buf"] = momentum * state["buf"] + (1 - dampening) * g
        g = g + momentum * state["buf"] if nesterov else state["buf"]
    return w - lr * g


def adam(
    w,
    g,
    state,
    lr,
    betas=(0.9, 0.999),
    eps=1e-8,
    wd=0.0,
    amsgrad=False,
    decoupled=False,
    lr_mult=1.0,
    wd_mult=1.0,
):
    lr, wd = lr * lr_mult, wd * wd_mult
    b1, b2 = betas
    t = state["t"] = state.get("t", 0) + 1
    if decoupled:
        w = w * (1 - lr * wd)
    else:
        g = g + wd * w
    m = state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    v = state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    if amsgrad:
        v = state["vmax"] = np.maximum(state.get("vmax", 0.0), v)
    m_hat = m / (1 - b1**t)
    denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
    return w - lr * m_hat / denom


def rmsprop(
    w,
    g,
    state,
    lr,
    alpha=0.99,
    eps=1e-8,
    momentum=0.0,
    centered=False,
    wd=0.0,
    lr_mult=1.0,
    wd_mult=1.0,
):
    lr, wd = lr * lr_mult, wd * wd_mult
    g = g + wd * w
    sq = state["sq"] = alpha * state.get("sq", 0.0) + (1 - alpha) * g * g
    if centered:
        ga = state["ga"] = alpha * state.get("ga", 0.0) + (1 - alpha) * g
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum:
        buf = state["buf"] = momentum * state.get("buf", 0.0) + g / avg
        return w - lr * buf
    return w - lr * g / avg
