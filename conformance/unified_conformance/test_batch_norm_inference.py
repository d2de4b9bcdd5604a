"""The optional fused ``batch_norm_inference`` hook (capability
``batch_norm_inference``) and ``BatchNorm``'s inference path through it.

Oracles: float64 NumPy formulas written here (the hook called directly: values and
gradients of ``x``, ``gamma`` and ``beta``), and the same ``BatchNorm`` layer with
the hook hidden (``fused = False``: the folded scale-and-shift composition of
``unified.ops``, itself proven against float64 formulas in
``test_batch_norm_hook.py``), in inference mode and with ``use_global_stats=True``
in training mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unified as U

from .helpers import assert_close, host, native

RNG = np.random.default_rng(37)
EPS = 1e-5

# (shape, channel axis): axis 1 and the last axis, 2-d and 4-d
CASES = {
    "2d-axis1": ((6, 5), 1),
    "4d-axis1": ((3, 4, 3, 2), 1),
    "4d-last": ((2, 3, 2, 4), 3),
    "3d-last": ((3, 2, 5), 2),
}
# which of gamma / beta are present (center / scale on the layer)
AFFINE = {"both": (True, True), "none": (False, False), "gamma": (True, False)}


def _oracle(x, mean, var, gamma, beta, axis, g):
    """float64 ``y`` and the gradients of ``sum(y * g)`` w.r.t. x, gamma, beta."""
    shape = [1] * x.ndim
    shape[axis] = -1
    x, g = x.astype(np.float64), g.astype(np.float64)
    inv = 1 / np.sqrt(var.astype(np.float64) + EPS)
    xhat = (x - mean.reshape(shape)) * inv.reshape(shape)
    gam = np.ones_like(inv) if gamma is None else gamma.astype(np.float64)
    y = xhat * gam.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    red = tuple(i for i in range(x.ndim) if i != axis)
    dx = g * (gam * inv).reshape(shape)
    return y, dx, (g * xhat).sum(red), g.sum(red)


def _vectors(c: int) -> tuple[np.ndarray, ...]:
    mean = RNG.uniform(-1.5, 1.5, c).astype(np.float32)
    var = RNG.uniform(0.3, 2.5, c).astype(np.float32)
    gamma = RNG.uniform(0.5, 1.5, c).astype(np.float32)
    beta = RNG.uniform(-0.5, 0.5, c).astype(np.float32)
    return mean, var, gamma, beta


@pytest.mark.requires("batch_norm_inference")
@pytest.mark.parametrize("affine", sorted(AFFINE))
@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_norm_inference_hook_matches_oracle(
    backend: Any, case: str, affine: str
) -> None:
    """The hook itself: output and gradients of x, gamma and beta."""
    shape, axis = CASES[case]
    has_gamma, has_beta = AFFINE[affine]
    x = (RNG.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    g = RNG.standard_normal(shape).astype(np.float32)
    mean, var, gamma, beta = _vectors(shape[axis])
    gamma_ = gamma if has_gamma else None
    beta_ = beta if has_beta else None
    want_y, want_dx, want_dg, want_db = _oracle(x, mean, var, gamma_, beta_, axis, g)
    m, v, gn = native(backend, mean), native(backend, var), native(backend, g)

    y = backend.batch_norm_inference(
        native(backend, x),
        m,
        v,
        None if gamma_ is None else native(backend, gamma_),
        None if beta_ is None else native(backend, beta_),
        axis,
        EPS,
    )
    assert_close(host(backend, y), want_y, f"{case} output", rtol=1e-5, atol=1e-6)
    assert backend.to_numpy(y).dtype == np.float32

    def loss(a: list[Any]) -> Any:
        out = backend.batch_norm_inference(
            a[0],
            m,
            v,
            a[1] if has_gamma else None,
            a[2] if has_beta else None,
            axis,
            EPS,
        )
        return backend.sum(backend.multiply(out, gn), None, False)

    arrays = [native(backend, x), native(backend, gamma), native(backend, beta)]
    _, (dx, dg, db) = backend.value_and_grad(loss, arrays)
    assert_close(host(backend, dx), want_dx, f"{case} d x", rtol=1e-5, atol=1e-6)
    if has_gamma:
        assert_close(
            host(backend, dg), want_dg, f"{case} d gamma", rtol=1e-5, atol=1e-5
        )
    else:
        assert_close(host(backend, dg), np.zeros_like(gamma), f"{case} unused gamma")
    if has_beta:
        assert_close(host(backend, db), want_db, f"{case} d beta", rtol=1e-5, atol=1e-5)
    else:
        assert_close(host(backend, db), np.zeros_like(beta), f"{case} unused beta")


class Shift(U.Net):
    """Adds a trainable zero tensor to its input: its gradient is the input's."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shift = U.Parameter("shift", shape, init="zeros")

    def forward(self, x: Any) -> Any:
        return U.ops.add(x, self.shift.data())


