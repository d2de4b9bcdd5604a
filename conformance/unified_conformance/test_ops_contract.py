"""Op contract beyond each op's values: ``value_and_grad`` (0-d values, zeros for
unused inputs, summed reuse, no state between calls), gradient rules at ties and
kinks, numerical stability, the dtypes of scalar operands, conversion, creation
and assignment (``asarray``, ``astype``, ``assign``, ``axpby``), and ``jit``.

Runs on any backend through the ``backend`` fixture. Oracles are float64 NumPy
formulas written here (and Python's own arithmetic for scalar operands); the values
and gradients of every math hook against finite differences are in
``test_ops.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from .test_ops import F32, log_softmax64, read, sigmoid64, softmax64

RTOL, ATOL = 1e-5, 1e-6  # float32 values
GRAD_RTOL = 1e-4


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
