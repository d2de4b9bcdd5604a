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


# ----------------------------------------------------------------------------------
# value_and_grad
# ----------------------------------------------------------------------------------


def f32(backend: Any, values: Any) -> Any:
    return backend.asarray(np.asarray(values, dtype=np.float32), "float32")


def test_value_is_0d(backend: Any) -> None:
    """value_and_grad returns its value as a 0-d array."""
    x = f32(backend, [[1.0, 2.0], [3.0, 4.0]])
    value, _ = backend.value_and_grad(lambda a: backend.mean(a[0], None, False), [x])
    got = read(backend, value)
    assert got.shape == (), f"value shape {got.shape}, expected ()"
    np.testing.assert_allclose(got, 2.5, rtol=RTOL, err_msg="mean value")


def test_unused_input_gets_zeros(backend: Any) -> None:
    """An input the function does not use gets a zero gradient of its shape."""
    x, unused = f32(backend, [1.0, -2.0]), f32(backend, np.ones((2, 3)))
    _, (gx, gu) = backend.value_and_grad(
        lambda a: backend.sum(backend.square(a[0]), None, False), [x, unused]
    )
    np.testing.assert_allclose(read(backend, gx), [2.0, -4.0], rtol=RTOL, err_msg="dx")
    got = read(backend, gu)
    assert got.shape == (2, 3) and got.dtype == F32, f"unused: {got.dtype}{got.shape}"
    np.testing.assert_array_equal(got, np.zeros((2, 3)), err_msg="unused input")


def test_reuse_sums_gradients(backend: Any) -> None:
    """An input used on several paths gets the sum of their gradients."""
    x = f32(backend, [1.0, -2.0, 3.0])

    def f(a: list[Any]) -> Any:
        (v,) = a
        return backend.add(
            backend.sum(backend.multiply(v, v), None, False),
            backend.sum(backend.exp(v), None, False),
        )

    _, (g,) = backend.value_and_grad(f, [x])
    x64 = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(
        read(backend, g), 2 * x64 + np.exp(x64), rtol=GRAD_RTOL, err_msg="x*x + exp(x)"
    )


def test_no_state_between_calls(backend: Any) -> None:
    """Two identical calls give identical results and leave the inputs unchanged."""
    x, w = f32(backend, [[0.5, -1.0], [2.0, 0.25]]), f32(backend, [[1.0, 2.0]])

    def f(a: list[Any]) -> Any:
        return backend.sum(backend.tanh(backend.linear(a[0], a[1], None)), None, False)

    v1, g1 = backend.value_and_grad(f, [x, w])
    v2, g2 = backend.value_and_grad(f, [x, w])
    np.testing.assert_array_equal(read(backend, v1), read(backend, v2))
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_array_equal(read(backend, a), read(backend, b))
    np.testing.assert_array_equal(read(backend, x), [[0.5, -1.0], [2.0, 0.25]])


# ----------------------------------------------------------------------------------
# Gradient rules at ties and kinks
# ----------------------------------------------------------------------------------


def _grads(backend: Any, f: Callable[[list[Any]], Any], *values: Any) -> list:
    _, grads = backend.value_and_grad(f, [f32(backend, v) for v in values])
    return [read(backend, g) for g in grads]


def test_relu_gradient_at_zero_is_zero(backend: Any) -> None:
    """relu'(0) = 0 (and 1 above 0, 0 below)."""
    (g,) = _grads(
        backend, lambda a: backend.sum(backend.relu(a[0]), None, False), [-1, 0, 2]
    )
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0], err_msg="relu gradient")


def test_abs_gradient_at_zero_is_zero(backend: Any) -> None:
    """abs'(0) = 0 (and sign(x) elsewhere)."""
    (g,) = _grads(
        backend, lambda a: backend.sum(backend.abs(a[0]), None, False), [-2, 0, 3]
    )
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0], err_msg="abs gradient")


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_split_gradient_on_ties(backend: Any, name: str) -> None:
    """maximum/minimum give each operand half of the gradient where they are equal."""
    op = getattr(backend, name)
    ga, gb = _grads(
        backend,
        lambda a: backend.sum(op(a[0], a[1]), None, False),
        [1.0, 2.0, 3.0],
        [1.0, 0.0, 5.0],
    )
    share_a = [0.5, 1.0, 0.0] if name == "maximum" else [0.5, 0.0, 1.0]
    np.testing.assert_array_equal(ga, share_a, err_msg=f"{name}: first operand")
    np.testing.assert_array_equal(gb, 1 - np.array(share_a), err_msg=f"{name}: second")


