"""SPEC 12: modes follow the call, pins and blocks; state parameters.

The mode a layer sees is observed through a probe layer (a user-written ``Net``
reading ``unified.modes.is_training(self)``) and through BatchNorm's observable
behaviour (batch statistics and running-statistic updates in training mode).
"""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from .helpers import assert_close, host, native

X = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)
T = np.random.default_rng(6).standard_normal((6, 2)).astype(np.float32)


class Probe(U.Net):
    """Records the mode of every forward; its parameter keeps gradients possible."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = U.Parameter("scale", (1,), init="ones")
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(U.modes.is_training(self))
        return U.ops.multiply(x, self.scale.data())


def _probe_net():
    net = U.Sequential(U.Dense(2, in_units=3), Probe())
    net.initialize()
    return net, net[1]


def _loss(net, x, t):
    return U.losses.mse_loss(net(x), t)


def _modes_seen(net, probe, table, how):
    """Run the net one way and return the mode the probe saw."""
    probe.seen.clear()
    x, t = native(table, X), native(table, T)
    if how == "call":
        net(x)
    elif how == "value_and_grad":
        U.value_and_grad(_loss)(net, x, t)
    else:
        U.Trainer(net, U.SGD(net.params(), lr=0.01)).step(_loss, x, t)
    assert probe.seen, "the probe never ran"
    return probe.seen[-1]


CALLS = ["call", "value_and_grad", "trainer"]
DEFAULTS = {"call": False, "value_and_grad": True, "trainer": True}


@pytest.mark.parametrize("how", CALLS)
def test_mode_follows_the_call(backend, how):
    """A plain call is inference; value_and_grad and Trainer.step are training."""
    net, probe = _probe_net()
    assert _modes_seen(net, probe, backend, how) is DEFAULTS[how]


@pytest.mark.parametrize("how", CALLS)
@pytest.mark.parametrize("block", [True, False])
def test_training_block_beats_the_call_default(backend, how, block):
    """``with unified.training(flag)`` sets the mode of every call inside it."""
    net, probe = _probe_net()
    with U.training(block):
        assert _modes_seen(net, probe, backend, how) is block
    assert _modes_seen(net, probe, backend, how) is DEFAULTS[how]


@pytest.mark.parametrize("how", CALLS)
@pytest.mark.parametrize("pin", [True, False])
def test_pin_beats_block_and_default(backend, how, pin):
    """``net.train()``/``net.eval()`` pin the net and its children, over a block and
    the call's default, until ``net.train(None)``."""
    net, probe = _probe_net()
    assert net.train(pin) is net
    for block in (True, False, None):
        with U.training(block):
            assert _modes_seen(net, probe, backend, how) is pin
    net.train(None)
    assert _modes_seen(net, probe, backend, how) is DEFAULTS[how]
    net.eval()
    assert _modes_seen(net, probe, backend, how) is False


def test_training_rejects_non_booleans(backend):
    with (
        pytest.raises(TypeError, match="True, False or None"),
        U.training("yes"),  # type: ignore[arg-type]
    ):
        pass
    with pytest.raises(TypeError, match="True, False or None"):
        U.Dense(2).train(1)  # type: ignore[arg-type]


@pytest.mark.requires("jit")
def test_compiled_step_keys_on_the_mode(backend):
    """The compiled step is traced in the mode it resolves to: pinning changes it."""
    net, probe = _probe_net()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.01))
    x, t = native(backend, X), native(backend, T)
    trainer.step(_loss, x, t)
    assert probe.seen[-1] is True and trainer.compilations == 1
    net.eval()
    trainer.step(_loss, x, t)
    assert probe.seen[-1] is False and trainer.compilations == 2
    net.train(None)
    probe.seen.clear()
    trainer.step(_loss, x, t)
    assert trainer.compilations == 2 and not probe.seen, "cached step not reused"


# -- state parameters -----------------------------------------------------------------
def _bn_net(seed=0):
    U.seed(seed)
    net = U.Sequential(U.Dense(4), U.BatchNorm(), U.Dense(2))
    net.initialize()
    net.infer_shape(X.shape)
    return net


def test_state_parameters_are_listed_and_not_trainable(backend):
    """Running statistics are parameters with structural names, trainable=False."""
    net = _bn_net()
    names = list(net.params())
    assert names[2:6] == ["1.gamma", "1.beta", "1.running_mean", "1.running_var"]
    stats = net.params(".*running_.*")
    assert [p.trainable for p in stats.values()] == [False, False]
    assert all(p.trainable for n, p in net.params().items() if n not in stats)
    np.testing.assert_array_equal(stats["1.running_mean"].numpy(), np.zeros(4))
    np.testing.assert_array_equal(stats["1.running_var"].numpy(), np.ones(4))