LAYERS = {
    "4d-inference": ((3, 4, 3, 2), {}, False),
    "2d-no-affine": ((6, 5), {"center": False, "scale": False}, False),
    "channels-last-global-stats-training": (
        (2, 3, 2, 4),
        {"axis": -1, "use_global_stats": True},
        True,
    ),
    "no-center-global-stats-training": (
        (3, 4, 3, 2),
        {"center": False, "use_global_stats": True},
        True,
    ),
}


@pytest.mark.requires("batch_norm_inference")
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_batch_norm_uses_inference_hook_and_equals_composition(
    backend: Any, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BatchNorm calls batch_norm_inference once per forward when it normalizes with
    its running statistics, and equals the same layer with the hook hidden
    (fused=False): output, gradients of the input, gamma and beta, and untouched
    running statistics."""
    shape, kwargs, train = LAYERS[name]
    x = (RNG.standard_normal(shape) * 2 - 0.5).astype(np.float32)
    w = native(backend, RNG.standard_normal(shape))
    calls: list[int] = []
    hook = backend.batch_norm_inference

    def spy(*args: Any) -> Any:
        calls.append(1)
        return hook(*args)

    monkeypatch.setattr(backend, "batch_norm_inference", spy)
    mean, var, gamma, beta = _vectors(shape[kwargs.get("axis", 1) % len(shape)])
    results = []
    for fused in (True, False):
        net = U.Sequential(Shift(shape), U.BatchNorm(**kwargs))
        net.initialize()
        net.infer_shape(shape)
        bn = net[1]
        bn.fused = fused
        bn.running_mean.set_data(mean)
        bn.running_var.set_data(var)
        if bn.gamma is not None:
            bn.gamma.set_data(gamma)
        if bn.beta is not None:
            bn.beta.set_data(beta)

        def loss_fn(n: U.Net, xs: Any) -> Any:  # nonlinear in y: nonzero gradients
            return U.ops.sum(U.ops.multiply(U.ops.square(n(xs)), w))

        before = len(calls)
        with U.training(train):
            y = host(backend, net(native(backend, x)))
            loss, grads = U.value_and_grad(loss_fn)(net, native(backend, x))
        assert len(calls) - before == (2 if fused else 0), f"{name} hook calls"
        stats = [bn.running_mean.numpy(), bn.running_var.numpy()]
        assert_close(stats[0], mean, f"{name} running_mean untouched", rtol=0)
        assert_close(stats[1], var, f"{name} running_var untouched", rtol=0)
        results.append((y, host(backend, loss), grads))
    (y0, l0, g0), (y1, l1, g1) = results
    assert_close(y0, y1, f"{name} output, fused vs composed", rtol=1e-5, atol=1e-6)
    assert_close(l0, l1, f"{name} loss, fused vs composed", rtol=1e-5)
    assert sorted(g0) == sorted(g1)
    assert not any("running" in k for k in g0)
    for k in g0:
        assert_close(
            host(backend, g0[k]),
            host(backend, g1[k]),
            f"{name} grad {k}, fused vs composed",
            rtol=1e-4,
            atol=1e-5,
        )