def test_max_shares_gradient_among_ties(backend: Any) -> None:
    """The max reduction shares the gradient evenly among tied maxima."""
    x = [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]
    (g,) = _grads(
        backend, lambda a: backend.sum(backend.max(a[0], 1, False), None, False), x
    )
    np.testing.assert_allclose(
        g, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6, err_msg="max over axis 1"
    )
    (g,) = _grads(backend, lambda a: backend.max(a[0], None, False), x)
    np.testing.assert_allclose(
        g, [[0, 0.5, 0.5], [0, 0, 0]], rtol=1e-6, err_msg="max over all axes"
    )


def test_one_hot_is_not_differentiable(backend: Any) -> None:
    """one_hot of a differentiated input passes no gradient to it."""
    g_labels, g_w = _grads(
        backend,
        lambda a: backend.sum(
            backend.multiply(backend.one_hot(a[0], 3, "float32"), a[1]), None, False
        ),
        [0.0, 2.0, 1.0],
        np.arange(9.0).reshape(3, 3),
    )
    np.testing.assert_array_equal(g_labels, np.zeros(3), err_msg="one_hot input")
    np.testing.assert_array_equal(g_w, np.eye(3)[[0, 2, 1]], err_msg="weights")


# ----------------------------------------------------------------------------------
# Numerical stability
# ----------------------------------------------------------------------------------


LARGE = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -999.0]])


@pytest.mark.parametrize(
    ("name", "oracle"),
    [("softmax", softmax64), ("log_softmax", log_softmax64)],
)
def test_softmax_is_stable_for_large_inputs(
    backend: Any, name: str, oracle: Callable[..., np.ndarray]
) -> None:
    """softmax/log_softmax of +-1000 are finite and exact (the max is subtracted)."""
    got = read(backend, getattr(backend, name)(f32(backend, LARGE), -1))
    expected = oracle(LARGE - LARGE.max(axis=-1, keepdims=True), -1)
    assert np.isfinite(got).all(), f"{name}: {got}"
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=name)


def test_sigmoid_is_stable_for_large_inputs(backend: Any) -> None:
    """sigmoid saturates to 0 and 1 without nan for inputs of +-100."""
    got = read(backend, backend.sigmoid(f32(backend, [-100.0, -20.0, 20.0, 100.0])))
    expected = sigmoid64(np.array([-100.0, -20.0, 20.0, 100.0]))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg="sigmoid")


# ----------------------------------------------------------------------------------
# Dtypes of scalar operands
# ----------------------------------------------------------------------------------

BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]
PY_ORACLE = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


@pytest.mark.parametrize("scalar", [2.5, 3], ids=["float", "int"])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("ndim", [1, 0], ids=["1d", "0d"])
def test_scalar_operand_keeps_float32(
    backend: Any, name: str, side: str, scalar: float, ndim: int
) -> None:
    """A Python scalar on either side of a binary op keeps a float32 array float32."""
    x64 = np.array([0.5, -1.25, 2.0])
    x = f32(backend, x64)
    if ndim == 0:  # a reduction result: the case NumPy 1.x promotes most easily
        x, x64 = backend.sum(x, None, False), x64.sum()
    op = getattr(backend, name)
    got = read(backend, op(scalar, x) if side == "left" else op(x, scalar))
    args = (scalar, x64) if side == "left" else (x64, scalar)
    label = f"{name}({'scalar, x' if side == 'left' else 'x, scalar'}) on {ndim}-d"
    assert got.dtype == F32, f"{label}: dtype {got.dtype}, expected float32"
    np.testing.assert_allclose(got, PY_ORACLE[name](*args), rtol=RTOL, err_msg=label)


@pytest.mark.parametrize("exponent", [2, 0.5, -1.0])
@pytest.mark.parametrize("ndim", [1, 0], ids=["1d", "0d"])
def test_power_keeps_float32(backend: Any, exponent: float, ndim: int) -> None:
    """power with a Python-scalar exponent keeps float32."""
    x64 = np.array([0.5, 1.25, 2.0])
    x = f32(backend, x64)
    if ndim == 0:
        x, x64 = backend.sum(x, None, False), x64.sum()
    got = read(backend, backend.power(x, exponent))
    assert got.dtype == F32, f"power(x, {exponent}): dtype {got.dtype}"
    np.testing.assert_allclose(got, x64**exponent, rtol=RTOL, err_msg="power")


@pytest.mark.parametrize(
    "name", ["relu", "sigmoid", "tanh", "exp", "log1p", "abs", "negative", "square"]
)
def test_unary_on_0d_keeps_float32(backend: Any, name: str) -> None:
    """Unary ops on a 0-d float32 (a reduction result) stay float32."""
    x = backend.sum(f32(backend, [0.25, 0.5]), None, False)
    got = read(backend, getattr(backend, name)(x))
    assert got.dtype == F32, f"{name} of a 0-d float32: dtype {got.dtype}"


