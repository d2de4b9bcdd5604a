"""Gradient checks of the NumPy backend's tape against central finite differences.

Every differentiable hook of :data:`unified.hookspecs.MATH_HOOKS` is differentiated
through ``value_and_grad`` in float64 and compared with central differences of the
same function evaluated on plain arrays. Inputs are drawn from a seeded generator and
kept away from kinks (0 for relu/abs, ties for maximum/minimum/max) except in the
tests that pin the tie rules of the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from unified import plugins
from unified.hookspecs import MATH_HOOKS

B = plugins.get_table("numpy")

EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-8  # for gradient entries that are (near) zero
SEED = 1234

Maker = Callable[[np.random.Generator], np.ndarray]


def normal(*shape: int) -> Maker:
    return lambda rng: rng.standard_normal(shape)


def positive(*shape: int) -> Maker:
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def away_from_zero(*shape: int) -> Maker:
    return lambda rng: rng.uniform(0.3, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def numeric_grads(f: Callable[[list[np.ndarray]], Any], arrays: list[np.ndarray]):
    """Central differences of scalar ``f`` for every entry of every array."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i][idx] += EPS
            minus[i][idx] -= EPS
            g[idx] = (float(f(plus)) - float(f(minus))) / (2 * EPS)
        grads.append(g)
    return grads


def check_gradients(op: Callable[..., Any], arrays: list[np.ndarray]) -> None:
    """Compare the tape's gradient of ``sum(op(*arrays) * w)`` with finite differences
    (``w`` fixed random weights, so every output entry counts differently)."""
    w = np.random.default_rng(SEED + 1).standard_normal(np.shape(op(*arrays)))

    def loss(xs: list[Any]) -> Any:
        return B.sum(B.multiply(op(*xs), w))

    originals = [a.copy() for a in arrays]
    value, grads = B.value_and_grad(loss, arrays)
    expected = numeric_grads(loss, arrays)
    assert isinstance(value, np.ndarray) and value.shape == ()
    np.testing.assert_allclose(value, loss(arrays), rtol=1e-12)
    assert len(grads) == len(arrays)
    for i, (g, e, a) in enumerate(zip(grads, expected, arrays, strict=True)):
        assert type(g) is np.ndarray, f"input {i}: gradient is {type(g)}"
        assert g.shape == a.shape and g.dtype == a.dtype, f"input {i}"
        np.testing.assert_allclose(
            g, e, rtol=RTOL, atol=ATOL, err_msg=f"gradient of input {i}"
        )
    for a, o in zip(arrays, originals, strict=True):
        np.testing.assert_array_equal(a, o, err_msg="an input was modified")


