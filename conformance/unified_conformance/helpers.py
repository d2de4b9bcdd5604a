"""Small helpers shared by the conformance tests: conversion and clear assertions."""

from __future__ import annotations

from typing import Any

import numpy as np

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


def assert_close(
    got: Any, expected: Any, what: str, rtol: float = RTOL_F32, atol: float = ATOL_F32
) -> None:
    """Compare with a message naming the quantity, the values got and expected."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    np.testing.assert_allclose(
        got,
        expected,
        rtol=rtol,
        atol=atol,
        err_msg=f"{what}: got {got.ravel()[:6]}..., expected {expected.ravel()[:6]}...",
    )


def assert_bitwise(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Exact equality, dtype included."""
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    diff = np.flatnonzero(got.view(np.uint8) != expected.view(np.uint8))
    assert diff.size == 0, (
        f"{what}: not bitwise equal ({diff.size} differing bytes); got "
        f"{got.ravel()[:4]}, expected {expected.ravel()[:4]}"
    )
