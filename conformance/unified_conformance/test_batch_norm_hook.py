"""The optional fused ``batch_norm`` hook (capability ``batch_norm``) and
``BatchNorm``'s cheap inference path.

Oracles: float64 NumPy formulas written here (the hook called directly), and the
same ``BatchNorm`` layer composed of ``unified.ops`` (``fused = False``, itself
proven against float64 formulas, finite differences and ``torch.nn.functional``
in ``test_norm_dropout.py``): outputs, gradients of the input, ``gamma`` and
``beta``, and the running statistics after several training steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unified as U

from .helpers import assert_close, host, native

RNG = np.random.default_rng(21)
EPS = 1e-5

# (shape, channel axis)
CASES = {
    "2d": ((8, 3), 1),
    "4d": ((4, 6, 3, 2), 1),
    "3d-channels-last": ((4, 3, 5), 2),
    "2d-axis0": ((3, 7), 0),
    "one-value-per-channel": ((1, 3), 1),
}


def _oracle(x: np.ndarray, gamma: Any, beta: Any, axis: int):
    x = x.astype(np.float64)
    red = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    mean, var = x.mean(red), x.var(red)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + EPS)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y, mean, var


@pytest.mark.requires("batch_norm")
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_norm_hook_matches_oracle(backend: Any, case: str, affine: bool) -> None:
    """The hook itself: output, batch mean and biased batch variance."""
    shape, axis = CASES[case]
    x = (RNG.standard_normal(shape) * 3 + 1).astype(np.float32)
    c = shape[axis]
    gamma = np.linspace(0.5, 1.5, c).astype(np.float32) if affine else None
    beta = np.linspace(-0.3, 0.3, c).astype(np.float32) if affine else None
    y, mean, var = backend.batch_norm(
        native(backend, x),
        None if gamma is None else native(backend, gamma),
        None if beta is None else native(backend, beta),
        axis,
        EPS,
    )
    want_y, want_mean, want_var = _oracle(x, gamma, beta, axis)
    # One value per channel: x - mean is 0 up to rounding, which the kernels' fused
    # affine form (x * s - mean * s, s = 1/sqrt(eps) ~ 316) leaves as a few float32
    # ulps of |x| * s (the layer composes this case). The bound follows the data:
    # x depends on which tests drew from RNG before (the backends with the hook).
    atol = (
        4 * float(np.abs(x).max()) / np.sqrt(EPS) * float(np.finfo(np.float32).eps)
        if case == "one-value-per-channel"
        else 1e-6
    )
    assert_close(
        host(backend, y), want_y, f"{case} batch_norm output", rtol=1e-4, atol=atol
    )
    assert_close(host(backend, mean), want_mean, f"{case} batch mean", atol=1e-5)
    assert_close(host(backend, var), want_var, f"{case} batch variance", rtol=1e-5)


class Shift(U.Net):
    """Adds a trainable zero tensor to its input: its gradient is the input's."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shift = U.Parameter("shift", shape, init="zeros")

    def forward(self, x: Any) -> Any:
        return U.ops.add(x, self.shift.data())


LAYERS = {
    "4d": ((4, 6, 3, 2), lambda: U.BatchNorm()),
    "2d-biased": ((8, 3), lambda: U.BatchNorm(unbiased_running_var=False)),
    "channels-last-no-affine": (
        (4, 3, 5),
        lambda: U.BatchNorm(axis=-1, center=False, scale=False),
    ),
    "no-scale": ((4, 6, 3, 2), lambda: U.BatchNorm(scale=False)),
}


@pytest.mark.requires("batch_norm")
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_fused_batch_norm_equals_composition(backend: Any, name: str) -> None:
    """BatchNorm on the backend's batch_norm kernel equals the same layer composed of
    ops (fused=False): training-mode loss, gradients of the input, gamma and beta,
    and the running statistics after three training steps."""
    shape, make = LAYERS[name]
    x = (RNG.standard_normal(shape) * 2 - 0.5).astype(np.float32)
    w = native(backend, RNG.standard_normal(shape))
    results = []
    for fused in (True, False):
        U.seed(3)
        net = U.Sequential(Shift(shape), make())
        net.initialize()
        net.infer_shape(shape)
        bn = net[1]
        bn.fused = fused
        c = shape[bn.axis % len(shape)]
        if bn.gamma is not None:
            bn.gamma.set_data(np.linspace(0.5, 1.5, c))
        if bn.beta is not None:
            bn.beta.set_data(np.linspace(-0.3, 0.3, c))

        def loss_fn(n: U.Net, xs: Any) -> Any:  # nonlinear in y: nonzero gradients
            return U.ops.sum(U.ops.multiply(U.ops.square(n(xs)), w))

        loss, grads = U.value_and_grad(loss_fn)(net, native(backend, x))
        for k in range(3):
            with U.training(True):
                net(native(backend, x * (k + 1) + k))
        stats = {n: p.numpy() for n, p in bn.params().items() if not p.trainable}
        results.append((host(backend, loss), grads, stats))
    (l0, g0, s0), (l1, g1, s1) = results
    assert_close(l0, l1, f"{name} loss, fused vs composed", rtol=1e-5)
    assert sorted(g0) == sorted(g1)
    for n in g0:
        assert_close(
            host(backend, g0[n]),
            host(backend, g1[n]),
            f"{name} grad {n}, fused vs composed",
            rtol=1e-4,
            atol=1e-4,
        )
    assert sorted(s0) == ["running_mean", "running_var"]
    for n in s0:
        assert_close(s0[n], s1[n], f"{name} {n}, fused vs composed", rtol=1e-5)


def test_inference_path_matches_oracle(backend: Any) -> None:
    """Inference mode folds the running statistics into one scale and shift: output
    and gradients of the input, gamma and beta equal the float64 formula."""
    shape = (4, 6, 3, 2)
    x = RNG.standard_normal(shape).astype(np.float32)
    net = U.Sequential(Shift(shape), U.BatchNorm())
    net.initialize()
    net.infer_shape(shape)
    bn = net[1]
    gamma = np.linspace(0.5, 1.5, 6)
    beta = np.linspace(-0.3, 0.3, 6)
    rm, rv = np.linspace(-1, 1, 6), np.linspace(0.5, 2.0, 6)
    for p, v in ((bn.gamma, gamma), (bn.beta, beta)):
        p.set_data(v)
    bn.running_mean.set_data(rm)
    bn.running_var.set_data(rv)
    b = (1, -1, 1, 1)
    xhat = (x - rm.reshape(b)) / np.sqrt(rv.reshape(b) + EPS)
    want = xhat * gamma.reshape(b) + beta.reshape(b)
    assert_close(host(backend, net(x)), want, "inference output", rtol=1e-5)
    g = RNG.standard_normal(shape)

    def loss_fn(n: U.Net, xs: Any) -> Any:
        return U.ops.sum(U.ops.multiply(n(xs), native(backend, g)))

    with U.training(False):
        _, grads = U.value_and_grad(loss_fn)(net, native(backend, x))
    red = (0, 2, 3)
    dx = g * (gamma / np.sqrt(rv + EPS)).reshape(b)
    assert_close(host(backend, grads["0.shift"]), dx, "inference d input", rtol=1e-5)
    assert_close(host(backend, grads["1.gamma"]), (g * xhat).sum(red), "d gamma")
    assert_close(host(backend, grads["1.beta"]), g.sum(red), "d beta", atol=1e-5)
    assert "running_mean" not in grads and "1.running_mean" not in grads
