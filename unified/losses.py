"""Losses written in ``unified.ops``, so they differentiate on every backend.

Each takes ``reduction``: ``"mean"`` (default), ``"sum"`` or ``"none"``.

Example::

    >>> import numpy as np
    >>> from unified import losses
    >>> pred = np.array([[0.0, 0.0]], "float32"); labels = np.array([1])
    >>> round(float(losses.softmax_cross_entropy(pred, labels)), 6)
    0.693147
"""

from __future__ import annotations

from typing import Any

from unified import ops
from unified.backend import current_backend

__all__ = [
    "binary_cross_entropy_with_logits",
    "l1_loss",
    "mse_loss",
    "softmax_cross_entropy",
]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_sample: Any, reduction: str) -> Any:
    if reduction == "mean":
        return ops.mean(per_sample)
    if reduction == "sum":
        return ops.sum(per_sample)
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _native(x: Any, dtype: str | None = None) -> Any:
    table = current_backend()
    if table.is_array(x):
        return x
    import numpy as np

    arr = np.asarray(x)
    return table.asarray(arr, dtype or arr.dtype.name)


def softmax_cross_entropy(
    logits: Any, labels: Any, reduction: str = "mean", axis: int = -1
) -> Any:
    """Cross-entropy of ``softmax(logits)`` against labels.

    ``labels`` are integer class indices of shape ``(n,)`` or class probabilities
    with the shape of ``logits``; per-sample losses are summed over ``axis``.
    """
    labels = _native(labels)
    logp = ops.log_softmax(logits, axis)
    if len(labels.shape) == len(logits.shape) - 1:
        labels = ops.one_hot(labels, logits.shape[axis], "float32")
    return _reduce(ops.negative(ops.sum(ops.multiply(logp, labels), axis)), reduction)


def mse_loss(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error: ``(pred - target) ** 2`` averaged over every element."""
    return _reduce(
        ops.square(ops.subtract(pred, _native(target, "float32"))), reduction
    )


def l1_loss(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean absolute error: ``|pred - target|`` averaged over every element."""
    return _reduce(ops.abs(ops.subtract(pred, _native(target, "float32"))), reduction)


def binary_cross_entropy_with_logits(
    logits: Any, target: Any, reduction: str = "mean"
) -> Any:
    """``-[t log s(x) + (1-t) log(1-s(x))]`` computed stably from logits ``x``.

    Uses ``max(x, 0) - x*t + log1p(exp(-|x|))``.
    """
    t = _native(target, "float32")
    loss = ops.add(
        ops.subtract(ops.relu(logits), ops.multiply(logits, t)),
        ops.log1p(ops.exp(ops.negative(ops.abs(logits)))),
    )
    return _reduce(loss, reduction)