# ----------------------------------------------------------------------------------
# Conversion, creation and assignment
# ----------------------------------------------------------------------------------


def test_zeros_and_zeros_like(backend: Any) -> None:
    """zeros/zeros_like give zeros of the asked (or the model's) shape and dtype."""
    z = backend.zeros((2, 3), "float32")
    got = read(backend, z)
    assert backend.is_array(z), "zeros: not a native array"
    assert got.shape == (2, 3) and got.dtype == F32, f"zeros: {got.dtype}{got.shape}"
    np.testing.assert_array_equal(got, np.zeros((2, 3)), err_msg="zeros")
    x = f32(backend, [[1.0, 2.0, 3.0]])
    zl = read(backend, backend.zeros_like(x))
    assert zl.shape == (1, 3) and zl.dtype == F32, f"zeros_like: {zl.dtype}{zl.shape}"
    np.testing.assert_array_equal(zl, np.zeros((1, 3)), err_msg="zeros_like")
    np.testing.assert_array_equal(read(backend, x), [[1.0, 2.0, 3.0]], err_msg="input")


@pytest.mark.parametrize("index_dtype", ["int32", "int64", "float32"])
def test_one_hot(backend: Any, index_dtype: str) -> None:
    """one_hot gives (n, depth) rows of the asked dtype for integer-valued labels."""
    labels = np.array([0, 2, 1, 2])
    got = read(
        backend, backend.one_hot(backend.asarray(labels, index_dtype), 3, "float32")
    )
    assert got.shape == (4, 3) and got.dtype == F32, f"one_hot: {got.dtype}{got.shape}"
    np.testing.assert_array_equal(got, np.eye(3)[labels], err_msg="one_hot rows")


@pytest.mark.parametrize(
    "host",
    [np.arange(6.0).reshape(2, 3), np.arange(6).reshape(2, 3), 2.5, 3],
    ids=["float64-array", "int-array", "py-float", "py-int"],
)
def test_asarray_and_to_numpy(backend: Any, host: Any) -> None:
    """asarray converts host data to float32; to_numpy reads it back unchanged."""
    x = backend.asarray(host, "float32")
    assert backend.is_array(x), f"asarray({host!r}) is not a native array"
    got = backend.to_numpy(x)
    assert isinstance(got, np.ndarray) or np.isscalar(got), type(got)
    got = np.asarray(got)
    assert got.shape == np.shape(host) and got.dtype == F32, f"{got.dtype}{got.shape}"
    np.testing.assert_array_equal(got, np.asarray(host, np.float32), err_msg="values")


def test_is_array_rejects_host_objects(backend: Any) -> None:
    """is_array is False for Python scalars, lists and strings."""
    for obj in (1.5, 3, [1.0, 2.0], "x", None):
        assert not backend.is_array(obj), f"is_array({obj!r}) is True"


@pytest.mark.parametrize(
    ("dtype", "values"),
    [("int32", [[0.0, 3.0], [-2.0, 7.0]]), ("float16", [[0.5, -1.25], [3.0, 1024.0]])],
)
def test_astype(backend: Any, dtype: str, values: list) -> None:
    """astype changes the dtype, keeps the shape and (exactly representable) values."""
    got = read(backend, backend.astype(f32(backend, values), dtype))
    assert got.dtype == np.dtype(dtype) and got.shape == (2, 2), (
        f"{got.dtype}{got.shape}"
    )
    np.testing.assert_array_equal(got, np.asarray(values), err_msg=f"astype {dtype}")


def test_assign_holds_value(backend: Any) -> None:
    """assign returns an array holding the value; in place when it returns target."""
    target = backend.zeros((2, 3), "float32")
    new = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    value = backend.asarray(new.copy(), "float32")
    out = backend.assign(target, value)
    np.testing.assert_array_equal(read(backend, out), new, err_msg="assign result")
    if out is target:  # mutable backends: references to target see the new value
        np.testing.assert_array_equal(read(backend, target), new, err_msg="target")
    # a later assign into the result must not write through into ``value``
    backend.assign(out, backend.zeros((2, 3), "float32"))
    np.testing.assert_array_equal(read(backend, value), new, err_msg="value aliased")