# (id, op, input makers); ops take and return arrays or Nodes
CASES: list[tuple[str, Callable[..., Any], list[Maker]]] = [
    # elementwise binary, same shape, broadcast, scalar operands
    ("add", lambda a, b: B.add(a, b), [normal(3, 4), normal(3, 4)]),
    ("add-bcast-row", lambda a, b: B.add(a, b), [normal(3, 4), normal(4)]),
    ("add-bcast-both", lambda a, b: B.add(a, b), [normal(3, 1), normal(1, 4)]),
    ("add-bcast-3d", lambda a, b: B.add(a, b), [normal(2, 3, 4), normal(3, 1)]),
    ("add-0d", lambda a, b: B.add(a, b), [normal(3, 4), normal()]),
    ("add-scalar-right", lambda a: B.add(a, 2.5), [normal(3, 4)]),
    ("add-scalar-left", lambda a: B.add(2.5, a), [normal(3, 4)]),
    ("subtract", lambda a, b: B.subtract(a, b), [normal(3, 4), normal(3, 4)]),
    ("subtract-bcast", lambda a, b: B.subtract(a, b), [normal(4), normal(2, 3, 4)]),
    ("subtract-scalar-left", lambda a: B.subtract(1.5, a), [normal(3, 4)]),
    ("subtract-scalar-right", lambda a: B.subtract(a, 1.5), [normal(3, 4)]),
    ("multiply", lambda a, b: B.multiply(a, b), [normal(3, 4), normal(3, 4)]),
    ("multiply-bcast", lambda a, b: B.multiply(a, b), [normal(2, 1, 4), normal(3, 1)]),
    ("multiply-scalar-left", lambda a: B.multiply(-3.0, a), [normal(3, 4)]),
    ("multiply-scalar-right", lambda a: B.multiply(a, 2), [normal(3, 4)]),
    ("divide", lambda a, b: B.divide(a, b), [normal(3, 4), positive(3, 4)]),
    ("divide-bcast", lambda a, b: B.divide(a, b), [normal(3, 4), positive(3, 1)]),
    ("divide-scalar-left", lambda a: B.divide(1.5, a), [positive(3, 4)]),
    ("divide-scalar-right", lambda a: B.divide(a, 4.0), [normal(3, 4)]),
    ("maximum", lambda a, b: B.maximum(a, b), [normal(3, 4), normal(3, 4)]),
    ("maximum-bcast", lambda a, b: B.maximum(a, b), [normal(3, 4), normal(4)]),
    ("maximum-scalar", lambda a: B.maximum(a, 0.1), [normal(3, 4)]),
    ("minimum", lambda a, b: B.minimum(a, b), [normal(3, 4), normal(3, 4)]),
    ("minimum-bcast", lambda a, b: B.minimum(a, b), [normal(3, 1), normal(3, 4)]),
    ("minimum-scalar", lambda a: B.minimum(0.1, a), [normal(3, 4)]),
    ("power-2", lambda a: B.power(a, 2), [normal(3, 4)]),
    ("power-3", lambda a: B.power(a, 3.0), [normal(3, 4)]),
    ("power-half", lambda a: B.power(a, 0.5), [positive(3, 4)]),
    ("power-neg", lambda a: B.power(a, -1.5), [positive(3, 4)]),
    ("power-frac", lambda a: B.power(a, 2.7), [positive(3, 4)]),
    # elementwise unary
    ("negative", lambda a: B.negative(a), [normal(3, 4)]),
    ("exp", lambda a: B.exp(a), [normal(3, 4)]),
    ("log", lambda a: B.log(a), [positive(3, 4)]),
    ("log1p", lambda a: B.log1p(a), [lambda rng: rng.uniform(-0.5, 2.0, (3, 4))]),
    ("sqrt", lambda a: B.sqrt(a), [positive(3, 4)]),
    ("square", lambda a: B.square(a), [normal(3, 4)]),
    ("abs", lambda a: B.abs(a), [away_from_zero(3, 4)]),
    # activations
    ("relu", lambda a: B.relu(a), [away_from_zero(3, 4)]),
    ("sigmoid", lambda a: B.sigmoid(a), [lambda rng: 3 * rng.standard_normal((3, 4))]),
    ("tanh", lambda a: B.tanh(a), [normal(3, 4)]),
    ("softmax", lambda a: B.softmax(a), [normal(3, 5)]),
    ("softmax-axis0", lambda a: B.softmax(a, axis=0), [normal(3, 5)]),
    ("softmax-3d-axis1", lambda a: B.softmax(a, 1), [normal(2, 3, 4)]),
    ("log_softmax", lambda a: B.log_softmax(a), [normal(3, 5)]),
    ("log_softmax-axis0", lambda a: B.log_softmax(a, axis=0), [normal(3, 5)]),
    ("log_softmax-3d-axis1", lambda a: B.log_softmax(a, 1), [normal(2, 3, 4)]),
    # linear algebra
    ("matmul", lambda a, b: B.matmul(a, b), [normal(3, 4), normal(4, 2)]),
    ("matmul-batched", lambda a, b: B.matmul(a, b), [normal(2, 3, 4), normal(2, 4, 5)]),
    (
        "matmul-bcast-batch",
        lambda a, b: B.matmul(a, b),
        [normal(2, 3, 4), normal(4, 2)],
    ),
    (
        "matmul-bcast-4d",
        lambda a, b: B.matmul(a, b),
        [normal(2, 1, 3, 4), normal(3, 4, 2)],
    ),
    ("matmul-vec-mat", lambda a, b: B.matmul(a, b), [normal(4), normal(2, 4, 3)]),
    ("matmul-mat-vec", lambda a, b: B.matmul(a, b), [normal(2, 3, 4), normal(4)]),
    ("matmul-vec-vec", lambda a, b: B.matmul(a, b), [normal(4), normal(4)]),
    (
        "linear-bias",
        lambda x, w, b: B.linear(x, w, b),
        [normal(5, 4), normal(3, 4), normal(3)],
    ),
    ("linear-no-bias", lambda x, w: B.linear(x, w), [normal(5, 4), normal(3, 4)]),
    (
        "linear-bias-none",
        lambda x, w: B.linear(x, w, None),
        [normal(5, 4), normal(3, 4)],
    ),
    (
        "linear-3d",
        lambda x, w, b: B.linear(x, w, b),
        [normal(2, 3, 4), normal(5, 4), normal(5)],
    ),
    (
        "linear-1d",
        lambda x, w, b: B.linear(x, w, b),
        [normal(4), normal(3, 4), normal(3)],
    ),
    # reductions
    ("sum", lambda a: B.sum(a), [normal(2, 3, 4)]),
    ("sum-axis0", lambda a: B.sum(a, axis=0), [normal(2, 3, 4)]),
    ("sum-axis-neg", lambda a: B.sum(a, axis=-1), [normal(2, 3, 4)]),
    ("sum-axis-tuple", lambda a: B.sum(a, axis=(0, 2)), [normal(2, 3, 4)]),
    ("sum-keepdims", lambda a: B.sum(a, axis=1, keepdims=True), [normal(2, 3, 4)]),
    ("sum-none-keepdims", lambda a: B.sum(a, None, True), [normal(2, 3)]),
    ("sum-tuple-keepdims", lambda a: B.sum(a, (0, -1), True), [normal(2, 3, 4)]),
    ("mean", lambda a: B.mean(a), [normal(2, 3, 4)]),
    ("mean-axis0", lambda a: B.mean(a, axis=0), [normal(2, 3, 4)]),
    ("mean-axis-tuple", lambda a: B.mean(a, axis=(1, 2)), [normal(2, 3, 4)]),
    ("mean-keepdims", lambda a: B.mean(a, axis=-1, keepdims=True), [normal(2, 3, 4)]),
    ("mean-none-keepdims", lambda a: B.mean(a, None, True), [normal(2, 3)]),
    ("max", lambda a: B.max(a), [normal(2, 3, 4)]),
    ("max-axis0", lambda a: B.max(a, axis=0), [normal(2, 3, 4)]),
    ("max-axis-tuple", lambda a: B.max(a, axis=(0, 2)), [normal(2, 3, 4)]),
    ("max-keepdims", lambda a: B.max(a, axis=1, keepdims=True), [normal(2, 3, 4)]),
    ("max-none-keepdims", lambda a: B.max(a, None, True), [normal(2, 3)]),
    # shapes and casts
    ("reshape", lambda a: B.reshape(a, (6, -1)), [normal(2, 3, 4)]),
    ("reshape-flat", lambda a: B.reshape(a, (-1,)), [normal(2, 3)]),
    ("transpose", lambda a: B.transpose(a), [normal(2, 3, 4)]),
    ("transpose-axes", lambda a: B.transpose(a, (1, 0, 2)), [normal(2, 3, 4)]),
    ("transpose-neg-axes", lambda a: B.transpose(a, (-1, 0, -2)), [normal(2, 3, 4)]),
    ("astype-same", lambda a: B.astype(a, "float64"), [normal(3, 4)]),
    # selection, shapes and indexing
    ("where", lambda a, b: B.where(B.greater(a, 0.0), a, b), [normal(3, 4), normal(4)]),
    ("where-scalar", lambda a: B.where(B.less(a, 0.2), 0.5, a), [normal(3, 4)]),
    ("where-mask01", lambda a: B.where(np.eye(3), a, B.exp(a)), [normal(3, 3)]),
    ("clip", lambda a: B.clip(a, -0.5, 0.7), [normal(3, 4)]),
    ("clip-open", lambda a: B.clip(a, None, 0.2), [normal(3, 4)]),
    ("erf", lambda a: B.erf(a), [lambda rng: 2.0 * rng.standard_normal((3, 4))]),
    (
        "concatenate",
        lambda a, b: B.concatenate([a, b, a], -1),
        [normal(2, 3), normal(2, 1)],
    ),
    ("stack", lambda a, b: B.stack([a, b], 1), [normal(2, 3), normal(2, 3)]),
    (
        "split",
        lambda a: B.concatenate(B.split(a, [1, 3], 1)[::-1], 1),
        [normal(2, 5)],
    ),
    (
        "split-equal",
        lambda a: B.multiply(*B.split(a, 2, 0)),
        [normal(4, 3)],
    ),
    ("pad", lambda a: B.pad(a, [(1, 0), (2, 3)], 1.5), [normal(2, 3)]),
    ("take", lambda a: B.take(a, np.array([[2, 0], [2, 2]]), 0), [normal(3, 4)]),
    ("take-axis1", lambda a: B.take(a, np.array([1, 1, 0]), 1), [normal(2, 3)]),
    ("slice_axis", lambda a: B.slice_axis(a, 1, 1, -1), [normal(2, 5, 2)]),
    # convolution and pooling kernels (the NumPy im2col/col2im and its tape rules)
    (
        "conv-2d-groups",
        lambda x, w, b: B.conv(x, w, b, (2, 1), (1, 2), (1, 2), 2),
        [normal(2, 4, 5, 6), normal(4, 2, 3, 2), normal(4)],
    ),
    (
        "conv-1d-depthwise",
        lambda x, w: B.conv(x, w, None, (2,), (1,), (2,), 3),
        [normal(1, 3, 9), normal(3, 1, 3)],
    ),
    (
        "conv_transpose-2d",
        lambda x, w, b: B.conv_transpose(x, w, b, (2, 3), (1, 0), (1, 2), (1, 2), 2),
        [normal(1, 4, 3, 3), normal(4, 1, 2, 2), normal(2)],
    ),
    (
        "pool-max-ceil",
        lambda x: B.pool(x, "max", (3, 2), (2, 2), (1, 1), True, True),
        [lambda rng: rng.permutation(2 * 5 * 6).reshape(1, 2, 5, 6) * 0.01 - 1.0],
    ),
    (
        "pool-avg-ceil",
        lambda x: B.pool(x, "avg", (3,), (2,), (1,), True, False),
        [normal(2, 2, 8)],
    ),
    # compositions: several ops and the same input on several paths
    (
        "mlp",
        lambda x, w, b: B.mean(B.log_softmax(B.relu(B.linear(x, w, b)))),
        [normal(4, 3), normal(5, 3), positive(5)],
    ),
    (
        "reuse-mixed",
        lambda a, b: B.add(B.multiply(B.tanh(a), b), B.divide(a, B.exp(b))),
        [normal(3, 4), normal(3, 4)],
    ),
]

