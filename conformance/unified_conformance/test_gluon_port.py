"""The porting story: a Gluon net trained natively, loaded into unified on MXNet,
ported to PyTorch and JAX; every output agrees within float32 tolerance."""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from .helpers import assert_close
from .plugin import selected_backends

pytestmark = pytest.mark.only_backends("mxnet")


def _trained_gluon_net():
    from mxnet import autograd, gluon
    from unified_mxnet import mx  # restores numpy.bool before mxnet loads

    mx.random.seed(0)
    net = gluon.nn.Sequential()
    net.add(
        gluon.nn.Dense(16, activation="relu"),
        gluon.nn.Dense(8, activation="tanh"),
        gluon.nn.Dense(3),
    )
    net.initialize(mx.init.Xavier())
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9}
    )
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.standard_normal((32, 5)), dtype="float32")
    y = mx.nd.array(rng.integers(0, 3, 32), dtype="float32")
    for _ in range(5):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(32)
    return net


def _unified_twin():
    return U.Sequential(
        U.Dense(16, activation="relu"), U.Dense(8, activation="tanh"), U.Dense(3)
    )


@pytest.mark.parametrize("source", ["block", "file"])
def test_gluon_model_ports_to_every_backend(backend, source, tmp_path):
    """A trained Gluon net gives the same outputs in unified on every backend."""
    from unified_mxnet import mx  # restores numpy.bool before mxnet loads
    from unified_mxnet.gluon import load_gluon

    gluon_net = _trained_gluon_net()
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    expected = gluon_net(mx.nd.array(x)).asnumpy()
    net = _unified_twin()
    net.initialize()
    if source == "file":
        path = str(tmp_path / "model.params")
        gluon_net.save_parameters(path)
        load_gluon(net, path)
    else:
        load_gluon(net, gluon_net)
    assert list(net.params()) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "2.weight",
        "2.bias",
    ]
    got = backend.to_numpy(net(backend.asarray(x, "float32")))
    assert_close(got, expected, "unified on mxnet vs native Gluon")
    for target in selected_backends():
        twin = U.port(net, target)
        with U.use_backend(target) as table:
            out = table.to_numpy(twin(table.asarray(x, "float32")))
        assert_close(out, expected, f"ported to {target} vs native Gluon")


def test_mismatching_gluon_net_is_rejected_whole(backend):
    """A Gluon net of another shape: one error listing every problem, net unchanged."""
    from unified_mxnet.gluon import load_gluon

    net = U.Sequential(U.Dense(16, in_units=5), U.Dense(4, in_units=16))
    net.initialize()
    before = {n: p.numpy() for n, p in net.params().items()}
    with pytest.raises(U.CheckpointError) as err:
        load_gluon(net, _trained_gluon_net())
    msg = str(err.value)
    assert "'1.weight'" in msg and "'2.weight'" in msg and "(8, 16)" in msg
    for name, p in net.params().items():
        np.testing.assert_array_equal(p.numpy(), before[name])
