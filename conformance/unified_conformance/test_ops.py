"""Op conformance: every math hook of a backend against an independent NumPy oracle.

Runs on any backend through the ``backend`` fixture (``--unified-backend NAME``).
Inputs are float32 (``backend.asarray(x, "float32")``); results are read back with
``backend.to_numpy`` and compared with formulas written here in plain float64 NumPy,
evaluated on the same float32-rounded inputs. Gradients from
``backend.value_and_grad`` of ``sum(op(x) * w)`` (``w`` fixed random weights) are
compared with central finite differences of the float64 oracle.

Tolerances: values at float32 precision (``rtol=1e-5``, ``atol=1e-6``); gradients at
``rtol=1e-4``. A case that needs more says why next to its numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from unified.hookspecs import MATH_HOOKS, NN_HOOKS

from .helpers import assert_close

SEED = 20240607
RTOL, ATOL = 1e-5, 1e-6  # float32 values
GRAD_RTOL = 1e-4
# Gradient entries that cancel to ~0 keep float32 rounding noise of the terms that
# cancelled (magnitude ~1), so they need an absolute floor too.
GRAD_ATOL = 1e-5
EPS = 1e-6  # finite-difference step, on the float64 oracle

Maker = Callable[[np.random.Generator], np.ndarray]
F32 = np.dtype("float32")


def normal(*shape: int, scale: float = 1.0) -> Maker:
    return lambda rng: scale * rng.standard_normal(shape)


def positive(*shape: int) -> Maker:
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def away_from_zero(*shape: int) -> Maker:
    """Values in +-[0.3, 1.5]: no input near the kink of relu or abs."""
    return lambda rng: rng.uniform(0.3, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def read(backend: Any, x: Any) -> np.ndarray:
    """A backend array as a NumPy array."""
    return np.asarray(backend.to_numpy(x))


def sigmoid64(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softmax64(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x)  # inputs here are small: no shift needed for the oracle
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax64(x: np.ndarray, axis: int) -> np.ndarray:
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


@dataclass(frozen=True)
class Case:
    """One op on given inputs: the backend call and its float64 oracle."""

    name: str
    op: Callable[..., Any]  # (backend, *backend arrays) -> backend array
    oracle: Callable[..., np.ndarray]  # (*float64 arrays) -> float64 array
    makers: tuple[Maker, ...]
    rtol: float = RTOL
    atol: float = ATOL

    @property
    def hook(self) -> str:
        return self.name.split("[")[0]


# Sums of n float32 products: the rounding error grows with n and the result can be
# a cancellation near 0, so an absolute floor scaled to the terms (~1) is needed.
ACCUMULATE = {"atol": 1e-5}

CASES: list[Case] = [
    # elementwise binary: same shape, broadcasting, Python scalars in both positions
    Case("add", lambda b, x, y: b.add(x, y), np.add, (normal(3, 4), normal(3, 4))),
    Case("add[row]", lambda b, x, y: b.add(x, y), np.add, (normal(3, 4), normal(4))),
    Case(
        "add[outer]", lambda b, x, y: b.add(x, y), np.add, (normal(3, 1), normal(1, 4))
    ),
    Case("add[0d]", lambda b, x, y: b.add(x, y), np.add, (normal(2, 3), normal())),
    Case(
        "add[scalar-right]", lambda b, x: b.add(x, 2.5), lambda x: x + 2.5, (normal(5),)
    ),
    Case("add[scalar-left]", lambda b, x: b.add(2, x), lambda x: 2 + x, (normal(5),)),
    Case(
        "subtract",
        lambda b, x, y: b.subtract(x, y),
        lambda x, y: x - y,
        (normal(2, 3, 4), normal(3, 1)),
    ),
    Case(
        "subtract[scalar-left]",
        lambda b, x: b.subtract(1.5, x),
        lambda x: 1.5 - x,
        (normal(5),),
    ),
    Case(
        "multiply",
        lambda b, x, y: b.multiply(x, y),
        lambda x, y: x * y,
        (normal(3, 4), normal(3, 1)),
    ),
    Case(
        "multiply[scalar-right]",
        lambda b, x: b.multiply(x, 3),
        lambda x: x * 3,
        (normal(5),),
    ),
    Case(
        "divide",
        lambda b, x, y: b.divide(x, y),
        lambda x, y: x / y,
        (normal(3, 4), positive(4)),
    ),
    Case(
        "divide[scalar-left]",
        lambda b, x: b.divide(2.0, x),
        lambda x: 2.0 / x,
        (positive(5),),
    ),
    Case(
        "divide[scalar-right]",
        lambda b, x: b.divide(x, 4.0),
        lambda x: x / 4.0,
        (normal(5),),
    ),
    Case(
        "maximum",
        lambda b, x, y: b.maximum(x, y),
        lambda x, y: np.where(x > y, x, y),
        (normal(3, 4), normal(4)),
    ),
    Case(
        "maximum[scalar]",
        lambda b, x: b.maximum(x, 0.1),
        lambda x: np.where(x > 0.1, x, 0.1),
        (normal(6),),
    ),
    Case(
        "minimum",
        lambda b, x, y: b.minimum(x, y),
        lambda x, y: np.where(x < y, x, y),
        (normal(3, 1), normal(3, 4)),
    ),
    Case(
        "minimum[scalar]",
        lambda b, x: b.minimum(0.1, x),
        lambda x: np.where(x < 0.1, x, 0.1),
        (normal(6),),
    ),
    Case("power[2]", lambda b, x: b.power(x, 2), lambda x: x * x, (normal(3, 4),)),
    Case("power[3]", lambda b, x: b.power(x, 3.0), lambda x: x**3, (normal(3, 4),)),
    Case(
        "power[0.5]", lambda b, x: b.power(x, 0.5), lambda x: x**0.5, (positive(3, 4),)
    ),
    Case(
        "power[-1.5]",
        lambda b, x: b.power(x, -1.5),
        lambda x: x**-1.5,
        (positive(3, 4),),
    ),
    # elementwise unary
    Case("negative", lambda b, x: b.negative(x), lambda x: -x, (normal(3, 4),)),
    Case("exp", lambda b, x: b.exp(x), np.exp, (normal(3, 4),)),
    Case("log", lambda b, x: b.log(x), np.log, (positive(3, 4),)),
    Case(
        "log1p",
        lambda b, x: b.log1p(x),
        np.log1p,
        (lambda rng: rng.uniform(-0.5, 2.0, (3, 4)),),
    ),
    Case("log1p[tiny]", lambda b, x: b.log1p(x), np.log1p, (normal(6, scale=1e-6),)),
    Case("sqrt", lambda b, x: b.sqrt(x), np.sqrt, (positive(3, 4),)),
    Case("square", lambda b, x: b.square(x), lambda x: x * x, (normal(3, 4),)),
    Case(
        "abs",
        lambda b, x: b.abs(x),
        lambda x: np.where(x < 0, -x, x),
        (away_from_zero(3, 4),),
    ),
    # activations
    Case(
        "relu",
        lambda b, x: b.relu(x),
        lambda x: np.where(x > 0, x, 0.0),
        (away_from_zero(3, 4),),
    ),
    Case("sigmoid", lambda b, x: b.sigmoid(x), sigmoid64, (normal(3, 4, scale=3.0),)),
    Case("tanh", lambda b, x: b.tanh(x), np.tanh, (normal(3, 4, scale=2.0),)),
    Case(
        "softmax",
        lambda b, x: b.softmax(x, -1),
        lambda x: softmax64(x, -1),
        (normal(3, 5),),
    ),
    Case(
        "softmax[axis0]",
        lambda b, x: b.softmax(x, 0),
        lambda x: softmax64(x, 0),
        (normal(3, 5),),
    ),
    Case(
        "log_softmax",
        lambda b, x: b.log_softmax(x, -1),
        lambda x: log_softmax64(x, -1),
        (normal(3, 5),),
    ),
    Case(
        "log_softmax[3d-axis1]",
        lambda b, x: b.log_softmax(x, 1),
        lambda x: log_softmax64(x, 1),
        (normal(2, 3, 4),),
    ),
    # linear algebra
    Case(
        "matmul",
        lambda b, x, y: b.matmul(x, y),
        lambda x, y: np.einsum("ij,jk->ik", x, y),
        (normal(3, 4), normal(4, 2)),
        **ACCUMULATE,
    ),
    Case(
        "matmul[batched]",
        lambda b, x, y: b.matmul(x, y),
        lambda x, y: np.einsum("bij,bjk->bik", x, y),
        (normal(2, 3, 4), normal(2, 4, 5)),
        **ACCUMULATE,
    ),
    Case(
        "matmul[broadcast-batch]",
        lambda b, x, y: b.matmul(x, y),
        lambda x, y: np.einsum("bij,jk->bik", x, y),
        (normal(2, 3, 4), normal(4, 5)),
        **ACCUMULATE,
    ),
    Case(
        "linear",
        lambda b, x, w, c: b.linear(x, w, c),
        lambda x, w, c: np.einsum("ni,oi->no", x, w) + c,
        (normal(5, 4), normal(3, 4), normal(3)),
        **ACCUMULATE,
    ),
    Case(
        "linear[no-bias]",
        lambda b, x, w: b.linear(x, w, None),
        lambda x, w: np.einsum("ni,oi->no", x, w),
        (normal(5, 4), normal(3, 4)),
        **ACCUMULATE,
    ),
    Case(
        "linear[3d]",
        lambda b, x, w, c: b.linear(x, w, c),
        lambda x, w, c: np.einsum("bti,oi->bto", x, w) + c,
        (normal(2, 3, 4), normal(5, 4), normal(5)),
        **ACCUMULATE,
    ),
    # reductions
    Case(
        "sum",
        lambda b, x: b.sum(x, None, False),
        np.sum,
        (normal(2, 3, 4),),
        **ACCUMULATE,
    ),
    Case(
        "sum[axis0]",
        lambda b, x: b.sum(x, 0, False),
        lambda x: x.sum(axis=0),
        (normal(2, 3, 4),),
        **ACCUMULATE,
    ),
    Case(
        "sum[tuple-keepdims]",
        lambda b, x: b.sum(x, (0, 2), True),
        lambda x: x.sum(axis=(0, 2), keepdims=True),
        (normal(2, 3, 4),),
        **ACCUMULATE,
    ),
    Case(
        "mean",
        lambda b, x: b.mean(x, None, False),
        lambda x: x.sum() / x.size,
        (normal(2, 3, 4),),
        **ACCUMULATE,
    ),
    Case(
        "mean[axis-1-keepdims]",
        lambda b, x: b.mean(x, -1, True),
        lambda x: x.sum(axis=-1, keepdims=True) / x.shape[-1],
        (normal(2, 3, 4),),
        **ACCUMULATE,
    ),
    Case(
        "mean[tuple]",
        lambda b, x: b.mean(x, (0, 1), False),
        lambda x: x.sum(axis=(0, 1)) / 6,
        (normal(2, 3, 4),),
        **ACCUMULATE,
    ),
    Case("max", lambda b, x: b.max(x, None, False), np.max, (normal(2, 3, 4),)),
    Case(
        "max[axis1]",
        lambda b, x: b.max(x, 1, False),
        lambda x: x.max(axis=1),
        (normal(2, 3, 4),),
    ),
    Case(
        "max[tuple-keepdims]",
        lambda b, x: b.max(x, (0, 2), True),
        lambda x: x.max(axis=(0, 2), keepdims=True),
        (normal(2, 3, 4),),
    ),
    # shapes and casts
    Case(
        "reshape",
        lambda b, x: b.reshape(x, (6, -1)),
        lambda x: x.reshape(6, 4),
        (normal(2, 3, 4),),
    ),
    Case(
        "transpose",
        lambda b, x: b.transpose(x, None),
        lambda x: x.transpose(2, 1, 0),
        (normal(2, 3, 4),),
    ),
    Case(
        "transpose[axes]",
        lambda b, x: b.transpose(x, (1, 0, 2)),
        lambda x: x.transpose(1, 0, 2),
        (normal(2, 3, 4),),
    ),
    Case(
        "astype",
        lambda b, x: b.astype(b.astype(x, "float16"), "float32"),
        lambda x: x,
        (normal(3, 4),),
        # a round trip through float16 keeps 11 significant bits
        rtol=1e-3,
        atol=1e-4,
    ),
]

NOT_DIFFERENTIABLE = {"one_hot", "zeros", "zeros_like"}


def _inputs(case: Case) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The case's inputs in float32, and the same values in float64 for the oracle."""
    rng = np.random.default_rng(SEED)
    xs32 = [np.asarray(make(rng), dtype=np.float32) for make in case.makers]
    return xs32, [x.astype(np.float64) for x in xs32]