DIFFERENTIABLE_OPS = {case[0].split("-")[0] for case in CASES} - {"mlp", "reuse"}
NOT_DIFFERENTIABLE = {
    "one_hot",
    "zeros",
    "zeros_like",
    "greater",
    "less",
    "equal",
    "argmax",
}


def test_every_math_hook_is_covered() -> None:
    """Every math hook has a gradient check here or is documented as a constant."""
    assert set(MATH_HOOKS) == DIFFERENTIABLE_OPS | NOT_DIFFERENTIABLE


@pytest.mark.parametrize(
    ("op", "makers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_gradient_matches_finite_differences(
    op: Callable[..., Any], makers: list[Maker]
) -> None:
    """The tape's gradient of each op equals central differences (float64)."""
    rng = np.random.default_rng(SEED)
    check_gradients(op, [make(rng) for make in makers])


# ----------------------------------------------------------------------------------
# astype
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst"), [("float64", "float32"), ("float32", "float64")]
)
def test_astype_passes_gradient_back_in_input_dtype(src: str, dst: str) -> None:
    """astype is differentiable and the gradient comes back in the input's dtype."""
    x = np.random.default_rng(SEED).standard_normal((3, 4)).astype(src)
    w = np.random.default_rng(SEED + 1).standard_normal((3, 4)).astype(dst)
    value, (g,) = B.value_and_grad(
        lambda xs: B.sum(B.multiply(B.astype(xs[0], dst), w)), [x]
    )
    assert value.dtype == np.dtype(dst)
    assert g.dtype == np.dtype(src)
    np.testing.assert_allclose(g, w.astype(src), rtol=1e-7)


