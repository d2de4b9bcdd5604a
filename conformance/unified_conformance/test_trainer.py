"""Trainer.step against a float64 oracle; compilation behaviour on jit backends.

The optimizer trajectories through ``Trainer`` (compiled on JAX) are checked against
the oracle in ``test_spec6_optim.py`` (its ``[trainer]`` cases); this module checks
the step's loss, gradients and update on an MLP, and what gets compiled when.
"""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from . import oracle
from .helpers import assert_close, host, native

X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
T = np.random.default_rng(1).standard_normal((6, 2)).astype(np.float32)


def _net(seed=0):
    U.seed(seed)
    net = U.Sequential(U.Dense(5, activation="tanh"), U.Dense(2))
    net.initialize()
    net.infer_shape(X.shape)
    return net


def mse(net, x, t):
    return U.losses.mse_loss(net(x), t)


def test_step_matches_oracle(backend):
    """One step returns the loss, sets every p.grad() and applies SGD, as the oracle."""
    net = _net()
    layers = [
        (net[0].weight.numpy(), net[0].bias.numpy(), "tanh"),
        (net[1].weight.numpy(), net[1].bias.numpy(), None),
    ]
    out, cache = oracle.mlp_forward(X, layers)
    want_loss = np.mean((out - T) ** 2)
    grads = oracle.mlp_backward(layers, cache, 2 * (out - T) / out.size)
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.5))
    loss = trainer.step(mse, native(backend, X), native(backend, T))
    assert_close(host(backend, loss), want_loss, "loss")
    for i, (dw, db) in enumerate(grads):
        for name, g, start in (
            (f"{i}.weight", dw, layers[i][0]),
            (f"{i}.bias", db, layers[i][1]),
        ):
            p = net.params()[name]
            assert_close(host(backend, p.grad()), g, f"grad {name}", rtol=1e-4)
            assert_close(p.numpy(), start - 0.5 * g, f"{name} updated", rtol=1e-5)
    assert backend.is_array(net[0].weight.data())


def test_optimizer_outside_the_net_is_rejected(backend):
    """An optimizer holding parameters of another net is a clear error."""
    net, other = _net(), _net(1)
    trainer = U.Trainer(net, U.SGD(other.params(), lr=0.1))
    with pytest.raises(U.StructureError, match="not in the net"):
        trainer.step(mse, native(backend, X), native(backend, T))


@pytest.mark.requires("jit")
def test_compiled_once_per_shape_and_reused(backend):
    """On a jit backend the step is traced once per input shape, then reused."""
    traces = []

    def counting(net, x, t):
        traces.append(1)  # runs at trace time only once the step is compiled
        return mse(net, x, t)

    net = _net()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1))
    x, t = native(backend, X), native(backend, T)
    trainer.step(counting, x, t)
    first = len(traces)
    for _ in range(4):
        trainer.step(counting, x, t)
    assert len(traces) == first, "the compiled step was traced again for the same shape"
    assert trainer.compilations == 1
    trainer.step(counting, native(backend, X[:3]), native(backend, T[:3]))
    assert len(traces) == first + 1, "a new batch shape must trace exactly once"
    net[0].bias.frozen = True
    trainer.step(counting, x, t)
    assert trainer.compilations == 2, "freezing changes the compiled structure"


@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "eager"])
def test_failed_step_changes_nothing(backend, compile):
    """A step that fails, on a bad batch or on a bad option found mid-update,
    changes no value, gradient or optimizer state; fixed, training continues."""
    net = _net()
    opt = U.Adam(
        [{"params": net.params("0\\..*")}, {"params": net.params("1\\..*")}], lr=0.1
    )
    trainer = U.Trainer(net, opt, compile=compile)
    x, t = native(backend, X), native(backend, T)
    trainer.step(mse, x, t)

    def snapshot():
        return (
            {n: p.numpy() for n, p in net.params().items()},
            {n: host(backend, p.grad()) for n, p in net.params().items()},
            opt.state_dict()["state"],
        )

    values, grads, state = snapshot()

    def unchanged(check_grads):
        now_values, now_grads, now_state = snapshot()
        for name in values:
            np.testing.assert_array_equal(now_values[name], values[name], name)
            if check_grads:
                np.testing.assert_array_equal(now_grads[name], grads[name], name)
        assert {n: e["step"] for n, e in now_state.items()} == dict.fromkeys(state, 1)
        for name, entry in state.items():
            for key in ("exp_avg", "exp_avg_sq"):
                np.testing.assert_array_equal(now_state[name][key], entry[key])

    with pytest.raises(Exception):  # noqa: B017 - the backend's own shape error
        trainer.step(mse, x, native(backend, T[:, :1].repeat(3, 1)))
    unchanged(check_grads=True)
    opt.param_groups[1]["lr"] = "fast"  # group 0 is fine: nothing of it may move
    with pytest.raises((TypeError, ValueError)):
        trainer.step(mse, x, t)
    # the eager path computed this batch's gradients before the optimizer failed
    unchanged(check_grads=compile and "jit" in backend.capabilities)
    opt.param_groups[1]["lr"] = 0.1
    trainer.step(mse, x, t)
    assert {e["step"] for e in opt.state_dict()["state"].values()} == {2}
