"""Activations of SPEC 13: ``unified.functional``, the layer classes, ``activation=``.

Every activation on every backend (``backend`` fixture), float32 inputs:

* values against float64 NumPy formulas written here (erf from ``math.erf``);
* gradients (``backend.value_and_grad`` and ``unified.value_and_grad`` through
  ``Dense(..., activation=name)``) against central finite differences of the
  formulas;
* the kink and saturation conventions against ``torch.nn.functional`` in float64
  (values and autograd gradients), the native framework as oracle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import unified as U
from unified import functional
from unified.layers.activations import ACTIVATIONS, activation_fn

RTOL, ATOL = 1e-5, 1e-6
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-5
EPS = 1e-6
SEED = 20240613

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


ORACLES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softrelu": lambda x: np.logaddexp(0.0, x),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "elu": _elu,
    "selu": lambda x: SELU_SCALE * _elu(x, SELU_ALPHA),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    "gelu_tanh": _gelu_tanh,
    "silu": lambda x: x / (1 + np.exp(-x)),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "relu6": lambda x: np.minimum(np.maximum(x, 0.0), 6.0),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
}


def _away_from_kinks(shape: tuple[int, ...], seed: int = SEED) -> np.ndarray:
    """Values in about [-8, 8], none within 0.05 of 0 or 6 (relu6's bounds)."""
    x = 3.0 * np.random.default_rng(seed).standard_normal(shape)
    for p in (0.0, 6.0):
        near = np.abs(x - p) < 0.05
        x[near] = p + np.where(x[near] >= p, 0.05, -0.05)
    return x.astype(np.float32)


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


def _read(backend: Any, x: Any) -> np.ndarray:
    return np.asarray(backend.to_numpy(x), dtype=np.float64)


def test_every_spec_activation_has_a_name() -> None:
    """The activation= strings of SPEC 13, each with an oracle here."""
    assert set(ACTIVATIONS) == set(ORACLES)
    with pytest.raises(ValueError, match="unknown activation"):
        U.Activation("gelu_erf")
    with pytest.raises(ValueError, match="unknown activation"):
        U.Dense(3, activation="leaky")
    with pytest.raises(ValueError, match="approximate"):
        U.GELU("erf")


# ----------------------------------------------------------------------------------
# Functions: values and gradients
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_activation_value_and_gradient(backend: Any, name: str) -> None:
    """activation_fn(name) on float32: values and input gradients vs the formula."""
    fn, oracle = activation_fn(name), ORACLES[name]
    x32 = _away_from_kinks((3, 5))
    x64 = x32.astype(np.float64)
    got = backend.to_numpy(fn(backend.asarray(x32, "float32")))
    assert got.dtype == np.float32, f"{name}: dtype {got.dtype}"
    np.testing.assert_allclose(got, oracle(x64), rtol=RTOL, atol=ATOL, err_msg=name)

    w32 = np.random.default_rng(SEED + 1).standard_normal((3, 5)).astype(np.float32)
    w = backend.asarray(w32, "float32")
    _, (g,) = backend.value_and_grad(
        lambda a: backend.sum(backend.multiply(fn(a[0]), w), None, False),
        [backend.asarray(x32, "float32")],
    )
    (expected,) = _finite_differences(
        lambda xs: float(np.sum(oracle(xs[0]) * w32)), [x64]
    )
    np.testing.assert_allclose(
        _read(backend, g),
        expected,
        rtol=GRAD_RTOL,
        atol=GRAD_ATOL,
        err_msg=f"gradient of {name}",
    )


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_dense_activation(backend: Any, name: str) -> None:
    """Dense(activation=name): output and parameter gradients (unified.value_and_grad)
    against ``act(x @ W.T + b)`` in float64 and its finite differences."""
    rng = np.random.default_rng(SEED + 2)
    x32 = rng.standard_normal((5, 3)).astype(np.float32)
    w32 = (2.0 * rng.standard_normal((4, 3))).astype(np.float32)
    b32 = rng.standard_normal(4).astype(np.float32)
    out_w = rng.standard_normal((5, 4))
    layer = U.Dense(4, activation=name, in_units=3)
    layer.initialize()
    layer.weight.set_data(w32)
    layer.bias.set_data(b32)  # type: ignore[union-attr]
    oracle = ORACLES[name]
    x64 = x32.astype(np.float64)

    def forward64(w: np.ndarray, b: np.ndarray) -> np.ndarray:
        return oracle(x64 @ w.T + b)

    x = backend.asarray(x32, "float32")
    np.testing.assert_allclose(
        _read(backend, layer(x)),
        forward64(w32.astype(np.float64), b32.astype(np.float64)),
        rtol=RTOL,
        atol=ATOL,
        err_msg=f"Dense(activation={name!r})",
    )
    weights = backend.asarray(out_w.astype(np.float32), "float32")
    step = U.value_and_grad(
        lambda net, v: backend.sum(backend.multiply(net(v), weights), None, False)
    )
    _, grads = step(layer, x)
    w_out = out_w.astype(np.float32).astype(np.float64)
    expected = _finite_differences(
        lambda ps: float(np.sum(forward64(ps[0], ps[1]) * w_out)),
        [w32.astype(np.float64), b32.astype(np.float64)],
    )
    for key, e in zip(("weight", "bias"), expected, strict=True):
        np.testing.assert_allclose(
            _read(backend, grads[key]),
            e,
            rtol=GRAD_RTOL,
            atol=GRAD_ATOL,
            err_msg=f"Dense(activation={name!r}) d{key}",
        )


# ----------------------------------------------------------------------------------
# Layer classes
# ----------------------------------------------------------------------------------

LAYERS: list[tuple[str, Callable[[], Any], Callable[[np.ndarray], np.ndarray]]] = [
    ("ReLU", U.ReLU, ORACLES["relu"]),
    ("Sigmoid", U.Sigmoid, ORACLES["sigmoid"]),
    ("Tanh", U.Tanh, np.tanh),
    ("Softplus", U.Softplus, ORACLES["softplus"]),
    ("SoftReLU", U.SoftReLU, ORACLES["softplus"]),
    ("LeakyReLU", U.LeakyReLU, ORACLES["leaky_relu"]),
    (
        "LeakyReLU(0.2)",
        lambda: U.LeakyReLU(0.2),
        lambda x: np.where(x > 0, x, 0.2 * x),
    ),
    ("ELU", U.ELU, _elu),
    ("ELU(0.5)", lambda: U.ELU(0.5), lambda x: _elu(x, 0.5)),
    ("SELU", U.SELU, ORACLES["selu"]),
    ("GELU", U.GELU, ORACLES["gelu"]),
    ("GELU(tanh)", lambda: U.GELU("tanh"), _gelu_tanh),
    ("SiLU", U.SiLU, ORACLES["silu"]),
    ("Swish", U.Swish, ORACLES["silu"]),
    ("ReLU6", U.ReLU6, ORACLES["relu6"]),
    ("Softmax", U.Softmax, _softmax),
    ("Softmax(axis=0)", lambda: U.Softmax(axis=0), lambda x: _softmax(x, 0)),
    ("LogSoftmax", U.LogSoftmax, _log_softmax),
    (
        "LogSoftmax(axis=0)",
        lambda: U.LogSoftmax(axis=0),
        lambda x: _log_softmax(x, 0),
    ),
    ("Activation(gelu_tanh)", lambda: U.Activation("gelu_tanh"), _gelu_tanh),
]


@pytest.mark.parametrize(
    ("make", "oracle"), [c[1:] for c in LAYERS], ids=[c[0] for c in LAYERS]
)
def test_layer_class(backend: Any, make: Callable[[], Any], oracle: Any) -> None:
    """Each activation layer: values and input gradients vs the float64 formula."""
    layer = make()
    x32 = _away_from_kinks((4, 3), SEED + 3)
    x64 = x32.astype(np.float64)
    np.testing.assert_allclose(
        _read(backend, layer(backend.asarray(x32, "float32"))),
        oracle(x64),
        rtol=RTOL,
        atol=ATOL,
        err_msg=repr(layer),
    )
    w32 = np.random.default_rng(SEED + 4).standard_normal((4, 3)).astype(np.float32)
    w = backend.asarray(w32, "float32")
    _, (g,) = backend.value_and_grad(
        lambda a: backend.sum(backend.multiply(layer(a[0]), w), None, False),
        [backend.asarray(x32, "float32")],
    )
    (expected,) = _finite_differences(
        lambda xs: float(np.sum(oracle(xs[0]) * w32)), [x64]
    )
    np.testing.assert_allclose(
        _read(backend, g),
        expected,
        rtol=GRAD_RTOL,
        atol=GRAD_ATOL,
        err_msg=f"gradient of {layer!r}",
    )


# ----------------------------------------------------------------------------------
# Against torch.nn.functional: kinks, tails, saturation
# ----------------------------------------------------------------------------------

# Every kink (0, and 6 for relu6), both sides of it, the tails.
POINTS = [
    -30.0,
    -8.0,
    -2.5,
    -1.0,
    -0.5,
    -1e-3,
    0.0,
    1e-3,
    0.5,
    1.0,
    2.5,
    6.0,
    8.0,
    30.0,
]


@pytest.mark.reference("torch")
def _torch_reference(name: str) -> Callable[[Any], Any]:
    import torch.nn.functional as F

    return {
        "gelu": lambda t: F.gelu(t),
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "elu": lambda t: F.elu(t),
        "selu": lambda t: F.selu(t),
        "softplus": lambda t: F.softplus(t),
        "silu": lambda t: F.silu(t),
        "leaky_relu": lambda t: F.leaky_relu(t),
        "relu6": lambda t: F.relu6(t),
    }[name]


@pytest.mark.parametrize(
    "name",
    ["gelu", "gelu_tanh", "elu", "selu", "softplus", "silu", "leaky_relu", "relu6"],
)
@pytest.mark.reference("torch")
def test_matches_torch_functional(backend: Any, name: str) -> None:
    """Values and gradients (kinks included) equal torch.nn.functional's in float64."""
    import torch

    ref = _torch_reference(name)
    t = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    expected = ref(t)
    (expected_grad,) = torch.autograd.grad(expected.sum(), [t])
    x = backend.asarray(np.array(POINTS, np.float32), "float32")
    fn = activation_fn(name)
    np.testing.assert_allclose(
        _read(backend, fn(x)),
        expected.detach().numpy(),
        rtol=RTOL,
        atol=ATOL,
        err_msg=f"{name} values vs torch",
    )
    _, (g,) = backend.value_and_grad(lambda a: backend.sum(fn(a[0]), None, False), [x])
    got = _read(backend, g)
    assert np.all(np.isfinite(got)), f"{name}: non-finite gradient {got}"
    np.testing.assert_allclose(
        got,
        expected_grad.numpy(),
        rtol=GRAD_RTOL,
        atol=GRAD_ATOL,
        err_msg=f"{name} gradients vs torch at {POINTS}",
    )


def test_functional_is_exported(backend: Any) -> None:
    """unified.functional is the module of the activations, leaky_relu's alpha works
    and the kink convention of clip differs from relu6's as documented."""
    assert U.functional is functional
    x = backend.asarray(np.array([-2.0, 0.0, 3.0, 6.0, 7.0], np.float32), "float32")
    np.testing.assert_allclose(
        _read(backend, functional.leaky_relu(x, 0.5)), [-1.0, 0.0, 3.0, 6.0, 7.0]
    )
    _, (g_clip,) = backend.value_and_grad(
        lambda a: backend.sum(functional.clip(a[0], 0.0, 6.0), None, False), [x]
    )
    _, (g_relu6,) = backend.value_and_grad(
        lambda a: backend.sum(functional.relu6(a[0]), None, False), [x]
    )
    np.testing.assert_array_equal(_read(backend, g_clip), [0.0, 1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(_read(backend, g_relu6), [0.0, 0.0, 1.0, 0.0, 0.0])