def test_astype_to_integer_is_a_constant() -> None:
    """A cast to an integer dtype cuts the graph: the input's gradient is zero."""
    x = np.array([1.5, 2.5, -3.5])
    value, (g,) = B.value_and_grad(
        lambda xs: B.sum(B.astype(B.astype(xs[0], "int64"), "float64")), [x]
    )
    assert float(value) == 0.0  # trunc: 1 + 2 - 3
    np.testing.assert_array_equal(g, np.zeros(3))


# ----------------------------------------------------------------------------------
# The rules the contract fixes at non-differentiable points
# ----------------------------------------------------------------------------------


def grads_of(fn: Callable[[list[Any]], Any], *arrays: np.ndarray) -> list[np.ndarray]:
    return B.value_and_grad(fn, list(arrays))[1]


def test_relu_gradient_at_zero_is_zero() -> None:
    """relu'(0) = 0, relu' = 1 above 0 and 0 below."""
    (g,) = grads_of(lambda xs: B.sum(B.relu(xs[0])), np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0])


def test_abs_gradient_at_zero_is_zero() -> None:
    """abs'(0) = 0 and abs' = sign(x) elsewhere."""
    (g,) = grads_of(lambda xs: B.sum(B.abs(xs[0])), np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_split_gradient_on_ties(name: str) -> None:
    """maximum/minimum give half of the gradient to each operand where they tie."""
    op = getattr(B, name)
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 0.0, 5.0])
    ga, gb = grads_of(lambda xs: B.sum(op(xs[0], xs[1])), a, b)
    picked_a = [0.5, 1.0, 0.0] if name == "maximum" else [0.5, 0.0, 1.0]
    np.testing.assert_array_equal(ga, picked_a)
    np.testing.assert_array_equal(gb, 1.0 - np.array(picked_a))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_with_broadcast_and_self(name: str) -> None:
    """Tie halves are summed back over broadcasting, and op(x, x) has gradient 1."""
    op = getattr(B, name)
    a = np.array([[1.0, 2.0], [2.0, 2.0]])
    s = np.array(2.0)
    ga, gs = grads_of(lambda xs: B.sum(op(xs[0], xs[1])), a, s)
    if name == "maximum":
        np.testing.assert_array_equal(ga, [[0.0, 0.5], [0.5, 0.5]])
        assert float(gs) == 1.0 + 1.5
    else:
        np.testing.assert_array_equal(ga, [[1.0, 0.5], [0.5, 0.5]])
        assert float(gs) == 1.5
    (gx,) = grads_of(lambda xs: B.sum(op(xs[0], xs[0])), a)
    np.testing.assert_array_equal(gx, np.ones_like(a))


