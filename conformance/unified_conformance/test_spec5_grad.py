"""SPEC 5: value_and_grad against a hand-derived float64 oracle."""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from . import oracle
from .helpers import assert_close, host, native


def _mlp(backend, seed=0):
    U.seed(seed)
    net = U.Sequential(
        U.Dense(7, activation="tanh", in_units=5), U.Dense(4, in_units=7)
    )
    net.initialize(U.init.Normal(0.5))
    for p in net.params(".*bias").values():
        p.set_data(np.linspace(-0.3, 0.3, p.shape[0]))
    return net


def _data(n=6):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 4, n)


def _oracle_grads(net, x, y):
    layers = [
        (net[0].weight.numpy(), net[0].bias.numpy(), "tanh"),
        (net[1].weight.numpy(), net[1].bias.numpy(), None),
    ]
    out, cache = oracle.mlp_forward(x, layers)
    loss, g = oracle.softmax_xent(out, y)
    grads = oracle.mlp_backward(layers, cache, g)
    return loss, {
        "0.weight": grads[0][0],
        "0.bias": grads[0][1],
        "1.weight": grads[1][0],
        "1.bias": grads[1][1],
    }


def xent(net, x, y):
    return U.losses.softmax_cross_entropy(net(x), y)


def test_gradients_match_oracle(backend):
    """S5.1: loss and every p.grad() equal the hand-derived gradient."""
    net = _mlp(backend)
    x, y = _data()
    loss, grads = U.value_and_grad(xent)(
        net, native(backend, x), native(backend, y, "int64")
    )
    want_loss, want = _oracle_grads(net, x, y)
    assert np.asarray(host(backend, loss)).shape == ()
    assert_close(host(backend, loss), want_loss, "loss")
    assert list(grads) == list(want)
    for name, p in net.params().items():
        assert_close(host(backend, p.grad()), want[name], f"grad of {name}", rtol=1e-4)
        assert_close(
            host(backend, grads[name]), want[name], f"returned grad {name}", rtol=1e-4
        )


def test_gradients_are_written_not_accumulated(backend):
    """S5.1: each call overwrites p.grad(); accumulate=True adds until zero_grad."""
    net = _mlp(backend)
    x, y = _data()
    args = (native(backend, x), native(backend, y, "int64"))
    U.value_and_grad(xent)(net, *args)
    U.value_and_grad(xent)(net, *args)
    _, want = _oracle_grads(net, x, y)
    assert_close(
        host(backend, net[0].weight.grad()), want["0.weight"], "write", rtol=1e-4
    )
    acc = U.value_and_grad(xent, accumulate=True)
    acc(net, *args)
    assert_close(
        host(backend, net[0].weight.grad()),
        2 * want["0.weight"],
        "accumulate",
        rtol=1e-4,
    )
    net.zero_grad()
    acc(net, *args)
    assert_close(
        host(backend, net[0].weight.grad()),
        want["0.weight"],
        "after zero_grad",
        rtol=1e-4,
    )


def test_unreached_parameter_gets_zero(backend):
    """S5.1: a trainable parameter the loss does not reach gets a zero gradient."""
    net = _mlp(backend)
    x, y = _data()
    xn = native(backend, x)
    U.value_and_grad(xent)(net, xn, native(backend, y, "int64"))
    assert host(backend, net[1].weight.grad()).any(), "setup: a non-zero gradient"
    _, grads = U.value_and_grad(lambda n, x: U.ops.sum(n[0](x)))(net, xn)
    for name in ("1.weight", "1.bias"):
        g = host(backend, net.params()[name].grad())
        assert not g.any(), f"{name} kept a stale gradient"
        assert not host(backend, grads[name]).any()


def test_frozen_gradient_does_not_resurface(backend):
    """S5.3: gradients computed before freezing are gone after unfreezing."""
    net = _mlp(backend)
    x, y = _data()
    args = (native(backend, x), native(backend, y, "int64"))
    acc = U.value_and_grad(xent, accumulate=True)
    acc(net, *args)
    acc(net, *args)
    net[0].weight.frozen = True
    net.zero_grad()
    acc(net, *args)
    net[0].weight.frozen = False
    acc(net, *args)
    _, want = _oracle_grads(net, x, y)
    assert_close(
        host(backend, net[0].weight.grad()),
        want["0.weight"],
        "one contribution since zero_grad",
        rtol=1e-4,
    )


