"""SPEC 13 normalization and dropout layers, SPEC 12 forward randomness.

Oracles: float64 NumPy formulas written here, central finite differences, and
``torch.nn.functional`` (batch_norm with PyTorch's momentum ``0.1`` = unified's
``0.9``, layer_norm, group_norm).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import unified as U

from .helpers import assert_bitwise, assert_close, host, native

RNG = np.random.default_rng(11)
X2 = RNG.standard_normal((8, 3)).astype(np.float32) * 2 + 1
X4 = RNG.standard_normal((4, 6, 3, 2)).astype(np.float32) * 3 - 1
EPS = 1e-5


# -- float64 oracles ------------------------------------------------------------------
def bn_train(x, gamma, beta, axis=1):
    """Batch normalization with batch statistics (biased variance)."""
    x = x.astype(np.float64)
    red = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    mean, var = x.mean(red, keepdims=True), x.var(red, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + EPS)
    return xhat * gamma.reshape(shape) + beta.reshape(shape), xhat, var


def bn_input_grad(g, xhat, var, gamma, axis=1):
    """d(sum(g * y))/dx of training-mode batch normalization."""
    red = tuple(i for i in range(g.ndim) if i != axis)
    shape = [1] * g.ndim
    shape[axis] = -1
    n = g.size // g.shape[axis]
    gx = g * gamma.reshape(shape)
    return (
        n * gx - gx.sum(red, keepdims=True) - xhat * (gx * xhat).sum(red, keepdims=True)
    ) / (n * np.sqrt(var + EPS))


def norm_over(x, axes):
    x = x.astype(np.float64)
    mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS)


class Shift(U.Net):
    """Adds a trainable zero tensor to its input: its gradient is the input's."""

    def __init__(self, shape):
        super().__init__()
        self.shift = U.Parameter("shift", shape, init="zeros")

    def forward(self, x):
        return U.ops.add(x, self.shift.data())


def _affine_values(layer, c):
    layer.gamma.set_data(np.linspace(0.5, 1.5, c))
    layer.beta.set_data(np.linspace(-0.3, 0.3, c))
    return layer.gamma.numpy().astype(np.float64), layer.beta.numpy().astype(np.float64)


# -- BatchNorm ------------------------------------------------------------------------
@pytest.mark.parametrize("x", [X2, X4], ids=["2d", "4d"])
def test_batchnorm_training_forward_and_gradients_match_oracle(backend, x):
    """Training mode: batch statistics; gradients of gamma, beta and the input."""
    c = x.shape[1]
    U.seed(0)
    net = U.Sequential(Shift(x.shape), U.BatchNorm())
    net.initialize()
    bn = net[1]
    net.infer_shape(x.shape)
    gamma, beta = _affine_values(bn, c)
    g = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    want, xhat, var = bn_train(x, gamma, beta)
    with U.training(True):
        assert_close(host(backend, net(x)), want, "training output", rtol=1e-4)

    def loss(n, x, g):
        return U.ops.sum(U.ops.multiply(n(x), g))

    _, grads = U.value_and_grad(loss)(net, native(backend, x), native(backend, g))
    red = tuple(i for i in range(x.ndim) if i != 1)
    assert_close(
        host(backend, grads["1.gamma"]),
        (g * xhat).sum(red),
        "d gamma",
        rtol=1e-4,
        atol=1e-4,
    )
    assert_close(host(backend, grads["1.beta"]), g.sum(red), "d beta", atol=1e-4)
    assert_close(
        host(backend, grads["0.shift"]),
        bn_input_grad(g.astype(np.float64), xhat, var, gamma),
        "d input",
        rtol=1e-3,
        atol=1e-4,
    )