def test_state_parameters_are_never_differentiated(backend):
    """Not in grads; ``p.grad()`` raises; unfreeze does not make them trainable."""
    net = _bn_net()
    U.unfreeze(net)
    _, grads = U.value_and_grad(_loss)(net, native(backend, X), native(backend, T))
    assert "1.running_mean" not in grads and "1.gamma" in grads
    with pytest.raises(U.FrozenParameterError, match="state parameter"):
        net.params()["1.running_var"].grad()
    only_state = U.Sequential(U.BatchNorm(in_channels=3))
    only_state.initialize()
    only_state.params(".*(gamma|beta)").freeze()
    with pytest.raises(U.NothingToDifferentiateError):
        U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(only_state, native(backend, X))


@pytest.mark.parametrize("compile", [True, False])
def test_optimizer_never_steps_state_parameters(backend, compile):
    """Passed to an optimizer (with weight decay and momentum), state parameters
    change only by their layer's running-statistics rule."""
    net = _bn_net()
    bn = net[1]
    opt = U.SGD(net.params(), lr=0.5, momentum=0.9, weight_decay=0.1)
    with U.training(False):  # inference: the layer writes nothing either
        U.Trainer(net, opt, compile=compile).step(
            _loss, native(backend, X), native(backend, T)
        )
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(4))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(4))
    opt.step()
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(4))
    assert id(bn.running_mean) not in opt.state


def _stats(net):
    return {n: p.numpy() for n, p in net.params(".*running_.*").items()}


def _oracle_stats(net, batches, momentum=0.9):
    """Running statistics of layer 1 after training forwards on ``batches``, in
    float64, from the weights of layer 0 (held fixed: no optimizer step)."""
    w, b = net[0].weight.numpy().astype(np.float64), net[0].bias.numpy()
    mean, var = np.zeros(4), np.ones(4)
    for x in batches:
        h = x.astype(np.float64) @ w.T + b
        mean = momentum * mean + (1 - momentum) * h.mean(0)
        var = momentum * var + (1 - momentum) * h.var(0, ddof=1)
    return {"1.running_mean": mean, "1.running_var": var}


def test_value_and_grad_writes_running_statistics(backend):
    """Each differentiated forward writes the running statistics once."""
    net = _bn_net()
    batches = [X, X[::-1] * 2.0, X + 1.0]
    for x in batches:
        U.value_and_grad(_loss)(net, native(backend, x), native(backend, T))
    want = _oracle_stats(net, batches)
    for name, got in _stats(net).items():
        assert_close(got, want[name], name)


def test_plain_training_call_writes_running_statistics_at_once(backend):
    net = _bn_net()
    with U.training(True):
        net(native(backend, X))
    want = _oracle_stats(net, [X])
    for name, got in _stats(net).items():
        assert_close(got, want[name], name)


def test_compiled_steps_carry_state_like_eager_numpy(backend):
    """Three Trainer steps (compiled on jit backends) give the running statistics
    and weights of three eager NumPy steps (SGD: Adam would amplify the rounding
    noise of the bias before BatchNorm, whose true gradient is zero)."""
    results = []
    for table, compile in ((backend, True), (None, False)):
        with U.use_backend(table.name if table else "numpy"):
            t = table or U.current_backend()
            net = _bn_net()
            opt = U.SGD(net.params(), lr=0.1, momentum=0.9)
            trainer = U.Trainer(net, opt, compile=compile)
            for k in range(3):
                trainer.step(_loss, native(t, X * (k + 1)), native(t, T))
            if compile:
                assert trainer.compilations == int("jit" in t.capabilities)
            results.append({n: p.numpy() for n, p in net.params().items()})
    got, want = results
    for name in want:
        assert_close(got[name], want[name], f"{name} after 3 steps", rtol=1e-4)
    assert not np.allclose(got["1.running_mean"], 0.0), "statistics never written"


def test_state_round_trips_save_load_port_average(backend, tmp_path):
    """Running statistics are saved, loaded, ported and averaged like weights."""
    net = _bn_net()
    with U.training(True):
        net(native(backend, X))
    stats = _stats(net)
    net.save(str(tmp_path / "bn.safetensors"))
    fresh = _bn_net(seed=1)
    fresh.load(str(tmp_path / "bn.safetensors"))
    for name, value in stats.items():
        np.testing.assert_array_equal(fresh.params()[name].numpy(), value)
    for other in U.backends():
        twin = U.port(net, other)
        assert not twin.params()["1.running_var"].trainable
        for name, value in stats.items():
            np.testing.assert_array_equal(twin.params()[name].numpy(), value)
        with U.use_backend(other):
            table = U.current_backend()
            assert_close(
                host(table, twin(native(table, X))),
                host(backend, net(native(backend, X))),
                f"ported output on {other}",
            )
    mean = U.average([net, fresh, _bn_net()])
    for name, value in stats.items():
        assert_close(
            mean.params()[name].numpy(),
            (2 * value + _bn_net().params()[name].numpy()) / 3,
            f"averaged {name}",
        )