def _finite_differences(
    f: Callable[[list[np.ndarray]], float], xs: list[np.ndarray]
) -> list[np.ndarray]:
    grads = []
    for i, x in enumerate(xs):
        g = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            plus, minus = [a.copy() for a in xs], [a.copy() for a in xs]
            plus[i][idx] += EPS
            minus[i][idx] -= EPS
            g[idx] = (f(plus) - f(minus)) / (2 * EPS)
        grads.append(g)
    return grads


def test_every_math_hook_is_covered() -> None:
    """Every hook of MATH_HOOKS has a value/gradient case or a dedicated test here,
    or belongs to the vocabulary tested in ``test_ops_vocabulary.py`` (the
    convolution and pooling kernels have theirs in test_nn_kernels.py)."""
    from unified_conformance.test_ops_vocabulary import VOCABULARY_HOOKS

    covered = (
        {c.hook for c in CASES} | NOT_DIFFERENTIABLE | VOCABULARY_HOOKS | set(NN_HOOKS)
    )
    assert covered == set(MATH_HOOKS)


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
    assert_close(
        got,
        expected,
        f"op {case.name} (value of {case.hook}(x) on float32 inputs, expected: "
        "the float64 oracle)",
        rtol=case.rtol,
        atol=case.atol,
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
    value_np = read(backend, value)
    assert value_np.shape == (), f"{case.name}: value has shape {value_np.shape}"
    np.testing.assert_allclose(
        value_np, loss64(xs64), rtol=RTOL, atol=10 * case.atol, err_msg=case.name
    )
    expected = _finite_differences(loss64, xs64)
    assert len(grads) == len(xs32), f"{case.name}: {len(grads)} gradients"
    for i, (g, e) in enumerate(zip(grads, expected, strict=True)):
        got = read(backend, g)
        assert got.shape == e.shape and got.dtype == F32, (
            f"{case.name}: gradient {i} is {got.dtype}{got.shape}, expected "
            f"float32{e.shape}"
        )
        assert_close(
            got,
            e,
            f"gradient of op {case.name} w.r.t. input {i} (value_and_grad of "
            f"sum({case.hook}(x) * w), expected: finite differences of the oracle)",
            rtol=max(GRAD_RTOL, case.rtol),
            atol=max(GRAD_ATOL, case.atol),
        )