@pytest.mark.requires("inplace")
def test_assign_is_in_place(backend: Any) -> None:
    """A backend declaring 'inplace' returns target itself, now holding the value."""
    target = backend.zeros((3,), "float32")
    out = backend.assign(target, f32(backend, [1.0, 2.0, 3.0]))
    assert out is target, "assign did not return its target"
    np.testing.assert_array_equal(read(backend, target), [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "a,b", [(1.0, 1.0), (-0.1, 1.0), (0.1, 0.9), (1.0, 0.0)], ids=str
)
def test_axpby_value_and_ownership(backend, a, b):
    """axpby returns a*x + b*y; mutable backends update y in place, x is untouched."""
    rng = np.random.default_rng(11)
    x64, y64 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x = backend.asarray(x64.astype(np.float32), "float32")
    y = backend.asarray(y64.astype(np.float32), "float32")
    out = backend.axpby(a, x, b, y)
    want = a * x64.astype(np.float32).astype(np.float64) + b * y64.astype(
        np.float32
    ).astype(np.float64)
    got = np.asarray(backend.to_numpy(out))
    assert got.dtype == np.float32
    np.testing.assert_allclose(
        got, want, rtol=1e-6, atol=1e-6, err_msg=f"axpby({a}, b={b})"
    )
    np.testing.assert_array_equal(
        np.asarray(backend.to_numpy(x)), x64.astype(np.float32)
    )
    if "inplace" in backend.capabilities:
        assert out is y, "an inplace backend must update y and return it"


@pytest.mark.requires("jit")
def test_jit_matches_oracle_and_compiles_once_per_shape(backend: Any) -> None:
    """jit(fn) computes fn (nested lists of arrays in and out), traced once per
    input shape and reused."""
    traces: list[int] = []

    def fn(pair: list[Any], y: Any) -> list[Any]:
        traces.append(1)  # Python side effects run at trace time only
        out = backend.add(backend.multiply(pair[0], y), pair[1])
        return [out, backend.sum(backend.tanh(out), None, False)]

    compiled = backend.jit(fn)
    rng = np.random.default_rng(5)
    for shape, calls in (((2, 3), 3), ((4, 3), 1)):
        a, c, y = (rng.standard_normal(shape).astype(F32) for _ in range(3))
        for _ in range(calls):
            out, total = compiled([f32(backend, a), f32(backend, c)], f32(backend, y))
        want = a.astype(np.float64) * y + c
        np.testing.assert_allclose(read(backend, out), want, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(
            read(backend, total), np.tanh(want).sum(), rtol=RTOL, atol=10 * ATOL
        )
    assert len(traces) == 2, f"traced {len(traces)} times for 2 input shapes"


@pytest.mark.requires("jit")
@pytest.mark.parametrize("made_inside", [False, True], ids=["bias-input", "bias-made"])
def test_jit_of_a_training_step(backend: Any, made_inside: bool) -> None:
    """jit of a training-step-like function: value_and_grad, a small table read
    element by element (as the Trainer's coefficients), an update from the
    gradient, an input returned unchanged, and a bias passed in or made inside the
    function (a constant: MXNet's jit runs such a function eagerly). Against
    float64 formulas, on two calls of one shape and one of another."""
    rng = np.random.default_rng(9)

    def fn(w: Any, x: Any, table: Any, bias: Any) -> list[Any]:
        if made_inside:
            bias = backend.add(backend.zeros((w.shape[1],), "float32"), 0.5)

        def loss(arrays: list[Any]) -> Any:
            h = backend.tanh(backend.add(backend.matmul(x, arrays[0]), bias))
            return backend.mean(backend.square(h), None, False)

        value, (grad,) = backend.value_and_grad(loss, [w])
        lr, scale = table[1, 0], table[0, 1]
        new_w = backend.subtract(w, backend.multiply(grad, lr))
        return [value, grad, backend.multiply(new_w, scale), x]

    compiled = backend.jit(fn)
    for rows in (3, 3, 5):
        w, x = (rng.standard_normal(s).astype(F32) for s in ((4, 2), (rows, 4)))
        table = np.array([[1.0, 2.0], [0.25, 0.0]], F32)
        value, grad, new_w, same = compiled(
            f32(backend, w),
            f32(backend, x),
            f32(backend, table),
            f32(backend, np.full(2, 0.5, F32)),
        )
        w64, x64 = w.astype(np.float64), x.astype(np.float64)
        h = np.tanh(x64 @ w64 + 0.5)
        want_grad = x64.T @ (2 * h * (1 - h**2) / h.size)
        np.testing.assert_allclose(read(backend, value), np.mean(h**2), rtol=RTOL)
        assert read(backend, value).shape == ()
        np.testing.assert_allclose(read(backend, grad), want_grad, RTOL, ATOL)
        want_w = 2.0 * (w64 - 0.25 * want_grad)
        np.testing.assert_allclose(read(backend, new_w), want_w, RTOL, ATOL)
        np.testing.assert_array_equal(read(backend, same), x)
