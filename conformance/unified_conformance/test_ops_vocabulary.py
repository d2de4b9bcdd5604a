"""Op conformance of the layers' general vocabulary: selection, comparison, shapes,
indexing (the hooks ``where``, ``greater``, ``less``, ``equal``, ``clip``, ``erf``,
``concatenate``, ``stack``, ``split``, ``pad``, ``take``, ``argmax``, ``slice_axis``).

Same method as ``test_ops.py``: float32 inputs through the ``backend`` fixture,
values against float64 NumPy formulas written here, gradients of ``sum(op(x) * w)``
from ``backend.value_and_grad`` against central finite differences of the formula.
The non-differentiable hooks (comparisons, ``argmax``) get exact checks, and the
pinned conventions (``clip``'s closed interval, ``take``'s scatter-add on repeated
indices, ``argmax``'s first index on ties) get their own tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from unified.hookspecs import MATH_HOOKS
from unified_conformance.test_ops import (
    ATOL,
    F32,
    GRAD_ATOL,
    GRAD_RTOL,
    RTOL,
    SEED,
    Case,
    _finite_differences,
    _inputs,
    normal,
    read,
)

VOCABULARY_HOOKS = {
    "where",
    "greater",
    "less",
    "equal",
    "clip",
    "erf",
    "concatenate",
    "stack",
    "split",
    "pad",
    "take",
    "argmax",
    "slice_axis",
}
NOT_DIFFERENTIABLE = {"greater", "less", "equal", "argmax"}

MASK = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]], dtype=np.float32)
INDICES = np.array([[2, 0], [2, 2]])  # repeated: the gradient must add up


def erf64(x: np.ndarray) -> np.ndarray:
    """erf in float64 from the standard library (no SciPy needed)."""
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def away_from(*shape: int, points: tuple[float, ...], scale: float = 1.5) -> Any:
    """Normal values with none within 0.05 of the given kinks."""

    def make(rng: np.random.Generator) -> np.ndarray:
        x = scale * rng.standard_normal(shape)
        for p in points:
            near = np.abs(x - p) < 0.05
            x[near] = p + np.where(x[near] >= p, 0.05, -0.05)
        return x

    return make


def _split_scaled(b: Any, x: Any, sections: Any, axis: int) -> Any:
    """split, each piece scaled by its position (2, 3, ...) and joined back."""
    pieces = b.split(x, sections, axis)
    return b.concatenate(
        [b.multiply(p, float(i + 2)) for i, p in enumerate(pieces)], axis
    )


def _split_scaled64(x: np.ndarray, sections: Any, axis: int) -> np.ndarray:
    pieces = np.split(x, sections, axis=axis)
    return np.concatenate([p * (i + 2) for i, p in enumerate(pieces)], axis=axis)


CASES: list[Case] = [
    # where: the condition comes from a third input through greater (not
    # differentiable: its finite difference is 0 too)
    Case(
        "where",
        lambda b, c, x, y: b.where(b.greater(c, 0.0), x, y),
        lambda c, x, y: np.where(c > 0, x, y) + 0 * c,
        (away_from(3, 1, points=(0.0,)), normal(3, 4), normal(4)),
    ),
    Case(
        "where[scalar-a]",
        lambda b, x: b.where(b.greater(x, 0.3), 2.0, x),
        lambda x: np.where(x > 0.3, 2.0, x),
        (away_from(3, 4, points=(0.3,)),),
    ),
    Case(
        "where[scalar-b]",
        lambda b, x: b.where(b.less(x, 0.0), x, -1.5),
        lambda x: np.where(x < 0, x, -1.5),
        (away_from(3, 4, points=(0.0,)),),
    ),
    Case(
        "where[float-mask]",
        lambda b, x, y: b.where(b.asarray(MASK, "float32"), x, y),
        lambda x, y: np.where(MASK != 0, x, y),
        (normal(3, 4), normal(3, 4)),
    ),
    Case(
        "clip",
        lambda b, x: b.clip(x, -0.5, 0.7),
        lambda x: np.minimum(np.maximum(x, -0.5), 0.7),
        (away_from(3, 4, points=(-0.5, 0.7)),),
    ),
    Case(
        "clip[lo-only]",
        lambda b, x: b.clip(x, 0.2, None),
        lambda x: np.maximum(x, 0.2),
        (away_from(3, 4, points=(0.2,)),),
    ),
    Case(
        "clip[hi-only]",
        lambda b, x: b.clip(x, None, -0.1),
        lambda x: np.minimum(x, -0.1),
        (away_from(3, 4, points=(-0.1,)),),
    ),
    Case("erf", lambda b, x: b.erf(x), erf64, (normal(3, 4, scale=1.5),)),
    Case(
        "erf[tails]",
        lambda b, x: b.erf(x),
        erf64,
        (lambda rng: rng.uniform(2.0, 5.0, (2, 4)) * rng.choice([-1.0, 1.0], (2, 4)),),
    ),
    Case(
        "concatenate",
        lambda b, x, y: b.concatenate([x, y, x], -1),
        lambda x, y: np.concatenate([x, y, x], axis=-1),
        (normal(2, 3), normal(2, 1)),
    ),
    Case(
        "concatenate[axis0]",
        lambda b, x, y: b.concatenate([y, x], 0),
        lambda x, y: np.concatenate([y, x], axis=0),
        (normal(2, 3, 2), normal(1, 3, 2)),
    ),
    Case(
        "stack",
        lambda b, x, y: b.stack([x, y], 0),
        lambda x, y: np.stack([x, y], axis=0),
        (normal(2, 3), normal(2, 3)),
    ),
    Case(
        "stack[axis-1]",
        lambda b, x, y: b.stack([y, x, y], -1),
        lambda x, y: np.stack([y, x, y], axis=-1),
        (normal(2, 3), normal(2, 3)),
    ),
    Case(
        "split[indices]",
        lambda b, x: _split_scaled(b, x, [1, 3], 1),
        lambda x: _split_scaled64(x, [1, 3], 1),
        (normal(2, 5),),
    ),
    Case(
        "split[equal]",
        lambda b, x: _split_scaled(b, x, 3, 0),
        lambda x: _split_scaled64(x, 3, 0),
        (normal(6, 2),),
    ),
    Case(
        "pad",
        lambda b, x: b.pad(x, [(1, 0), (2, 3)], 1.5),
        lambda x: np.pad(x, [(1, 0), (2, 3)], constant_values=1.5),
        (normal(2, 3),),
    ),
    Case(
        "pad[default-zero]",
        lambda b, x: b.pad(x, [(0, 0), (1, 1), (2, 0)]),
        lambda x: np.pad(x, [(0, 0), (1, 1), (2, 0)]),
        (normal(2, 2, 3),),
    ),
    Case(
        "take",
        lambda b, x: b.take(x, b.asarray(INDICES, "int64"), 0),
        lambda x: x[INDICES],
        (normal(3, 4),),
    ),
    Case(
        "take[axis1-numpy-indices]",
        lambda b, x: b.take(x, np.array([1, 1, 0]), 1),
        lambda x: x[:, [1, 1, 0]],
        (normal(2, 3, 2),),
    ),
    Case(
        "take[float-indices]",
        lambda b, x: b.take(x, b.asarray(np.array([3.0, 0.0, 3.0]), "float32")),
        lambda x: x[[3, 0, 3]],
        (normal(4, 2),),
    ),
    Case(
        "slice_axis",
        lambda b, x: b.slice_axis(x, 1, 1, -1),
        lambda x: x[:, 1:-1],
        (normal(2, 5, 2),),
    ),
    Case(
        "slice_axis[to-end]",
        lambda b, x: b.slice_axis(x, -1, -3, None),
        lambda x: x[..., -3:],
        (normal(3, 4),),
    ),
    Case(
        "slice_axis[clipped]",
        lambda b, x: b.slice_axis(x, 0, 2, 10),
        lambda x: x[2:10],
        (normal(4, 3),),
    ),
]


def test_every_vocabulary_hook_is_covered() -> None:
    """Every hook of the vocabulary is a math hook with a case or a test here."""
    assert set(MATH_HOOKS) >= VOCABULARY_HOOKS
    assert {c.hook for c in CASES} | NOT_DIFFERENTIABLE == VOCABULARY_HOOKS


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_value_matches_oracle(backend: Any, case: Case) -> None:
    """The op's float32 result has the oracle's shape, dtype float32 and values."""
    xs32, xs64 = _inputs(case)
    got = read(
        backend, case.op(backend, *[backend.asarray(x, "float32") for x in xs32])
    )
    expected = case.oracle(*xs64)
    assert got.shape == np.shape(expected), (
        f"{case.name}: shape {got.shape}, expected {np.shape(expected)}"
    )
    assert got.dtype == F32, f"{case.name}: dtype {got.dtype}, expected float32"
    np.testing.assert_allclose(
        got, expected, rtol=case.rtol, atol=case.atol, err_msg=f"op {case.name}"
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradient_matches_oracle_differences(backend: Any, case: Case) -> None:
    """value_and_grad of sum(op(x) * w) matches finite differences of the oracle."""
    xs32, xs64 = _inputs(case)
    shape = np.shape(case.oracle(*xs64))
    w32 = np.asarray(np.random.default_rng(SEED + 1).standard_normal(shape), F32)
    w = backend.asarray(w32, "float32")
    w64 = w32.astype(np.float64)

    def loss(arrays: list[Any]) -> Any:
        return backend.sum(backend.multiply(case.op(backend, *arrays), w), None, False)

    def loss64(arrays: list[np.ndarray]) -> float:
        return float(np.sum(case.oracle(*arrays) * w64))

    value, grads = backend.value_and_grad(
        loss, [backend.asarray(x, "float32") for x in xs32]
    )
    np.testing.assert_allclose(
        read(backend, value), loss64(xs64), rtol=RTOL, atol=10 * ATOL, err_msg=case.name
    )
    expected = _finite_differences(loss64, xs64)
    for i, (g, e) in enumerate(zip(grads, expected, strict=True)):
        got = read(backend, g)
        assert got.shape == e.shape and got.dtype == F32, (
            f"{case.name}: gradient {i} is {got.dtype}{got.shape}"
        )
        np.testing.assert_allclose(
            got,
            e,
            rtol=GRAD_RTOL,
            atol=GRAD_ATOL,
            err_msg=f"gradient of input {i} of op {case.name}",
        )


# ----------------------------------------------------------------------------------
# Comparisons and argmax: exact, boolean / integer results
# ----------------------------------------------------------------------------------

A = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 1.0]], dtype=np.float32)
B_ROW = np.array([1.0, 1.0, -2.0], dtype=np.float32)

COMPARISONS = {"greater": np.greater, "less": np.less, "equal": np.equal}


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparison_is_boolean_and_exact(backend: Any, name: str) -> None:
    """greater/less/equal: dtype bool, broadcasting, a scalar in either position."""
    op, oracle = getattr(backend, name), COMPARISONS[name]
    a, b = backend.asarray(A, "float32"), backend.asarray(B_ROW, "float32")
    for what, got, expected in [
        ("arrays", op(a, b), oracle(A, B_ROW)),
        ("scalar right", op(a, 1.0), oracle(A, 1.0)),
        ("scalar left", op(1.0, a), oracle(1.0, A)),
        ("0-d", op(backend.sum(a, None, False), 6.0), oracle(A.sum(), 6.0)),
    ]:
        got_np = read(backend, got)
        assert got_np.dtype == np.bool_, f"{name} {what}: dtype {got_np.dtype}"
        assert got_np.shape == np.shape(expected), f"{name} {what}: {got_np.shape}"
        np.testing.assert_array_equal(got_np, expected, err_msg=f"{name} {what}")


def test_comparisons_do_not_differentiate(backend: Any) -> None:
    """A mask made inside value_and_grad is a constant: where routes the gradient."""
    x = backend.asarray(np.array([-1.0, 0.5, 2.0, 0.5], np.float32), "float32")

    def f(a: list[Any]) -> Any:
        (v,) = a
        keep = backend.greater(v, 0.0)
        drop = backend.equal(v, 0.5)
        y = backend.where(keep, backend.multiply(v, 3.0), v)
        return backend.sum(backend.where(drop, 0.0, y), None, False)

    _, (g,) = backend.value_and_grad(f, [x])
    np.testing.assert_array_equal(read(backend, g), [1.0, 0.0, 3.0, 0.0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_argmax(backend: Any, axis: int) -> None:
    """argmax: integer dtype, axis removed, the first index on ties."""
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0], [0.5, 3.0, 4.0]], np.float32)
    got = read(backend, backend.argmax(backend.asarray(x, "float32"), axis))
    assert got.dtype.kind in "iu", f"argmax dtype {got.dtype}"
    np.testing.assert_array_equal(got, np.argmax(x, axis=axis))


def test_argmax_of_vector_is_0d(backend: Any) -> None:
    got = read(
        backend,
        backend.argmax(
            backend.asarray(np.array([0.0, 5.0, 5.0], np.float32), "float32"), 0
        ),
    )
    assert got.shape == () and int(got) == 1


# ----------------------------------------------------------------------------------
# Pinned gradient conventions
# ----------------------------------------------------------------------------------


def test_clip_gradient_includes_the_bounds(backend: Any) -> None:
    """clip's gradient is 1 for lo <= x <= hi (torch.clamp's rule), 0 outside."""
    x = backend.asarray(np.array([-1.0, 0.0, 0.5, 1.0, 2.0], np.float32), "float32")
    _, (g,) = backend.value_and_grad(
        lambda a: backend.sum(backend.clip(a[0], 0.0, 1.0), None, False), [x]
    )
    np.testing.assert_array_equal(read(backend, g), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_take_scatter_adds_repeated_indices(backend: Any) -> None:
    """An embedding row looked up three times gets three times the gradient."""
    table = backend.asarray(np.arange(8, dtype=np.float32).reshape(4, 2), "float32")
    idx = backend.asarray(np.array([[3, 1], [3, 3]]), "int64")
    _, (g,) = backend.value_and_grad(
        lambda a: backend.sum(backend.take(a[0], idx, 0), None, False), [table]
    )
    np.testing.assert_array_equal(
        read(backend, g), [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 3.0]]
    )


def test_split_returns_numpy_pieces(backend: Any) -> None:
    """split returns a list with numpy.split's pieces, for both forms of sections."""
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    for sections, axis in [(2, 0), (3, -1), ([1, 4], 1), ([3], 0)]:
        got = backend.split(backend.asarray(x, "float32"), sections, axis)
        expected = np.split(x, sections, axis=axis)
        assert isinstance(got, list) and len(got) == len(expected), sections
        for p, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(read(backend, p), e, err_msg=str(sections))


def test_erf_is_odd_and_saturates(backend: Any) -> None:
    """erf at 0, its symmetry and its limits, exactly representable in float32."""
    x = np.array([0.0, -0.5, 0.5, -6.0, 6.0], np.float32)
    got = read(backend, backend.erf(backend.asarray(x, "float32")))
    assert got[0] == 0.0 and got[1] == -got[2]
    np.testing.assert_allclose(got[3:], [-1.0, 1.0], rtol=0, atol=1e-7)