def test_shared_parameter_gets_summed_gradient(backend):
    """S5.2: a parameter used twice gets the sum of both contributions."""
    layer = U.Dense(3, in_units=3, use_bias=False)
    net = U.Sequential(layer, layer)
    net.initialize()
    w = np.array([[0.5, -0.2, 0.1], [0.3, 0.4, -0.5], [-0.1, 0.2, 0.3]], np.float32)
    layer.weight.set_data(w)
    x = np.array([[1.0, 2.0, -1.0]], np.float32)
    U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(net, native(backend, x))
    # y = (x W^T) W^T, loss = sum(y): dL/dW = 1^T (x W^T) + (1^T W)^T x
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    h = x64 @ w64.T
    want = np.ones((3, 1)) @ h + (np.ones((1, 3)) @ w64).T @ x64
    assert_close(host(backend, layer.weight.grad()), want, "shared grad")


def test_frozen_parameters_are_not_differentiated(backend):
    """S5.3: frozen parameters get no gradient and grad() says so."""
    net = _mlp(backend)
    x, y = _data()
    U.freeze(net, "0\\..*")
    _, grads = U.value_and_grad(xent)(
        net, native(backend, x), native(backend, y, "int64")
    )
    assert list(grads) == ["1.weight", "1.bias"]
    with pytest.raises(U.FrozenParameterError, match="frozen"):
        net[0].weight.grad()
    _, want = _oracle_grads(net, x, y)
    assert_close(
        host(backend, net[1].weight.grad()), want["1.weight"], "1.weight", rtol=1e-4
    )


def test_nothing_trainable_is_an_error(backend):
    """S5.4: value_and_grad on a fully frozen net raises a clear error."""
    net = _mlp(backend)
    U.freeze(net)
    with pytest.raises(U.NothingToDifferentiateError, match="frozen"):
        U.value_and_grad(xent)(
            net, native(backend, _data()[0]), native(backend, [0] * 6)
        )


def test_deferred_net_differentiates_on_first_call(backend):
    """S5.1/S4.3: value_and_grad works on a net whose shapes are still deferred."""
    net = U.Sequential(U.Dense(3, activation="relu"), U.Dense(1))
    net.initialize()
    loss, grads = U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(
        net, native(backend, np.ones((2, 4)))
    )
    assert host(backend, grads["0.weight"]).shape == (3, 4)


def test_bias_gradient_with_frozen_weight(backend):
    """S5.3: freezing only a weight leaves its bias's gradient exact.

    MXNet 1.9.1's FullyConnected skips the bias gradient when the weight is not
    differentiated; a backend must not inherit that.
    """
    net = _mlp(backend)
    x, y = _data()
    net[1].weight.frozen = True
    args = (native(backend, x), native(backend, y, "int64"))
    _, grads = U.value_and_grad(xent)(net, *args)
    _, want = _oracle_grads(net, x, y)
    assert "1.weight" not in grads
    for name in ("0.weight", "0.bias", "1.bias"):
        assert_close(host(backend, grads[name]), want[name], name, rtol=1e-4)


def test_first_argument_must_be_the_net(backend):
    """S5: value_and_grad(f)(net, *batch): anything else as the first argument is a
    TypeError saying how to call it."""
    with pytest.raises(TypeError, match="first argument must be the unified.Net"):
        U.value_and_grad(lambda n: n)(np.ones(3, np.float32))


def test_loss_of_shape_one_is_a_scalar(backend):
    """S5: a loss holding one value (shape ``(1,)``) is accepted like a 0-d one."""
    net = U.Dense(1, in_units=2)
    net.initialize(U.init.Ones())
    x = native(backend, [[1.0, 2.0]])

    def loss(n, x):
        return U.ops.reshape(U.ops.sum(n(x)), (1,))

    value, grads = U.value_and_grad(loss)(net, x)
    assert_close(host(backend, value).reshape(()), 3.0, "loss of shape (1,)")
    assert_close(host(backend, grads["weight"]), [[1.0, 2.0]], "grad weight")


def test_value_and_grad_restores_the_active_backend(backend_pair):
    """S1/S5: differentiating a net that lives on another backend runs on the net's
    backend and leaves the active backend (and ``unified.ops``) as they were."""
    ref, other = backend_pair
    with U.use_backend(other.name):
        net = U.Dense(1, in_units=2)
        net.initialize(U.init.Ones())
    with U.use_backend(ref.name):
        x = np.ones((1, 2), np.float32)
        _, grads = U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(net, x)
        assert other.is_array(grads["weight"])
        assert U.current_backend() is ref
        assert ref.is_array(U.ops.add(np.ones(2, np.float32), 1.0))
