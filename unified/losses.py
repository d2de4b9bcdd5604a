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

import numpy as np

from unified import ops
from unified.backend import current_backend
from unified.checks import check_labels, defer_argument_check, defer_label_check
from unified.data import dtype_name, host_to_native

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


def _native(x: Any, like: Any = None) -> Any:
    """Convert host data (labels, targets) to a native array; floats take the dtype
    of ``like`` (the prediction), float32 when it is host data too."""
    table = current_backend()
    if table.is_array(x):
        return x
    float_dtype = "float32"
    if like is not None and table.is_array(like):
        float_dtype = dtype_name(getattr(like, "dtype", None)) or float_dtype
    return host_to_native(table, x, "loss target", float_dtype)


def softmax_cross_entropy(
    logits: Any, labels: Any, reduction: str = "mean", axis: int = -1
) -> Any:
    """Cross-entropy of ``softmax(logits)`` against labels.

    ``labels`` are integer class indices of shape ``(n,)`` or class probabilities
    with the shape of ``logits``; per-sample losses are summed over ``axis``.
    Class indices outside ``[0, classes)`` raise :class:`IndexError` on every
    backend.
    """
    logits = _native(logits)
    labels = _native(labels, logits)
    if len(labels.shape) == len(logits.shape) - 1:
        depth = int(logits.shape[axis])
        concrete = check_labels(labels, depth)
        fused = _fused(logits, labels, axis, reduction, concrete, depth)
        if fused is not None:
            return fused
    logp = ops.log_softmax(logits, axis)
    if len(labels.shape) == len(logits.shape) - 1:
        if concrete and axis % len(logits.shape) == len(logits.shape) - 1:
            picked = _pick_last(logp, labels, depth)
            if picked is not None:
                return _reduce(ops.negative(picked), reduction)
        onehot = ops.one_hot(labels, depth, _float_name(logits))
        ndim, ax = len(logits.shape), axis % len(logits.shape)
        if ax != ndim - 1:  # one_hot appends the class axis: move it to ``axis``
            perm = [*range(ndim - 1)]
            perm.insert(ax, ndim - 1)
            onehot = ops.transpose(onehot, tuple(perm))
        if not concrete:
            defer_label_check(labels, onehot, depth)
        labels = onehot
    return _reduce(ops.negative(ops.sum(ops.multiply(logp, labels), axis)), reduction)


def _fused(
    logits: Any, labels: Any, axis: int, reduction: str, concrete: bool, depth: int
) -> Any:
    """The backend's fused ``softmax_cross_entropy`` hook (capability of the same
    name) for integer labels with the class axis last, once the labels are checked
    (concretely, or on the host as an argument of a compiled step); else ``None``.
    Equal to the composition below within float32 rounding (the conformance suite
    checks both against a float64 oracle)."""
    table = current_backend()
    ndim = len(logits.shape)
    if (
        "softmax_cross_entropy" not in table.capabilities
        or reduction not in _REDUCTIONS
        or axis % ndim != ndim - 1
        or (dtype_name(getattr(labels, "dtype", None)) or "f")[0] not in "iu"
    ):
        return None
    if not (concrete or defer_argument_check(labels, depth)):
        return None  # traced labels computed inside the step: the one-hot check
    return table.softmax_cross_entropy(logits, labels, reduction)


def _pick_last(logp: Any, labels: Any, depth: int) -> Any:
    """``logp[..., labels]`` (labels of ``logp``'s shape without the last axis), as
    one ``take`` from the flattened ``logp`` at host-computed flat indices; ``None``
    (use the one-hot product) for labels that are not integers or sizes past int32.

    The same value and gradient as ``sum(logp * one_hot(labels), -1)`` (the sum
    has one nonzero term), without the ``labels.size x depth`` one-hot matrix and
    its product, which dominate the loss for large vocabularies.
    """
    table = current_backend()
    host = np.asarray(table.to_numpy(labels))
    if host.dtype.kind not in "iu" or host.size * depth >= 2**31:
        return None
    flat = np.arange(host.size, dtype=np.int64) * depth + host.reshape(-1)
    index = table.asarray(flat.astype(np.int32), "int32")
    picked = ops.take(ops.reshape(logp, (-1,)), index, 0)
    return ops.reshape(picked, tuple(int(d) for d in labels.shape))


def _float_name(x: Any) -> str:
    return dtype_name(getattr(x, "dtype", None)) or "float32"


def mse_loss(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error: ``(pred - target) ** 2`` averaged over every element."""
    pred = _native(pred)
    return _reduce(ops.square(ops.subtract(pred, _native(target, pred))), reduction)


def l1_loss(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean absolute error: ``|pred - target|`` averaged over every element."""
    pred = _native(pred)
    return _reduce(ops.abs(ops.subtract(pred, _native(target, pred))), reduction)


def binary_cross_entropy_with_logits(
    logits: Any, target: Any, reduction: str = "mean"
) -> Any:
    """``-[t log s(x) + (1-t) log(1-s(x))]`` computed stably from logits ``x``.

    Uses ``max(x, 0) - x*t + log1p(exp(-|x|))``.
    """
    logits = _native(logits)
    t = _native(target, logits)
    loss = ops.add(
        ops.subtract(ops.relu(logits), ops.multiply(logits, t)),
        ops.log1p(ops.exp(ops.negative(ops.abs(logits)))),
    )
    return _reduce(loss, reduction)