def test_batchnorm_gradient_matches_finite_differences(backend):
    """Central differences of the backend's own training-mode loss."""
    x = X4
    net = U.Sequential(Shift(x.shape), U.BatchNorm())
    net.initialize()
    net.infer_shape(x.shape)
    _affine_values(net[1], x.shape[1])
    w = native(backend, np.random.default_rng(3).standard_normal(x.shape))

    def loss(n, x):  # a nonlinear loss, so the gradient is not trivially zero
        y = n(x)
        return U.ops.sum(U.ops.multiply(U.ops.square(y), w))

    _, grads = U.value_and_grad(loss)(net, native(backend, x))
    dx = host(backend, grads["0.shift"])
    h = 1e-2
    for index in [(0, 0, 0, 0), (1, 2, 1, 1), (3, 5, 2, 0), (2, 4, 0, 1)]:
        values = []
        for sign in (1, -1):
            bumped = x.copy()
            bumped[index] += sign * h
            with U.training(True):
                values.append(float(host(backend, loss(net, native(backend, bumped)))))
        fd = (values[0] - values[1]) / (2 * h)
        assert abs(dx[index] - fd) <= 2e-2 * max(1.0, abs(fd)), (index, dx[index], fd)


@pytest.mark.parametrize("unbiased", [True, False])
def test_running_statistics_over_several_steps(backend, unbiased):
    """running = 0.9 * running + 0.1 * batch, with the (un)biased batch variance;
    inference then normalizes with them."""
    bn = U.BatchNorm(unbiased_running_var=unbiased)
    bn.initialize()
    mean, var = np.zeros(6), np.ones(6)
    for k in range(4):
        x = X4 * (k + 1) + k
        with U.training(True):
            bn(native(backend, x))
        red = (0, 2, 3)
        mean = 0.9 * mean + 0.1 * x.astype(np.float64).mean(red)
        var = 0.9 * var + 0.1 * x.astype(np.float64).var(red, ddof=int(unbiased))
        assert_close(bn.running_mean.numpy(), mean, f"running_mean step {k}")
        assert_close(bn.running_var.numpy(), var, f"running_var step {k}", rtol=1e-4)
    out = host(backend, bn(native(backend, X4)))
    want = (X4 - mean.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + EPS)
    assert_close(out, want, "inference output", rtol=1e-4, atol=1e-5)


@pytest.mark.reference("torch")
def test_batchnorm_matches_torch_functional(backend):
    """Against torch.nn.functional.batch_norm (momentum 0.1 there is 0.9 here)."""
    import torch

    F = torch.nn.functional
    bn = U.BatchNorm(momentum=0.9)
    bn.initialize()
    gamma, beta = _affine_values(bn, 6)
    rm, rv = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    tg, tb = torch.tensor(gamma), torch.tensor(beta)
    for k in range(3):
        x = X4 + k
        with U.training(True):
            got = host(backend, bn(native(backend, x)))
        want = F.batch_norm(
            torch.tensor(x, dtype=torch.float64),
            rm,
            rv,
            tg,
            tb,
            training=True,
            momentum=0.1,
            eps=EPS,
        )
        assert_close(got, want.numpy(), f"training output {k}", rtol=1e-4, atol=1e-5)
    assert_close(bn.running_mean.numpy(), rm.numpy(), "running_mean vs torch")
    assert_close(bn.running_var.numpy(), rv.numpy(), "running_var vs torch", rtol=1e-4)
    want = F.batch_norm(
        torch.tensor(X4, dtype=torch.float64), rm, rv, tg, tb, training=False, eps=EPS
    )
    assert_close(
        host(backend, bn(native(backend, X4))),
        want.numpy(),
        "eval",
        rtol=1e-4,
        atol=1e-5,
    )


def test_use_global_stats_uses_and_keeps_running_statistics(backend):
    bn = U.BatchNorm(use_global_stats=True, in_channels=3)
    bn.initialize()
    bn.running_mean.set_data([1.0, -1.0, 0.5])
    bn.running_var.set_data([4.0, 1.0, 0.25])
    with U.training(True):
        out = host(backend, bn(native(backend, X2)))
    want = (X2 - np.array([1.0, -1.0, 0.5])) / np.sqrt(np.array([4.0, 1.0, 0.25]) + EPS)
    assert_close(out, want, "use_global_stats output", rtol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.numpy(), [1.0, -1.0, 0.5])
    np.testing.assert_array_equal(bn.running_var.numpy(), [4.0, 1.0, 0.25])


