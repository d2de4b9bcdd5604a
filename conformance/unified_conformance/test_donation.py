"""A compiled step that reuses its own arrays' memory (capability ``donate``, JAX).

With ``donate``, :class:`~unified.Trainer` gives the parameters' and the optimizer
state's arrays up to the compiled step, which writes the new values into them
(by default only for a MiB or more of them; these tests ask for it,
``Trainer(donate=True)``).
What users see must not change: an array they still hold stays readable (and on a
backend with immutable arrays keeps its values), a parameter the optimizer does
not update keeps its array, and a step that fails, even the first, changes
nothing. The trajectories are checked against a float64 SGD-momentum oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from .helpers import assert_close, host, native

X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
T = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
LR, MOM = 0.1, 0.9


def mse(net, x, t):
    return U.losses.mse_loss(net(x), t)


def _oracle(w, b, steps):
    """``steps`` SGD-momentum steps of a linear layer under MSE, in float64."""
    w, b = w.astype(np.float64), b.astype(np.float64)
    mw, mb = np.zeros_like(w), np.zeros_like(b)
    x, t = X.astype(np.float64), T.astype(np.float64)
    for _ in range(steps):
        dy = 2 * (x @ w.T + b - t) / t.size
        mw, mb = MOM * mw + dy.T @ x, MOM * mb + dy.sum(0)
        w, b = w - LR * mw, b - LR * mb
    return w, b


def _layer():
    U.seed(0)
    net = U.Dense(2, in_units=3)
    net.initialize()
    return net


def test_held_arrays_stay_readable_and_keep_their_values(backend):
    """Arrays held across steps (a parameter's, its momentum) are not given up."""
    net = _layer()
    w0, b0 = net.weight.numpy(), net.bias.numpy()
    opt = U.SGD(net.params(), lr=LR, momentum=MOM)
    trainer = U.Trainer(net, opt, donate=True)
    x, t = native(backend, X), native(backend, T)
    trainer.step(mse, x, t)
    held_w = net.weight.data()
    held_m = opt.state_for(net.weight)["arrays"]["momentum_buffer"]
    snap_w, snap_m = host(backend, held_w), host(backend, held_m)
    for _ in range(2):
        trainer.step(mse, x, t)
    now_w, now_m = host(backend, held_w), host(backend, held_m)  # still readable
    if "inplace" not in backend.capabilities:  # immutable arrays keep their values
        np.testing.assert_array_equal(now_w, snap_w)
        np.testing.assert_array_equal(now_m, snap_m)
    want_w, want_b = _oracle(w0, b0, 3)
    assert_close(net.weight.numpy(), want_w, "weight after 3 steps")
    assert_close(net.bias.numpy(), want_b, "bias after 3 steps")


def test_parameter_outside_the_optimizer_keeps_its_array(backend):
    """A trainable parameter the optimizer does not update is differentiated but
    never replaced: its array stays valid and unchanged."""
    net = _layer()
    w0, b0 = net.weight.numpy(), net.bias.numpy()
    trainer = U.Trainer(net, U.SGD([net.weight], lr=LR, momentum=MOM), donate=True)
    x, t = native(backend, X), native(backend, T)
    for _ in range(3):
        trainer.step(mse, x, t)
    np.testing.assert_array_equal(net.bias.numpy(), b0)
    assert net.bias.grad() is not None
    # the bias stays at b0: the oracle with the bias's update undone
    w, _ = w0.astype(np.float64), None
    mw = np.zeros_like(w)
    for _ in range(3):
        dy = 2 * (X @ w.T + b0 - T) / T.size
        mw = MOM * mw + dy.T @ X
        w = w - LR * mw
    assert_close(net.weight.numpy(), w, "weight after 3 steps")


@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "eager"])
@pytest.mark.parametrize("computed", [False, True], ids=["labels", "computed"])
def test_failed_first_step_changes_nothing(backend, compile, computed):
    """Bad labels on the very first step (before anything is compiled), passed in
    or computed in the loss (a check traced into the step), change nothing;
    training then proceeds as if the failed step never happened."""
    U.seed(0)
    net = U.Dense(3, in_units=2)
    net.initialize()
    before = {n: p.numpy() for n, p in net.params().items()}
    opt = U.SGD(net.params(), lr=LR, momentum=MOM)
    trainer = U.Trainer(net, opt, compile=compile, donate=True)

    def loss_fn(n, x, y):
        if computed:
            y = U.ops.subtract(U.ops.add(y, 1), 1)
        return U.losses.softmax_cross_entropy(n(x), y)

    x = np.ones((2, 2), "float32")
    for _ in range(2):  # the first call, and once the step exists
        with pytest.raises(IndexError, match=r"outside \[0, 3\)"):
            trainer.step(loss_fn, x, np.array([0, 3]))
        for n, p in net.params().items():
            np.testing.assert_array_equal(p.numpy(), before[n], n)
        assert opt.state_dict()["state"].get("weight", {"step": 0})["step"] == 0
    loss = trainer.step(loss_fn, x, np.array([0, 2]))
    # one SGD step from ``before``: momentum starts at the first gradient
    logits = x @ before["weight"].T.astype(np.float64) + before["bias"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert_close(host(backend, loss), -np.mean(np.log(p[[0, 1], [0, 2]])), "loss")
    dy = p.copy()
    dy[[0, 1], [0, 2]] -= 1
    dy /= 2
    assert_close(net.weight.numpy(), before["weight"] - LR * (dy.T @ x), "weight")


@pytest.mark.requires("donate")
def test_jit_donate_traces_without_running(backend):
    """``jit(fn, donate=...)``: ``trace`` runs ``fn``'s Python once and nothing
    else; the call then reuses that trace and computes as ``fn``."""
    calls = []

    def fn(xs, ys):
        calls.append(1)
        return [backend.add(x, y) for x, y in zip(xs, ys)], backend.multiply(ys[0], 2.0)

    f = backend.jit(fn, donate=(0,))
    a, b = np.arange(3.0), np.ones(3)

    def args():
        return [native(backend, a)], [native(backend, b)]

    f.trace(*args())
    assert len(calls) == 1
    ys = args()[1]
    out, twice = f([native(backend, a)], ys)
    assert len(calls) == 1, "the call traced again"
    assert_close(host(backend, out[0]), a + b, "sum")
    assert_close(host(backend, twice), 2 * b, "not donated")
    assert_close(host(backend, ys[0]), b, "a kept argument stays readable")
