"""Conformance of the neural-network kernels: ``conv``, ``conv_transpose``, ``pool``.

Each case runs on the ``backend`` fixture with float32 NumPy inputs and is checked
three ways:

* the forward against the float64 direct-loop oracles of :mod:`.oracle_nn`;
* gradients from ``backend.value_and_grad`` of ``sum(out * cotangent)`` against
  central finite differences of that oracle (cached: the same for every backend);
* forward and gradients against ``torch.nn.functional`` in float64 (PyTorch's
  definitions are the contract's).

Max-pooling inputs are tie-free (distinct values at least 0.01 apart), so the tie
rule of the hookspec does not matter and finite differences are exact; they are all
negative, so a max pool that padded with zeros instead of ``-inf`` would fail.

Tolerances: float32 sums of up to ~100 products, so an absolute floor proportional
to the largest expected magnitude is added to ``rtol``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from unified_conformance.oracle_nn import conv64, conv_transpose64, pool64

SEED = 20240613
RTOL = 1e-5
GRAD_RTOL = 1e-4
EPS = 1e-6


@dataclass(frozen=True)
class Case:
    """One kernel call: the hook, the input shapes and the keyword arguments."""

    name: str
    hook: str  # "conv", "conv_transpose" or "pool"
    shapes: tuple[tuple[int, ...], ...]  # x, then weight and bias for the convs
    kwargs: dict[str, Any] = field(default_factory=dict)

    def call(self, table: Any, *arrays: Any) -> Any:
        """The hook through ``table`` (a backend table or ``unified.ops``)."""
        return getattr(table, self.hook)(*self._args(arrays), **self.kwargs)

    def oracle(self, *arrays: np.ndarray) -> np.ndarray:
        fn = {"conv": conv64, "conv_transpose": conv_transpose64, "pool": pool64}
        return fn[self.hook](*self._args(arrays), **self.kwargs)

    def torch(self, *tensors: Any) -> Any:
        import torch.nn.functional as F

        kw = self.kwargs
        nsp = len(self.shapes[0]) - 2
        args = self._args(tensors)
        if self.hook == "conv":
            fn = F.conv1d if nsp == 1 else F.conv2d
            return fn(*args, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
        if self.hook == "conv_transpose":
            fn = F.conv_transpose1d if nsp == 1 else F.conv_transpose2d
            return fn(
                *args,
                kw["stride"],
                kw["padding"],
                kw["output_padding"],
                kw["groups"],
                kw["dilation"],
            )
        (x,) = args[:1]
        window = (kw["kernel"], kw["stride"], kw["padding"])
        if args[1] == "max":
            fn = F.max_pool1d if nsp == 1 else F.max_pool2d
            return fn(x, *window, ceil_mode=kw["ceil_mode"])
        fn = F.avg_pool1d if nsp == 1 else F.avg_pool2d
        return fn(x, *window, kw["ceil_mode"], kw["count_include_pad"])

    def _args(self, arrays: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.hook == "pool":
            return (arrays[0], self.name.split("-")[0][:3])
        bias = arrays[2] if len(arrays) > 2 else None
        return (arrays[0], arrays[1], bias)

    def inputs(self) -> list[np.ndarray]:
        """Float32 inputs; tie-free negative values for max pooling."""
        rng = np.random.default_rng([SEED, *map(ord, self.name)])
        if self.name.startswith("max"):
            (shape,) = self.shapes
            size = int(np.prod(shape))
            values = -0.5 - 0.01 * rng.permutation(size) - rng.uniform(0, 0.004, size)
            return [values.reshape(shape).astype(np.float32)]
        return [rng.standard_normal(s).astype(np.float32) for s in self.shapes]


def _conv(name, x, w, bias, stride, padding, dilation, groups) -> Case:
    shapes = (x, w, (w[0],)) if bias else (x, w)
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return Case(name, "conv", shapes, kw)


def _conv_t(name, x, w, bias, stride, padding, output_padding, dilation, groups):
    shapes = (x, w, (w[1] * groups,)) if bias else (x, w)
    kw = {
        "stride": stride,
        "padding": padding,
        "output_padding": output_padding,
        "dilation": dilation,
        "groups": groups,
    }
    return Case(name, "conv_transpose", shapes, kw)


def _pool(name, x, kernel, stride, padding, ceil_mode, count_include_pad=True):
    kw = {
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "ceil_mode": ceil_mode,
        "count_include_pad": count_include_pad,
    }
    return Case(name, "pool", (x,), kw)


CASES: list[Case] = [
    _conv("conv-1d", (2, 3, 9), (4, 3, 3), True, (1,), (0,), (1,), 1),
    _conv(
        "conv-1d-stride-pad-dilation-groups",
        (2, 4, 11),
        (6, 2, 3),
        True,
        (2,),
        (2,),
        (2,),
        2,
    ),
    _conv("conv-1d-depthwise", (1, 3, 8), (3, 1, 4), False, (3,), (1,), (1,), 3),
    _conv("conv-2d", (2, 3, 6, 5), (4, 3, 3, 3), True, (1, 1), (1, 1), (1, 1), 1),
    _conv(
        "conv-2d-stride1-dilation-groups",
        (2, 4, 6, 7),
        (6, 2, 3, 2),
        True,
        (1, 1),
        (2, 1),
        (2, 1),
        2,
    ),
    _conv(
        "conv-2d-1x1-stride2",
        (2, 4, 7, 6),
        (6, 4, 1, 1),
        True,
        (2, 2),
        (0, 0),
        (1, 1),
        1,
    ),
    _conv(
        "conv-1d-1x1-stride3-groups", (2, 4, 10), (4, 2, 1), False, (3,), (0,), (1,), 2
    ),
    _conv("conv-2d-mixed", (2, 4, 7, 8), (6, 2, 3, 2), True, (2, 1), (1, 2), (1, 2), 2),
    _conv(
        "conv-2d-depthwise-x2-odd",
        (1, 3, 7, 5),
        (6, 1, 3, 3),
        False,
        (2, 2),
        (1, 0),
        (1, 1),
        3,
    ),
    _conv_t("conv_transpose-1d", (2, 3, 5), (3, 2, 3), True, (2,), (1,), (1,), (1,), 1),
    _conv_t(
        "conv_transpose-1d-dilation-groups",
        (1, 4, 4),
        (4, 1, 2),
        False,
        (1,),
        (0,),
        (0,),
        (3,),
        2,
    ),
    _conv_t(
        "conv_transpose-2d",
        (2, 2, 3, 4),
        (2, 3, 3, 3),
        True,
        (2, 2),
        (1, 1),
        (1, 0),
        (1, 1),
        1,
    ),
    _conv_t(
        "conv_transpose-2d-groups-dilation",
        (1, 4, 3, 3),
        (4, 2, 2, 3),
        True,
        (3, 2),
        (0, 1),
        (2, 1),
        (1, 2),
        2,
    ),
    _pool("max-1d", (2, 3, 9), (3,), (2,), (1,), False),
    _pool("max-1d-ceil", (2, 3, 10), (3,), (2,), (0,), True),
    _pool("max-2d", (2, 2, 7, 6), (3, 2), (2, 1), (1, 0), False),
    # in=5, k=2, s=2, p=1: ceil gives 4 windows, the last starting in the padding
    _pool("max-2d-ceil-drops-last", (1, 2, 5, 5), (2, 2), (2, 2), (1, 1), True),
    _pool("avg-1d", (2, 3, 10), (3,), (2,), (1,), False, True),
    _pool("avg-1d-ceil-exclude-pad", (2, 3, 10), (4,), (3,), (2,), True, False),
    _pool("avg-1d-ceil-partial", (2, 3, 10), (3,), (2,), (0,), True, True),
    _pool("avg-2d-ceil-drops-last", (1, 2, 5, 5), (2, 2), (2, 2), (1, 1), True, True),
    _pool("avg-2d-exclude-pad", (2, 2, 6, 7), (3, 2), (2, 3), (1, 1), False, False),
    _pool("avg-2d-ceil-include-pad", (2, 2, 7, 6), (3, 3), (2, 2), (1, 0), True, True),
    _pool("avg-2d-ceil-exclude-pad", (2, 2, 6, 7), (3, 2), (2, 3), (1, 1), True, False),
]
IDS = [c.name for c in CASES]


def _tolerance(expected: np.ndarray, rtol: float) -> dict[str, float]:
    return {"rtol": rtol, "atol": rtol * (1.0 + float(np.max(np.abs(expected))))}


def _cotangent(case: Case) -> np.ndarray:
    shape = case.oracle(*[x.astype(np.float64) for x in case.inputs()]).shape
    return np.random.default_rng(SEED + 1).standard_normal(shape).astype(np.float32)


@functools.cache
def _oracle_gradients(name: str) -> list[np.ndarray]:
    """Central differences of ``sum(oracle(*inputs) * cotangent)`` (float64)."""
    case = next(c for c in CASES if c.name == name)
    xs = [x.astype(np.float64) for x in case.inputs()]
    ct = _cotangent(case).astype(np.float64)
    grads = []
    for i, x in enumerate(xs):
        g = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            plus, minus = [a.copy() for a in xs], [a.copy() for a in xs]
            plus[i][idx] += EPS
            minus[i][idx] -= EPS
            diff = np.sum(case.oracle(*plus) * ct) - np.sum(case.oracle(*minus) * ct)
            g[idx] = diff / (2 * EPS)
        grads.append(g)
    return grads


def _backend_value_and_grads(backend: Any, case: Case):
    xs = [backend.asarray(x, "float32") for x in case.inputs()]
    ct = backend.asarray(_cotangent(case), "float32")

    def loss(arrays: list[Any]) -> Any:
        return backend.sum(
            backend.multiply(case.call(backend, *arrays), ct), None, False
        )

    _, grads = backend.value_and_grad(loss, xs)
    return [np.asarray(backend.to_numpy(g), np.float64) for g in grads]


def _torch_value_and_grads(case: Case) -> tuple[np.ndarray, list[np.ndarray]]:
    import torch

    ts = [
        torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in case.inputs()
    ]
    y = case.torch(*ts)
    ct = torch.tensor(_cotangent(case), dtype=torch.float64)
    grads = torch.autograd.grad((y * ct).sum(), ts)
    return y.detach().numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_matches_oracle(backend: Any, case: Case) -> None:
    """conv, conv_transpose and pool of float32 inputs equal the float64 loops."""
    xs = case.inputs()
    arrays = [backend.asarray(x, "float32") for x in xs]
    got = np.asarray(backend.to_numpy(case.call(backend, *arrays)))
    expected = case.oracle(*[x.astype(np.float64) for x in xs])
    assert got.shape == expected.shape, (
        f"{case.name}: shape {got.shape}, expected {expected.shape}"
    )
    assert got.dtype == np.float32, f"{case.name}: dtype {got.dtype}, expected float32"
    np.testing.assert_allclose(
        got, expected, **_tolerance(expected, RTOL), err_msg=case.name
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_match_oracle_differences(backend: Any, case: Case) -> None:
    """value_and_grad of sum(out * cotangent) w.r.t. every input (x, weight, bias)
    matches central differences of the oracle."""
    got = _backend_value_and_grads(backend, case)
    expected = _oracle_gradients(case.name)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(
            g, e, **_tolerance(e, GRAD_RTOL), err_msg=f"{case.name}: input {i}"
        )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch_functional(backend: Any, case: Case) -> None:
    """Forward and gradients equal torch.nn.functional's (float64) on the same data."""
    xs = [backend.asarray(x, "float32") for x in case.inputs()]
    got = np.asarray(backend.to_numpy(case.call(backend, *xs)), np.float64)
    expected, expected_grads = _torch_value_and_grads(case)
    assert got.shape == expected.shape, f"{case.name}: {got.shape} != {expected.shape}"
    np.testing.assert_allclose(
        got, expected, **_tolerance(expected, RTOL), err_msg=case.name
    )
    grads = _backend_value_and_grads(backend, case)
    for i, (g, e) in enumerate(zip(grads, expected_grads, strict=True)):
        np.testing.assert_allclose(
            g, e, **_tolerance(e, GRAD_RTOL), err_msg=f"{case.name}: input {i}"
        )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_oracle_matches_torch_functional(case: Case) -> None:
    """The oracle itself (and so every check against it) agrees with PyTorch."""
    expected, expected_grads = _torch_value_and_grads(case)
    np.testing.assert_allclose(
        case.oracle(*[x.astype(np.float64) for x in case.inputs()]),
        expected,
        rtol=1e-12,
        atol=1e-12,
    )
    for g, e in zip(_oracle_gradients(case.name), expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


def test_frozen_weight_bias_and_input_gradients(backend: Any) -> None:
    """With the weight a constant (frozen), conv and conv_transpose still give the
    gradients of the input and the bias."""
    for name in ("conv-2d-mixed", "conv_transpose-2d-groups-dilation"):
        case = next(c for c in CASES if c.name == name)
        x, w, b = case.inputs()
        weight = backend.asarray(w, "float32")
        ct = backend.asarray(_cotangent(case), "float32")

        def loss(
            arrays: list[Any], case: Case = case, weight: Any = weight, ct: Any = ct
        ) -> Any:
            out = case.call(backend, arrays[0], weight, arrays[1])
            return backend.sum(backend.multiply(out, ct), None, False)

        _, (gx, gb) = backend.value_and_grad(
            loss, [backend.asarray(x, "float32"), backend.asarray(b, "float32")]
        )
        expected = _oracle_gradients(name)
        for what, g, e in (("input", gx, expected[0]), ("bias", gb, expected[2])):
            np.testing.assert_allclose(
                np.asarray(backend.to_numpy(g), np.float64),
                e,
                **_tolerance(e, GRAD_RTOL),
                err_msg=f"{name}: {what} gradient with a frozen weight",
            )


@pytest.mark.requires("jit")
def test_kernels_under_jit(backend: Any) -> None:
    """conv, conv_transpose and pool (forward and value_and_grad) inside backend.jit."""
    chosen = [CASES[4], CASES[9], CASES[13], CASES[20]]
    for case in chosen:
        xs = [backend.asarray(x, "float32") for x in case.inputs()]
        ct = backend.asarray(_cotangent(case), "float32")

        def step(arrays: list[Any], case: Case = case, ct: Any = ct) -> Any:
            def loss(a: list[Any]) -> Any:
                return backend.sum(
                    backend.multiply(case.call(backend, *a), ct), None, False
                )

            _, grads = backend.value_and_grad(loss, arrays)
            return [case.call(backend, *arrays), grads]

        out, grads = backend.jit(step)(xs)
        expected = case.oracle(*[x.astype(np.float64) for x in case.inputs()])
        np.testing.assert_allclose(
            np.asarray(backend.to_numpy(out)),
            expected,
            **_tolerance(expected, RTOL),
            err_msg=f"{case.name} under jit",
        )
        for i, (g, e) in enumerate(
            zip(grads, _oracle_gradients(case.name), strict=True)
        ):
            np.testing.assert_allclose(
                np.asarray(backend.to_numpy(g), np.float64),
                e,
                **_tolerance(e, GRAD_RTOL),
                err_msg=f"{case.name} under jit: input {i}",
            )


def test_ops_namespace_exposes_the_kernels(backend: Any) -> None:
    """``unified.ops.conv`` etc. are the active backend's hooks."""
    from unified import ops

    case = CASES[3]
    xs = [backend.asarray(x, "float32") for x in case.inputs()]
    got = np.asarray(backend.to_numpy(case.call(ops, *xs)))
    expected = case.oracle(*[x.astype(np.float64) for x in case.inputs()])
    np.testing.assert_allclose(got, expected, **_tolerance(expected, RTOL))
    assert ops.conv_transpose.__wrapped__ is backend.conv_transpose
    assert ops.pool.__wrapped__ is backend.pool


def _bad_output_padding(b: Any, x: Any) -> Any:
    w = b.asarray(np.ones((2, 1, 3), np.float32), "float32")
    return b.conv_transpose(x, w, None, (2,), (0,), (2,), (1,), 1)


INVALID: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("conv_transpose output_padding >= stride", _bad_output_padding),
    (
        "pool padding > kernel / 2",
        lambda b, x: b.pool(x, "max", (2,), (1,), (2,), False, True),
    ),
    ("pool mode", lambda b, x: b.pool(x, "sum", (2,), (1,), (0,), False, True)),
]


