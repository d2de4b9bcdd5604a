"""Activation functions, written once as compositions of :mod:`unified.ops`.

Each function works on every backend and inside ``value_and_grad`` (the gradient is
that of the composition). Defaults follow SPEC 13: ``leaky_relu`` alpha 0.01,
``elu`` alpha 1.0, ``gelu`` the erf form, ``softmax``/``log_softmax`` over the last
axis.

Gradients at the kinks (a single point each): ``relu``, ``leaky_relu`` and ``elu``
take the left side at 0 (0, ``alpha``, ``alpha``), as PyTorch does; ``relu6`` and
``hard_tanh`` pass no gradient at either bound (PyTorch's ``hardtanh`` rule), while
:func:`clip` passes it on the closed interval (``torch.clamp``'s rule).

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> from unified import functional as F
    >>> U.to_numpy(F.leaky_relu(np.array([-1.0, 2.0], "float32"), 0.1)).tolist()
    [-0.10000000149011612, 2.0]
"""

from __future__ import annotations

import math
from typing import Any

from unified import ops

__all__ = [
    "clip",
    "elu",
    "gelu",
    "hard_tanh",
    "leaky_relu",
    "log_softmax",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "softrelu",
    "swish",
    "tanh",
]

SELU_ALPHA = 1.6732632423543772848170429916717
"""``alpha`` of SELU (Klambauer et al., 2017)."""
SELU_SCALE = 1.0507009873554804934193349852946
"""``scale`` (lambda) of SELU."""

_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def relu(x: Any) -> Any:
    """``max(x, 0)``; gradient 0 at 0 (the ``relu`` hook)."""
    return ops.relu(x)


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` (the ``sigmoid`` hook)."""
    return ops.sigmoid(x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent (the ``tanh`` hook)."""
    return ops.tanh(x)


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x), axis)``, stable (the ``softmax`` hook)."""
    return ops.softmax(x, axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - log(sum(exp(x), axis))``, stable (the ``log_softmax`` hook)."""
    return ops.log_softmax(x, axis)


def leaky_relu(x: Any, alpha: float = 0.01) -> Any:
    """``x if x > 0 else alpha * x``; gradient ``alpha`` at 0 (as PyTorch)."""
    return ops.where(ops.greater(x, 0.0), x, ops.multiply(x, alpha))


def _expm1_nonpositive(x: Any) -> Any:
    """``exp(x) - 1`` for ``x <= 0``, accurate near 0: ``2t / (1 - t)``, ``t =
    tanh(x / 2)`` (no cancellation; ``1 - t`` is in ``[1, 2]``)."""
    t = ops.tanh(ops.multiply(x, 0.5))
    return ops.divide(ops.multiply(t, 2.0), ops.subtract(1.0, t))


def elu(x: Any, alpha: float = 1.0) -> Any:
    """``x if x > 0 else alpha * (exp(x) - 1)``; gradient ``alpha`` at 0.

    The exponential only ever sees ``min(x, 0)`` (selected with ``where``, so the
    gradient of large positive inputs never meets an overflow).
    """
    positive = ops.greater(x, 0.0)
    negative = ops.where(positive, 0.0, x)
    return ops.where(positive, x, ops.multiply(_expm1_nonpositive(negative), alpha))


def selu(x: Any) -> Any:
    """``scale * elu(x, alpha)`` with SELU's constants :data:`SELU_SCALE` and
    :data:`SELU_ALPHA`."""
    return ops.multiply(elu(x, SELU_ALPHA), SELU_SCALE)


def gelu(x: Any, approximate: str = "none") -> Any:
    """Gaussian error linear unit.

    ``approximate="none"`` (default): ``0.5 * x * (1 + erf(x / sqrt(2)))``;
    ``approximate="tanh"``: ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 *
    x**3)))``, PyTorch's and Gluon's ``gelu_tanh`` approximation.
    """
    if approximate == "none":
        inner = ops.erf(ops.multiply(x, _SQRT_HALF))
    elif approximate == "tanh":
        cube = ops.multiply(ops.multiply(x, x), x)
        poly = ops.add(x, ops.multiply(cube, 0.044715))
        inner = ops.tanh(ops.multiply(poly, _SQRT_2_OVER_PI))
    else:
        raise ValueError(
            f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}"
        )
    return ops.multiply(ops.multiply(x, 0.5), ops.add(inner, 1.0))


def softplus(x: Any) -> Any:
    """``log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))`` (no
    overflow). ``maximum`` (not ``relu``) splits its gradient at 0, so the
    gradient there is the exact ``sigmoid(0) = 0.5``. Gluon calls it softrelu."""
    return ops.add(ops.maximum(x, 0.0), ops.log1p(ops.exp(ops.negative(ops.abs(x)))))


softrelu = softplus


def silu(x: Any) -> Any:
    """``x * sigmoid(x)`` (also called swish)."""
    return ops.multiply(x, ops.sigmoid(x))


swish = silu


def clip(x: Any, lo: float | None, hi: float | None) -> Any:
    """``min(max(x, lo), hi)``; gradient 1 on the closed interval (the ``clip``
    hook)."""
    return ops.clip(x, lo, hi)


def hard_tanh(x: Any, lo: float = -1.0, hi: float = 1.0) -> Any:
    """``lo if x <= lo, hi if x >= hi, else x``; gradient 1 only strictly inside
    (PyTorch's ``hardtanh`` rule)."""
    inner = ops.where(ops.less(x, hi), x, hi)
    return ops.where(ops.greater(x, lo), inner, lo)


def relu6(x: Any) -> Any:
    """``min(max(x, 0), 6)``: ``hard_tanh(x, 0, 6)``; gradient 0 at 0 and at 6."""
    return hard_tanh(x, 0.0, 6.0)
