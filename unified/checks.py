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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unified import ops
from unified.backend import current_backend


class Collector(list[tuple[Any, str]]):
    """The checks found while a compiled step is traced.

    Items are ``(traced count of bad entries, message)``: outputs of the step that
    the caller reads before writing back. A check of data that is itself one of
    the step's batch arguments (labels passed straight in) is recorded in
    :attr:`host` instead, as ``(argument index, upper bound, message maker)``, and
    the caller checks that argument on the host: no output, no wait for the step.

    An ``eager`` collector belongs to a step that runs eagerly (the
    :class:`~unified.Trainer`'s uncompiled step): its data can be read, but a check
    of a batch argument is still deferred to the caller, who checks the NumPy batch
    the user passed (no device-to-host copy) after the forward and before anything
    is written.
    """

    def __init__(self, batch: Sequence[Any] = (), eager: bool = False) -> None:
        super().__init__()
        self.batch = batch
        self.eager = eager
        self.host: list[tuple[int, int, Callable[[Any], str]]] = []
        self._previous: Collector | None = None

    def argument(self, x: Any) -> int | None:
        """The index of ``x`` among the batch arguments, or ``None``."""
        for i, b in enumerate(self.batch):
            if b is x:
                return i
        return None

    def defer(self, x: Any, high: int, message: Callable[[Any], str]) -> bool:
        """If ``x`` is a batch argument, register its host check against ``[0,
        high)`` (run by the caller) and return ``True``; else register nothing."""
        index = self.argument(x)
        if index is None:
            return False
        self.host.append((index, high, message))
        return True

    # A plain context manager (no generator): the eager step enters one per step.
    def __enter__(self) -> Collector:
        global _collecting
        self._previous, _collecting = _collecting, self
        return self

    def __exit__(self, *exc: object) -> None:
        global _collecting
        _collecting = self._previous


_collecting: Collector | None = None


def collecting(batch: Sequence[Any] = (), eager: bool = False) -> Collector:
    """Collect the checks of a step whose batch arguments are ``batch`` (traced, or
    run eagerly with ``eager=True``: see :class:`Collector`); use it in ``with``."""
    return Collector(tuple(batch), eager)


def check_host(values: Any, high: int, message: Callable[[Any], str]) -> None:
    """Raise :class:`IndexError` if an entry of ``values`` is outside ``[0, high)``."""
    host = np.asarray(values)
    if not host.size:
        return
    kind = host.dtype.kind
    if kind in "iu" and host.size <= 32:  # a small batch: Python is faster here
        flat = host.ravel().tolist()
        failed = min(flat) < 0 or max(flat) >= high
    elif kind == "i" and high <= 2 ** (8 * host.dtype.itemsize - 1):
        # One pass: a negative read as unsigned is at least 2**(bits-1) >= high.
        failed = bool(host.view(f"u{host.dtype.itemsize}").max() >= high)
    else:
        failed = bool(host.min() < 0 or host.max() >= high)
    if failed:
        bad = host[(host < 0) | (host >= high)].ravel()[0]
        raise IndexError(message(bad.item()))


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
        caller then hands the one-hot matrix to :func:`defer_label_check`. ``True``
        when they were checked, or are a batch argument of an eager step being
        collected (whose caller checks them on the host before writing anything).
    """
    eager = _collecting is not None and _collecting.eager
    if eager and defer_argument_check(labels, depth):
        return True
    try:
        host = np.asarray(current_backend().to_numpy(labels))
    except Exception:  # a tracer inside a compiled step
        return False
    check_host(host, depth, lambda bad: label_message(bad, depth))
    return True


def defer_label_check(labels: Any, onehot: Any, depth: int) -> None:
    """Check traced labels: on the host when they are a batch argument, else by
    counting the all-zero rows of ``onehot`` (an output of the step)."""
    if _collecting is None or defer_argument_check(labels, depth):
        return
    count = ops.subtract(float(np.prod(labels.shape)), ops.sum(onehot))
    _collecting.append((count, label_message("(in a compiled step)", depth)))


def defer_argument_check(labels: Any, depth: int) -> bool:
    """If traced ``labels`` are a batch argument of the step being collected,
    register their host check (run by the caller after the step) and return
    ``True``; else return ``False`` and register nothing."""
    return _collecting is not None and _collecting.defer(
        labels, depth, lambda bad: label_message(bad, depth)
    )


def index_message(bad: Any, size: int, owner: str) -> str:
    """The error message for out-of-range lookup indices (``Embedding``)."""
    return (
        f"{owner}: index {bad} is outside [0, {size}): the table has {size} rows "
        "(input_dim). Indices must be integers from 0 to input_dim - 1; check the "
        "vocabulary size or the encoding of the input."
    )


def check_indices(indices: Any, size: int, owner: str) -> None:
    """Raise :class:`IndexError` if an index is outside ``[0, size)``.

    Concrete indices are checked at once (a batch argument of an eager step being
    collected: by the caller, on the host, see :class:`Collector`); traced ones
    (inside a compiled step) add a traced count of bad entries, as
    :func:`defer_label_check` does, and the :class:`~unified.Trainer` raises after
    the step. Traced indices outside a collecting step are not checked (they
    cannot be read).
    """

    def message(bad: Any) -> str:
        return index_message(bad, size, owner)

    collector = _collecting
    if (
        collector is not None
        and collector.eager
        and collector.defer(indices, size, message)
    ):
        return
    try:
        host = np.asarray(current_backend().to_numpy(indices))
    except Exception:  # a tracer inside a compiled step
        if collector is not None and not collector.defer(indices, size, message):
            low = ops.sum(ops.astype(ops.less(indices, 0), "float32"), None, False)
            high = ops.sum(
                ops.astype(ops.greater(indices, size - 1), "float32"), None, False
            )
            collector.append(
                (ops.add(low, high), index_message("(in a compiled step)", size, owner))
            )
        return
    check_host(host, size, message)
