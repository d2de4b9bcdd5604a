"""Small helpers shared by the conformance tests: conversion and clear assertions."""

from __future__ import annotations

from typing import Any

import numpy as np

import unified as U
from unified.plugins import BackendTable

RTOL_F32 = 1e-5
"""Float32 tolerance of SPEC: outputs, gradients and 10-step optimizer trajectories."""
ATOL_F32 = 1e-6


def native(table: BackendTable, x: Any, dtype: str = "float32") -> Any:
    """Host data as a native array of ``table``."""
    return table.asarray(np.array(x, dtype=dtype), dtype)


def host(table: BackendTable, x: Any) -> np.ndarray:
    """A native array of ``table`` as a float64 NumPy array."""
    return np.asarray(table.to_numpy(x), dtype=np.float64)


def _show(x: np.ndarray, count: int = 6) -> str:
    flat = x.ravel()
    more = ", ..." if flat.size > count else ""
    return (
        np.array2string(
            flat[:count], precision=9, separator=", ", max_line_width=10**6
        )[:-1]
        + more
        + "]"
    )


def assert_close(
    got: Any, expected: Any, what: str, rtol: float = RTOL_F32, atol: float = ATOL_F32
) -> None:
    """Compare within ``|got - expected| <= atol + rtol * |expected|`` (NaN equals
    NaN); on failure name the quantity ``what`` (the call), the values received and
    expected, and the worst element."""
    __tracebackhide__ = True  # the report points at the test's line
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, (
        f"{what}: shape {got.shape} received, {expected.shape} expected"
    )
    ok = np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if ok.all():
        return
    excess = np.where(ok, 0.0, np.abs(got - expected) - rtol * np.abs(expected))
    worst = np.unravel_index(
        int(np.nanargmax(np.nan_to_num(excess, nan=np.inf))), ok.shape
    )
    g, e = got[worst], expected[worst]
    raise AssertionError(
        f"{what}: {int((~ok).sum())} of {ok.size} elements differ beyond "
        f"rtol={rtol:g}, atol={atol:g}\n"
        f"  worst at index {tuple(int(i) for i in worst)}: received {g!r}, "
        f"expected {e!r} (abs diff {abs(g - e):.3g}, "
        f"rel diff {abs(g - e) / max(abs(e), 1e-300):.3g})\n"
        f"  received {_show(got)}\n"
        f"  expected {_show(expected)}"
    )


def assert_bitwise(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Exact equality, dtype included; on failure name the first differing element."""
    __tracebackhide__ = True
    assert got.dtype == expected.dtype, (
        f"{what}: dtype {got.dtype} received, {expected.dtype} expected"
    )
    assert got.shape == expected.shape, (
        f"{what}: shape {got.shape} received, {expected.shape} expected"
    )
    if got.size == 0:
        return
    a = np.ascontiguousarray(got).reshape(-1).view(np.uint8).reshape(got.size, -1)
    b = np.ascontiguousarray(expected).reshape(-1).view(np.uint8)
    differ = np.flatnonzero((a != b.reshape(a.shape)).any(axis=1))
    if differ.size == 0:
        return
    first = np.unravel_index(int(differ[0]), got.shape)
    raise AssertionError(
        f"{what}: not bitwise equal, {differ.size} of {got.size} elements differ\n"
        f"  first at index {tuple(int(i) for i in first)}: received {got[first]!r}, "
        f"expected {expected[first]!r}\n"
        f"  received {_show(got)}\n"
        f"  expected {_show(expected)}"
    )


class Logits(U.Net):
    """The logits as a parameter, so value_and_grad gives their gradient."""

    def __init__(self, value: np.ndarray) -> None:
        super().__init__()
        self.z = U.Parameter("z", value.shape)
        self.z.initialize()
        self.z.set_data(value)

    def forward(self) -> Any:
        return self.z.data()