def test_max_shares_gradient_evenly_among_tied_maxima() -> None:
    """The max reduction splits the gradient evenly among all entries equal to it."""
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    (g,) = grads_of(lambda xs: B.sum(B.max(xs[0], axis=1)), x)
    np.testing.assert_allclose(g, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)
    (g,) = grads_of(lambda xs: B.max(xs[0]), x)
    np.testing.assert_array_equal(g, [[0, 0.5, 0.5], [0, 0, 0]])
    (g,) = grads_of(lambda xs: B.sum(B.max(xs[0], axis=0, keepdims=True)), x)
    np.testing.assert_array_equal(g, [[0, 1, 1], [1, 0, 0]])


def test_one_hot_is_not_differentiable() -> None:
    """one_hot of a traced array is a constant: its input's gradient is zero."""
    labels = np.array([0.0, 2.0, 1.0])
    w = np.arange(9.0).reshape(3, 3)
    (gl, gw) = grads_of(
        lambda xs: B.sum(B.multiply(B.one_hot(xs[0], 3, "float64"), xs[1])), labels, w
    )
    np.testing.assert_array_equal(gl, np.zeros(3))
    np.testing.assert_array_equal(gw, np.eye(3)[[0, 2, 1]])


def test_zeros_like_is_a_constant() -> None:
    """zeros_like of a traced array carries no gradient."""
    x = np.array([1.0, 2.0])
    (g,) = grads_of(lambda xs: B.sum(B.add(B.zeros_like(xs[0]), 1.0)), x)
    np.testing.assert_array_equal(g, [0.0, 0.0])


