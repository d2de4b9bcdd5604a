"""Trainer.step: one step equals value_and_grad + optimizer.step, compiled or not."""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from .helpers import assert_close, native

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


def _eager_reference(backend, steps, make_opt, before=None):
    """The same schedule run with value_and_grad + opt.step on the NumPy backend."""
    with U.use_backend("numpy") as ref:
        net = _net()
        opt = make_opt(net)
        for step in range(steps):
            if before is not None:
                before(step, net, opt)
            U.value_and_grad(mse)(
                net, ref.asarray(X, "float32"), ref.asarray(T, "float32")
            )
            opt.step()
    return net


def _check_same(net, ref, what):
    for name, p in ref.params().items():
        assert_close(net.params()[name].numpy(), p.numpy(), f"{what}: {name}")


def test_step_equals_value_and_grad_plus_step(backend):
    """Trainer.step returns the loss and updates like value_and_grad + step."""
    net = _net()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1, momentum=0.9))
    x, t = native(backend, X), native(backend, T)
    losses = [
        float(np.asarray(backend.to_numpy(trainer.step(mse, x, t)))) for _ in range(5)
    ]
    assert losses[-1] < losses[0]
    ref = _eager_reference(
        backend, 5, lambda n: U.SGD(n.params(), lr=0.1, momentum=0.9)
    )
    _check_same(net, ref, "after 5 steps")
    assert backend.is_array(net[0].weight.data()) and backend.is_array(
        net[0].weight.grad()
    )


def test_changes_between_steps_are_honoured(backend):
    """lr, lr_mult, wd_mult and freezing changed between steps are never stale."""

    def before(step, net, opt):
        if step == 2:
            opt.lr = 0.05
        if step == 3:
            net[0].weight.lr_mult = 0.5
        if step == 4:
            net[1].bias.wd_mult = 0.0
        if step == 5:
            net[1].weight.frozen = True
        if step == 7:
            net[1].weight.frozen = False

    def make(n):
        return U.Adam(n.params(), lr=0.1, weight_decay=0.01)

    net = _net()
    opt = make(net)
    trainer = U.Trainer(net, opt)
    x, t = native(backend, X), native(backend, T)
    for step in range(9):
        before(step, net, opt)
        trainer.step(mse, x, t)
    _check_same(net, _eager_reference(backend, 9, make, before), "with changes")


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
    trainer.step(counting, x, t)  # may trace twice: materialization check + compile
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
