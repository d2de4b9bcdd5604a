"""Checks of data that may be traced: label and index ranges (SPEC 10, 13).

A check of concrete data runs at once. Inside a compiled step (JAX's ``jit``) the
data are tracers that cannot be read: the check then adds a traced count of bad
entries to the step's outputs, and the :class:`~unified.Trainer` raises the same
error after the call, before it writes anything back, so a failed step changes
nothing.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> U.losses.softmax_cross_entropy(np.zeros((1, 3), "float32"), [3])
    Traceback (most recent call last):
    ...
    IndexError: class label 3 is outside [0, 3): ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from unified import ops
from unified.backend import current_backend

_collecting: list[tuple[Any, str]] | None = None


@contextmanager
def collecting() -> Iterator[list[tuple[Any, str]]]:
    """Collect ``(traced count of bad entries, message)`` pairs while tracing."""
    global _collecting
    previous, _collecting = _collecting, []
    try:
        yield _collecting
    finally:
        _collecting = previous


def label_message(bad: Any, depth: int) -> str:
    """The error message for out-of-range class labels."""
    return (
        f"class label {bad} is outside [0, {depth}): the logits have {depth} "
        "classes. Labels must be integer class indices from 0 to classes - 1; check "
        "the label encoding or the size of the output layer."
    )


def check_labels(labels: Any, depth: int) -> bool:
    """Raise :class:`IndexError` if a class index is outside ``[0, depth)``.

    :returns: ``False`` when ``labels`` is a tracer and could not be read; the
        caller then hands the one-hot matrix to :func:`defer_label_check`.
    """
    try:
        host = np.asarray(current_backend().to_numpy(labels))
    except Exception:  # a tracer inside a compiled step
        return False
    if host.size and (host.min() < 0 or host.max() >= depth):
        bad = host[(host < 0) | (host >= depth)].ravel()[0]
        raise IndexError(label_message(bad.item(), depth))
    return True


def defer_label_check(labels: Any, onehot: Any, depth: int) -> None:
    """Count the bad labels of a traced batch: the all-zero rows of ``onehot``."""
    if _collecting is not None:
        count = ops.subtract(float(np.prod(labels.shape)), ops.sum(onehot))
        _collecting.append((count, label_message("(in a compiled step)", depth)))


def index_message(bad: Any, size: int, owner: str) -> str:
    """The error message for out-of-range lookup indices (``Embedding``)."""
    return (
        f"{owner}: index {bad} is outside [0, {size}): the table has {size} rows "
        "(input_dim). Indices must be integers from 0 to input_dim - 1; check the "
        "vocabulary size or the encoding of the input."
    )


def check_indices(indices: Any, size: int, owner: str) -> None:
    """Raise :class:`IndexError` if an index is outside ``[0, size)``.

    Concrete indices are checked at once; traced ones (inside a compiled step)
    add a traced count of bad entries, as :func:`defer_label_check` does, and the
    :class:`~unified.Trainer` raises after the step. Traced indices outside a
    collecting step are not checked (they cannot be read).
    """
    try:
        host = np.asarray(current_backend().to_numpy(indices))
    except Exception:  # a tracer inside a compiled step
        if _collecting is not None:
            low = ops.sum(ops.astype(ops.less(indices, 0), "float32"), None, False)
            high = ops.sum(
                ops.astype(ops.greater(indices, size - 1), "float32"), None, False
            )
            _collecting.append(
                (ops.add(low, high), index_message("(in a compiled step)", size, owner))
            )
        return
    if host.size and (host.min() < 0 or host.max() >= size):
        bad = host[(host < 0) | (host >= size)].ravel()[0]
        raise IndexError(index_message(bad.item(), size, owner))