# ----------------------------------------------------------------------------------
# value_and_grad as a whole
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_unused_input_gets_zeros(dtype: str) -> None:
    """An input fn never touches gets zeros of its own shape and dtype."""
    x = np.array([1.0, 2.0])
    unused = np.ones((2, 3), dtype=dtype)
    value, (gx, gu) = B.value_and_grad(lambda xs: B.sum(B.square(xs[0])), [x, unused])
    assert float(value) == 5.0
    np.testing.assert_array_equal(gx, [2.0, 4.0])
    assert gu.shape == (2, 3) and gu.dtype == np.dtype(dtype) and not gu.any()


def test_constant_result_gives_zero_gradients() -> None:
    """fn returning a constant (no input used) gives its value and zero gradients."""
    value, (g,) = B.value_and_grad(lambda xs: np.float64(3.0), [np.ones(2)])
    assert value.shape == () and float(value) == 3.0
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_value_used_twice_sums_gradients() -> None:
    """A value used on several paths receives the sum of their gradients."""
    x = np.array([1.0, -2.0, 3.0])
    (g,) = grads_of(lambda xs: B.add(B.sum(B.multiply(xs[0], xs[0])), B.sum(xs[0])), x)
    np.testing.assert_allclose(g, 2 * x + 1, rtol=1e-15)
    (g,) = grads_of(lambda xs: B.sum(B.add(xs[0], xs[0])), x)
    np.testing.assert_array_equal(g, [2.0, 2.0, 2.0])

    # an intermediate used twice
    def f(xs: list[Any]) -> Any:
        h = B.exp(xs[0])
        return B.sum(B.multiply(h, h))

    (g,) = grads_of(f, x)
    np.testing.assert_allclose(g, 2 * np.exp(2 * x), rtol=1e-14)


def test_value_is_a_fresh_0d_array_and_size_one_results_are_accepted() -> None:
    """The value is a 0-d ndarray, also when fn returns a (1,)-shaped result."""
    x = np.array([2.0])
    value, (g,) = B.value_and_grad(lambda xs: B.multiply(xs[0], 3.0), [x])
    assert type(value) is np.ndarray and value.shape == () and float(value) == 6.0
    np.testing.assert_array_equal(g, [3.0])


def test_non_scalar_result_is_rejected() -> None:
    """fn returning several values raises a ValueError that says to reduce them."""
    with pytest.raises(ValueError, match="scalar"):
        B.value_and_grad(lambda xs: B.multiply(xs[0], 2.0), [np.ones(3)])