def test_norm_layers_infer_channels_and_accept_numpy(backend):
    """Channels are inferred at the first forward; host float32 data is accepted;
    another channel count later is a ShapeError; no parameter is a fixed size."""
    for layer, c in ((U.BatchNorm(), 6), (U.LayerNorm(), 2), (U.GroupNorm(3), 6)):
        layer.initialize()
        assert layer.gamma.shape == (-1,)
        out = layer(X4)
        assert backend.is_array(out) and tuple(out.shape) == X4.shape
        assert layer.gamma.shape == (c,) and layer.beta.shape == (c,)
    with pytest.raises(U.ShapeError):
        layer = U.BatchNorm()
        layer.initialize()
        layer(X4)
        layer(X2)
    with pytest.raises(ValueError, match="multiple of 4"):
        layer = U.GroupNorm(4)
        layer.initialize()
        layer(X4)


# -- LayerNorm / GroupNorm ------------------------------------------------------------
@pytest.mark.reference("torch")
def test_layernorm_matches_oracle_and_torch(backend):
    import torch

    ln = U.LayerNorm()
    ln.initialize()
    ln.infer_shape(X4.shape)
    gamma, beta = _affine_values(ln, 2)
    want = norm_over(X4, -1) * gamma + beta
    got = host(backend, ln(native(backend, X4)))
    assert_close(got, want, "layer_norm vs oracle", rtol=1e-4, atol=1e-5)
    tx = torch.tensor(X4, dtype=torch.float64, requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True)
    tb = torch.tensor(beta, requires_grad=True)
    ty = torch.nn.functional.layer_norm(tx, (2,), tg, tb, eps=EPS)
    assert_close(got, ty.detach().numpy(), "layer_norm vs torch", rtol=1e-4, atol=1e-5)
    w = np.random.default_rng(4).standard_normal(X4.shape)
    (ty * torch.tensor(w)).sum().backward()
    _, grads = U.value_and_grad(
        lambda n, x: U.ops.sum(U.ops.multiply(n(x), native(backend, w)))
    )(ln, native(backend, X4))
    assert_close(host(backend, grads["gamma"]), tg.grad.numpy(), "d gamma", atol=1e-4)
    assert_close(host(backend, grads["beta"]), tb.grad.numpy(), "d beta", atol=1e-4)


def test_layernorm_other_axis(backend):
    ln = U.LayerNorm(axis=1, center=False, scale=False)
    ln.initialize()
    assert list(ln.params()) == []
    got = host(backend, ln(native(backend, X4)))
    assert_close(got, norm_over(X4, 1), "layer_norm axis=1", rtol=1e-4, atol=1e-5)


@pytest.mark.reference("torch")
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_groupnorm_matches_oracle_and_torch(backend, groups):
    import torch

    gn = U.GroupNorm(groups)
    gn.initialize()
    gn.infer_shape(X4.shape)
    gamma, beta = _affine_values(gn, 6)
    n, c = X4.shape[:2]
    grouped = X4.reshape(n, groups, -1)
    want = norm_over(grouped, 2).reshape(X4.shape)
    want = want * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)
    got = host(backend, gn(native(backend, X4)))
    assert_close(got, want, "group_norm vs oracle", rtol=1e-4, atol=1e-5)
    tx = torch.tensor(X4, dtype=torch.float64)
    tg = torch.tensor(gamma, requires_grad=True)
    tb = torch.tensor(beta, requires_grad=True)
    ty = torch.nn.functional.group_norm(tx, groups, tg, tb, eps=EPS)
    assert_close(got, ty.detach().numpy(), "group_norm vs torch", rtol=1e-4, atol=1e-5)
    w = np.random.default_rng(5).standard_normal(X4.shape)
    (ty * torch.tensor(w)).sum().backward()
    _, grads = U.value_and_grad(
        lambda n, x: U.ops.sum(U.ops.multiply(n(x), native(backend, w)))
    )(gn, native(backend, X4))
    assert_close(host(backend, grads["gamma"]), tg.grad.numpy(), "d gamma", atol=1e-4)
    assert_close(host(backend, grads["beta"]), tb.grad.numpy(), "d beta", atol=1e-4)


