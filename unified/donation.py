"""Which arrays a compiled step may give up to its results (buffer donation).

On a backend declaring the capability ``donate`` (JAX), the compiled training step
(:class:`~unified.Trainer`) lets the compiled function write the new parameters
and optimizer state into the memory of the old ones: no fresh output buffers, no
copy. A donated array is invalid afterwards, so only arrays nobody else can see
are donated: the parameter (or optimizer state) is their only owner. An array
someone still holds (``w = p.data()`` kept by user code, a callback, a second
parameter bound to the same array) is copied first, so that reference keeps
its old values, as without donation.

Ownership is read from CPython's reference counts, compared with the count of
an array held exactly as the step holds its own (one owner, one list entry);
that baseline is measured at import, so it follows the interpreter's counting.

Example::

    >>> owner = {"w": object()}
    >>> arrays = [owner["w"]]  # one owner and the call's list: not shared
    >>> shared_entries(arrays)
    []
    >>> kept = owner["w"]
    >>> shared_entries(arrays)
    [0]
"""

from __future__ import annotations

import sys
from typing import Any


def _counts(arrays: list[Any]) -> list[int]:
    return [sys.getrefcount(a) for a in arrays]


class _Owner:
    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


def _baseline() -> int:
    """The count of an object held by one owner's attribute and one list entry."""
    owner = _Owner(object())
    return _counts([owner.data])[0]


_SOLE = _baseline()


def shared_entries(arrays: list[Any]) -> list[int]:
    """Indices of ``arrays`` whose object is referenced beyond its one owner and
    the entry of ``arrays`` (a list built for the call, one entry per array)."""
    return [i for i, n in enumerate(_counts(arrays)) if n > _SOLE]