def test_no_state_leaks_between_calls() -> None:
    """Two calls give the same results; inputs and earlier gradients stay untouched."""
    rng = np.random.default_rng(SEED)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    x0, w0 = x.copy(), w.copy()

    def f(xs: list[Any]) -> Any:
        return B.sum(B.tanh(B.linear(xs[0], xs[1])))

    v1, g1 = B.value_and_grad(f, [x, w])
    kept = [g.copy() for g in g1]
    v2, g2 = B.value_and_grad(f, [x, w])
    assert float(v1) == float(v2)
    for a, b, k in zip(g1, g2, kept, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, k)  # the second call did not write into it
        assert a is not b
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    assert type(x) is np.ndarray and type(w) is np.ndarray
    # a different function on the same arrays sees nothing of the first graph
    _, (gx,) = B.value_and_grad(lambda xs: B.sum(xs[0]), [x])
    np.testing.assert_array_equal(gx, np.ones_like(x))


def test_gradients_are_independent_writable_arrays() -> None:
    """Each gradient is its own writable array, even when two inputs share one."""
    a, b = np.ones(3), np.ones(3)
    _, (ga, gb) = B.value_and_grad(lambda xs: B.sum(B.add(xs[0], xs[1])), [a, b])
    assert ga.flags.writeable and gb.flags.writeable
    ga *= 10
    np.testing.assert_array_equal(gb, np.ones(3))


def test_float32_stays_float32_on_the_tape() -> None:
    """With float32 inputs and Python scalars, value and gradients stay float32."""
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)

    def f(xs: list[Any]) -> Any:
        y = B.mean(B.sigmoid(B.multiply(2.0, B.power(xs[0], 2))))
        return B.divide(B.subtract(1, y), 3.0)

    value, (g,) = B.value_and_grad(f, [x])
    assert value.dtype == np.float32 and g.dtype == np.float32


def test_deep_graph_does_not_recurse() -> None:
    """A long chain of ops (deeper than the recursion limit) differentiates."""

    def f(xs: list[Any]) -> Any:
        y = xs[0]
        for _ in range(5000):
            y = B.add(y, 1.0)
        return B.sum(y)

    value, (g,) = B.value_and_grad(f, [np.zeros(2)])
    assert float(value) == 10000.0
    np.testing.assert_array_equal(g, [1.0, 1.0])


# ----------------------------------------------------------------------------------
# Node: attributes and operators
# ----------------------------------------------------------------------------------


def test_node_attributes() -> None:
    """Nodes expose shape, dtype, ndim and T like the arrays they stand for."""
    seen = {}

    def f(xs: list[Any]) -> Any:
        x = xs[0]
        seen.update(shape=x.shape, dtype=x.dtype, ndim=x.ndim, t=x.T.shape, n=len(x))
        return B.sum(x)

    B.value_and_grad(f, [np.ones((2, 3), dtype=np.float32)])
    assert seen == {
        "shape": (2, 3),
        "dtype": np.float32,
        "ndim": 2,
        "t": (3, 2),
        "n": 2,
    }


OPERATOR_CASES: list[tuple[str, Callable[..., Any], list[Maker]]] = [
    ("add", lambda a, b: a + b, [normal(3, 4), normal(4)]),
    ("radd-scalar", lambda a: 2.0 + a, [normal(3, 4)]),
    ("sub", lambda a, b: a - b, [normal(3, 4), normal(3, 1)]),
    ("rsub-scalar", lambda a: 2.0 - a, [normal(3, 4)]),
    ("mul", lambda a, b: a * b, [normal(3, 4), normal(3, 4)]),
    ("rmul-scalar", lambda a: 3 * a, [normal(3, 4)]),
    ("truediv", lambda a, b: a / b, [normal(3, 4), positive(3, 4)]),
    ("rtruediv-scalar", lambda a: 1.0 / a, [positive(3, 4)]),
    ("matmul", lambda a, b: a @ b, [normal(3, 4), normal(4, 2)]),
    ("neg", lambda a: -a, [normal(3, 4)]),
    ("pow", lambda a: a**3, [normal(3, 4)]),
    ("T", lambda a: a.T, [normal(3, 4)]),
    ("getitem-slice", lambda a: a[1:, ::2], [normal(3, 4)]),
    ("getitem-int", lambda a: a[1], [normal(3, 4)]),
    ("getitem-ellipsis-none", lambda a: a[..., None, 0], [normal(2, 3, 4)]),
    ("getitem-repeated-fancy", lambda a: a[[0, 0, 2, 0]], [normal(3, 4)]),
    (
        "getitem-mask",
        lambda a: a[np.arange(12).reshape(3, 4) % 3 == 0],
        [normal(3, 4)],
    ),
    (
        "chain",
        lambda a, b: (a * 2.0 - b[0] / 3.0) @ b.T + 1.0,
        [normal(3, 4), positive(2, 4)],
    ),
]


