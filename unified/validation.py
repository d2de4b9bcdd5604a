"""Argument checks shared by the public constructors: clear errors at construction.

Each check names the owner and the argument, says what it got and what it expects.

Example::

    >>> from unified.validation import positive_int
    >>> positive_int(2.7, "units", "Dense")
    Traceback (most recent call last):
    ...
    TypeError: Dense: units must be a whole number > 0, got 2.7 (float)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any


def _got(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def positive_int(value: Any, what: str, owner: str, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` >= ``minimum``; else raise.

    Floats are refused even when whole (``2.0``): a size given as a float is
    usually a computation gone wrong. Strings are refused too.
    """
    bound = "> 0" if minimum == 1 else f">= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{owner}: {what} must be a whole number {bound}, got {_got(value)}"
        )
    if value < minimum:
        raise ValueError(f"{owner}: {what} must be {bound}, got {value}")
    return int(value)


def number(
    value: Any,
    what: str,
    owner: str,
    low: float | None = None,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a ``float`` in ``[low, high]`` (``[low, high)``); else
    raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {what} must be a number, got {_got(value)}")
    v = float(value)
    too_high = high is not None and (v >= high if high_open else v > high)
    if v != v or (low is not None and v < low) or too_high:
        hi = "" if high is None else f", {high}{')' if high_open else ']'}"
        span = f"in [{low}{hi}" if hi else f">= {low}"
        raise ValueError(f"{owner}: {what} must be {span}, got {value}")
    return v


def one_of(value: Any, choices: Sequence[Any], what: str, owner: str) -> Any:
    """Return ``value`` if it is one of ``choices``; else raise ``ValueError``."""
    if value not in choices:
        raise ValueError(
            f"{owner}: {what} must be one of {list(choices)}, got {value!r}"
        )
    return value


def int_tuple(
    value: Any, n: int, what: str, owner: str, minimum: int = 1
) -> tuple[int, ...]:
    """Return an int or ``n`` ints as a tuple of ``n`` ints >= ``minimum``."""
    items = [value] * n if not isinstance(value, (tuple, list)) else list(value)
    if len(items) != n:
        raise ValueError(f"{owner}: {what} must be an int or {n} ints, got {value!r}")
    return tuple(positive_int(v, what, owner, minimum) for v in items)