# -- Dropout --------------------------------------------------------------------------
def philox_mask(seed, name, call, shape, rate):
    """SPEC 12's mask, recomputed here from the formula."""
    gen = np.random.Generator(
        np.random.Philox(
            np.random.SeedSequence([seed, 1, zlib.crc32(name.encode()), call])
        )
    )
    keep = gen.random(shape) >= rate
    return np.where(keep, np.float32(1 / (1 - rate)), np.float32(0))


def _dropout_net(seed=7):
    U.seed(seed)
    net = U.Sequential(U.Dense(5, in_units=3), U.Dropout(0.4))
    net.initialize()
    return net


def test_dropout_mask_follows_the_philox_formula(backend):
    """Output of the k-th training forward = input * mask(seed, "1", k)."""
    net = _dropout_net()
    ones = U.Sequential(U.Dropout(0.4))
    ones.initialize()
    shape = (64, 5)
    for call in range(3):
        with U.training(True):
            got = np.asarray(backend.to_numpy(net[1](native(backend, np.ones(shape)))))
        assert_bitwise(got, philox_mask(7, "1", call, shape, 0.4), f"mask {call}")
    U.seed(7)  # resets the count
    with U.training(True):
        got = np.asarray(backend.to_numpy(ones(native(backend, np.ones(shape)))))
    assert_bitwise(got, philox_mask(7, "0", 0, shape, 0.4), "mask after seed")
    with U.training(True):  # a net that ran before seed() restarts at call 0 too
        got = np.asarray(backend.to_numpy(net[1](native(backend, np.ones(shape)))))
    assert_bitwise(got, philox_mask(7, "1", 0, shape, 0.4), "restarted mask")


def test_dropout_is_the_identity_in_inference(backend):
    net = _dropout_net()
    x = native(backend, X2)
    np.testing.assert_array_equal(host(backend, net[1](x)), X2.astype(np.float64))
    with U.training(True):
        net.eval()
        np.testing.assert_array_equal(host(backend, net[1](x)), X2.astype(np.float64))


def test_dropout_keep_rate_and_scaling(backend):
    """Kept fraction within 5 standard deviations of 1 - rate; kept values scaled."""
    rate, n = 0.3, 20000
    drop = U.Dropout(rate)
    with U.training(True):
        out = host(backend, drop(native(backend, np.ones((n,)))))
    kept = out != 0
    sd = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) < 5 * sd, kept.mean()
    np.testing.assert_allclose(out[kept], 1 / (1 - rate), rtol=1e-6)


def test_dropout_gradient_is_the_mask(backend):
    """Inside value_and_grad (training mode) the gradient flows through the mask."""
    U.seed(3)
    net = U.Sequential(Shift((6, 4)), U.Dropout(0.5))
    net.initialize()
    x = np.ones((6, 4), np.float32)
    _, grads = U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(net, native(backend, x))
    want = philox_mask(3, "1", 0, (6, 4), 0.5)
    assert_bitwise(np.asarray(backend.to_numpy(grads["0.shift"])), want, "d shift")


def test_dropout_masks_bitwise_equal_across_backends(backend_pair):
    outs = []
    for table in backend_pair:
        with U.use_backend(table.name):
            net = _dropout_net()
            with U.training(True):
                net(native(table, X2))
                outs.append(np.asarray(table.to_numpy(net[1](native(table, X2)))))
    assert_bitwise(outs[1], outs[0], f"dropout output on {backend_pair[1].name}")


