"""The optional ``softmax_cross_entropy`` hook of the NumPy backend: one tape node.

The composition in :mod:`unified.losses` records ``log_softmax``, a ``take`` at
host-computed flat indices, two reshapes, ``negative`` and ``mean`` (six nodes, each
with its own backward closure and temporaries). This computes the same
log-probabilities (``z - log(sum(exp(z)))`` with ``z = x - max(x)``), picks the
labels' entries with one fancy index, and records one node whose backward is
``(exp(logp) - one_hot(labels)) * g`` per sample (``g`` divided by the number of
samples for ``"mean"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unified import hookimpl
from unified_numpy.tape import Node, record
from unified_numpy.trace import asarray

Array = Any


def _log_softmax_last(x: np.ndarray) -> np.ndarray:
    # The ufuncs' reduce methods directly: np.max/np.sum add a Python layer each.
    z = x - np.maximum.reduce(x, axis=-1, keepdims=True)
    return z - np.log(np.add.reduce(np.exp(z), axis=-1, keepdims=True))


@hookimpl
def softmax_cross_entropy(logits: Array, labels: Array, reduction: str) -> Array:
    """Fused softmax cross-entropy (see the hookspec); one tape node."""
    x = logits.value if type(logits) is Node else asarray(logits)
    classes = x.shape[-1]
    flat_labels = asarray(labels).reshape(-1).astype(np.intp, copy=False)
    logp = _log_softmax_last(x).reshape(-1, classes)
    rows = np.arange(flat_labels.size)
    per_sample = -logp[rows, flat_labels]
    count = per_sample.size
    if reduction == "mean":
        out = np.add.reduce(per_sample) / x.dtype.type(max(count, 1))
    elif reduction == "sum":
        out = np.add.reduce(per_sample)
    elif reduction == "none":
        out = per_sample.reshape(np.shape(labels))
    else:
        raise ValueError(
            f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
        )
    out = asarray(out, dtype=x.dtype)
    if type(logits) is not Node:
        return out

    def grad(g: Any) -> Any:
        scale = asarray(g, dtype=x.dtype)
        if reduction == "mean":
            scale = scale * x.dtype.type(1.0 / max(count, 1))
        d = np.exp(logp)
        d[rows, flat_labels] -= 1
        if reduction == "none":
            d *= scale.reshape(-1, 1)
        else:
            d *= scale
        return d.reshape(x.shape)

    return record(out, (logits,), (grad,))