@pytest.mark.parametrize(
    ("op", "makers"),
    [c[1:] for c in OPERATOR_CASES],
    ids=[c[0] for c in OPERATOR_CASES],
)
def test_node_operators(op: Callable[..., Any], makers: list[Maker]) -> None:
    """Python operators on Nodes record onto the tape like the op functions."""
    rng = np.random.default_rng(SEED)
    check_gradients(op, [make(rng) for make in makers])


@pytest.mark.parametrize(
    "op",
    [lambda c, x: c + x, lambda c, x: c - x, lambda c, x: c * x, lambda c, x: c / x],
    ids=["add", "sub", "mul", "div"],
)
def test_ndarray_on_the_left_of_a_node(op: Callable[..., Any]) -> None:
    """``ndarray <op> node`` uses the Node's reflected operator, not an object array."""
    c = np.array([1.0, 2.0, 4.0])
    x = np.array([0.5, 1.5, 2.5])
    check_gradients(lambda a: op(c, a), [x])

    def f(xs: list[Any]) -> Any:
        out = op(c, xs[0])
        assert not isinstance(out, np.ndarray)
        return B.sum(out)

    B.value_and_grad(f, [x])


def test_asarray_of_a_node_stays_on_the_tape() -> None:
    """asarray inside fn (a cast of a traced array) keeps the gradient flowing."""
    x = np.array([1.0, 2.0], dtype=np.float32)
    _, (g,) = B.value_and_grad(
        lambda xs: B.sum(B.square(B.asarray(xs[0], "float64"))), [x]
    )
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [2.0, 4.0])


def test_nested_value_and_grad_is_rejected() -> None:
    """Differentiating through value_and_grad is refused with a clear TypeError."""

    def outer(xs: list[Any]) -> Any:
        _, (g,) = B.value_and_grad(lambda ys: B.sum(ys[0]), xs)
        return B.sum(g)

    with pytest.raises(TypeError, match="nested"):
        B.value_and_grad(outer, [np.ones(2)])


# ----------------------------------------------------------------------------------
# Node comparisons
# ----------------------------------------------------------------------------------


def test_node_comparisons_are_constant_masks() -> None:
    """Inside value_and_grad, ``node > 0`` and friends give plain boolean arrays
    that ``where`` accepts, and the gradient flows through the chosen branch."""
    x = np.array([-1.0, 0.0, 2.0])
    seen: dict[str, Any] = {}

    def f(a: list[Any]) -> Any:
        (v,) = a
        seen.update(gt=v > 0, lt=v < 0, ge=v >= 0, le=v <= 0, eq=v == 0, ne=v != 0)
        seen["rgt"] = 0 < v  # noqa: SIM300  (the reflected operator is the point)
        return B.sum(B.where(v > 0, B.multiply(v, 3.0), v))

    _, (g,) = B.value_and_grad(f, [x])
    expected = {
        "gt": [False, False, True],
        "lt": [True, False, False],
        "ge": [False, True, True],
        "le": [True, True, False],
        "eq": [False, True, False],
        "ne": [True, False, True],
        "rgt": [False, False, True],
    }
    for key, want in expected.items():
        got = seen[key]
        assert type(got) is np.ndarray and got.dtype == bool, key
        assert got.tolist() == want, key
    np.testing.assert_array_equal(g, [1.0, 1.0, 3.0])