@pytest.mark.parametrize("call", [c[1] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_arguments_raise_value_error(backend: Any, call: Callable) -> None:
    """Arguments outside the contract raise ValueError on every backend."""
    x = backend.asarray(np.ones((1, 2, 6), np.float32), "float32")
    with pytest.raises(ValueError):
        call(backend, x)


def test_one_by_one_conv_is_a_channel_matmul(backend):
    """A 1x1 ``conv`` called directly equals a float64 einsum over channels."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    w = rng.standard_normal((6, 3, 1, 1)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    got = backend.conv(
        backend.asarray(x, "float32"),
        backend.asarray(w, "float32"),
        backend.asarray(bias, "float32"),
        (1, 1),
        (0, 0),
        (1, 1),
        1,
    )
    expected = np.einsum("nchw,oc->nohw", x.astype(np.float64), w[:, :, 0, 0]) + bias[
        None, :, None, None
    ].astype(np.float64)
    np.testing.assert_allclose(
        np.asarray(backend.to_numpy(got)), expected, rtol=1e-5, atol=1e-5
    )


def _max_pool_first_max64(x: np.ndarray, k: int, s: int, p: int, g: np.ndarray):
    """Float64 loops: 2-d max pooling (padding -inf) and the gradient of
    ``sum(out * g)`` sent to the first maximum of each window (row-major order; a
    NaN counts as the maximum, as in ``numpy.argmax``)."""
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * p, w + 2 * p), -np.inf)
    xp[:, :, p : p + h, p : p + w] = x
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y, dxp = np.zeros((n, c, oh, ow)), np.zeros_like(xp)
    for i, j, a, b in np.ndindex(n, c, oh, ow):
        window = xp[i, j, a * s : a * s + k, b * s : b * s + k]
        r, q = divmod(int(np.argmax(window)), k)
        y[i, j, a, b] = window[r, q]
        dxp[i, j, a * s + r, b * s + q] += g[i, j, a, b]
    return y, dxp[:, :, p : p + h, p : p + w]


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_gradient_goes_to_the_first_maximum(backend, k, s, p):
    """Inputs full of ties (ReLU-like zeros, repeated integers): each window's
    gradient goes to its first maximum only, as the hookspec states."""
    rng = np.random.default_rng(5)
    x = np.maximum(rng.integers(-2, 3, (2, 3, 6, 6)), 0).astype(np.float32)
    out_shape = (2, 3, (6 + 2 * p - k) // s + 1, (6 + 2 * p - k) // s + 1)
    g = rng.standard_normal(out_shape).astype(np.float32)
    want_y, want_dx = _max_pool_first_max64(x.astype(np.float64), k, s, p, g)
    ct = backend.asarray(g, "float32")

    def loss(arrays: list[Any]) -> Any:
        out = backend.pool(arrays[0], "max", (k, k), (s, s), (p, p), False, True)
        return backend.sum(backend.multiply(out, ct), None, False)

    _, (dx,) = backend.value_and_grad(loss, [backend.asarray(x, "float32")])
    y = backend.pool(backend.asarray(x, "float32"), "max", (k, k), (s, s), (p, p),
                     False, True)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(backend.to_numpy(y)), want_y)
    np.testing.assert_allclose(
        np.asarray(backend.to_numpy(dx), np.float64), want_dx, rtol=1e-6, atol=1e-6
    )