# -- a small ResNet-style MLP with BatchNorm and Dropout ------------------------------
class ResMLP(U.Net):
    def __init__(self):
        super().__init__()
        self.stem = U.Dense(16, activation="relu")
        self.block = U.Sequential(
            U.Dense(16), U.BatchNorm(), U.ReLU(), U.Dropout(0.2), U.Dense(16)
        )
        self.norm = U.LayerNorm()
        self.head = U.Dense(3)

    def forward(self, x):
        h = self.stem(x)
        h = U.ops.add(h, self.block(h))
        return self.head(self.norm(h))


XR = np.random.default_rng(8).standard_normal((10, 7)).astype(np.float32)
YR = np.random.default_rng(9).integers(0, 3, 10)


def _train_resmlp(table, steps=5):
    with U.use_backend(table.name):
        U.seed(42)
        net = ResMLP()
        net.initialize()
        net.infer_shape(XR.shape)
        start = {n: p.numpy() for n, p in net.params().items()}
        trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1, momentum=0.9))
        x, y = table.asarray(XR, "float32"), table.asarray(YR, "int64")
        losses = [
            float(np.asarray(table.to_numpy(trainer.step(_ce, x, y))))
            for _ in range(steps)
        ]
        end = {n: p.numpy() for n, p in net.params().items()}
        with U.training(False):
            out = np.asarray(table.to_numpy(net(x)))
    return start, losses, end, out


def _ce(net, x, y):
    return U.losses.softmax_cross_entropy(net(x), y)


def test_resnet_style_mlp_trains_identically(backend_pair):
    """Bitwise-equal initial weights; losses, weights, running statistics and the
    inference output after 5 steps within float32 tolerance of NumPy."""
    ref, other = backend_pair
    (s0, l0, e0, o0), (s1, l1, e1, o1) = _train_resmlp(ref), _train_resmlp(other)
    assert "block.1.running_var" in s0
    for name in s0:
        assert_bitwise(s1[name], s0[name], f"initial {name} on {other.name}")
    assert_close(l1, l0, f"losses on {other.name}", rtol=1e-4)
    for name in e0:
        assert_close(e1[name], e0[name], f"{name} after 5 steps", rtol=1e-4, atol=1e-5)
    assert_close(o1, o0, "inference output after training", rtol=1e-4, atol=1e-5)
    assert l0[-1] < l0[0], "the model did not learn"


def _ce(net, x, y):
    return U.losses.softmax_cross_entropy(net(x), y)


@pytest.mark.requires("jit")
def test_compiled_dropout_masks_equal_eager(backend):
    """SPEC 12: inside a compiled Trainer step the host masks are inputs of the
    compiled function: losses and weights equal the eager steps', and the mask
    stream continues identically (a later eager call draws the same next mask)."""
    x = np.random.default_rng(3).standard_normal((6, 5)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])

    def run(compile):
        U.seed(11)
        net = U.Sequential(U.Dense(8, activation="relu"), U.Dropout(0.5), U.Dense(3))
        net.initialize()
        trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1), compile=compile)
        losses = [float(trainer.step(_ce, x, y)) for _ in range(3)]
        with U.training(True):
            after = U.to_numpy(net(x))
        return losses, net[0].weight.numpy(), after, trainer.compilations

    eager, compiled = run(False), run(True)
    assert compiled[3] == 1 and eager[3] == 0
    assert_close(compiled[0], eager[0], "losses", rtol=1e-5, atol=1e-6)
    assert_close(compiled[1], eager[1], "weights after 3 steps", rtol=1e-5, atol=1e-6)
    assert_close(
        compiled[2], eager[2], "the 4th forward's output", rtol=1e-5, atol=1e-6
    )
