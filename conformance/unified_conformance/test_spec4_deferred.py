"""SPEC 4: deferred initialization and shape inference."""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from . import oracle
from .helpers import assert_bitwise, host, native


def test_unknown_dims_show_as_minus_one(backend):
    """S4.1: Dense without in_units has weight (units, -1), shown by shape and repr."""
    net = U.Sequential(U.Dense(256, activation="relu"), U.Dense(10))
    assert net[0].weight.shape == (256, -1) and net[1].weight.shape == (10, -1)
    text = repr(net)
    assert "(256, -1)" in text and "(10, -1)" in text


def test_two_distinct_errors_before_shapes_are_known(backend):
    """S4.2: not initialized vs initialized-but-deferred are different errors."""
    net = U.Sequential(U.Dense(4))
    with pytest.raises(U.ParameterNotInitializedError, match="initialize"):
        net[0].weight.data()
    net.initialize()
    with pytest.raises(U.DeferredInitializationError) as err:
        net[0].weight.data()
    assert "forward" in str(err.value) and "in_units" in str(err.value)
    assert not isinstance(err.value, U.ParameterNotInitializedError)


def test_forward_on_uninitialized_net_is_clear(backend):
    """S4.2: calling a net that was never initialized says to initialize it."""
    net = U.Sequential(U.Dense(4))
    with pytest.raises(U.ParameterNotInitializedError, match="initialize"):
        net(native(backend, np.ones((1, 3))))


def test_first_forward_infers_every_shape(backend):
    """S4.3: the first forward fills every unknown dim, layer by layer."""
    net = U.Sequential(U.Dense(16, activation="relu"), U.Dense(8), U.Dense(2))
    net.initialize()
    out = net(native(backend, np.ones((3, 5))))
    assert host(backend, out).shape == (3, 2)
    assert [p.shape for p in net.params(".*weight").values()] == [
        (16, 5),
        (8, 16),
        (2, 8),
    ]


def _weights(net):
    return {n: p.numpy() for n, p in net.params().items()}


def test_deferred_values_equal_eager_values_bitwise(backend):
    """S4.3/S3.3: deferred and eager shapes, any construction order: same bits, the
    (seed, epoch) recorded at initialize() time, equal to the SPEC 3 formula."""
    U.seed(42)
    U.Sequential(U.Dense(2, in_units=2)).initialize()  # epoch 0: the nets use 1
    eager = U.Sequential(
        U.Dense(16, in_units=5, activation="relu"), U.Dense(3, in_units=16)
    )
    eager.initialize()
    U.seed(42)
    U.Sequential(U.Dense(2, in_units=2)).initialize()
    second = U.Dense(3)  # built first: construction order must not matter
    deferred = U.Sequential(U.Dense(16, activation="relu"))
    deferred.add(second)
    deferred.initialize()  # records (42, 1)
    U.seed(99)  # now (99, 0): neither the seed nor the epoch of the record
    deferred(native(backend, np.zeros((1, 5))))
    got, want = _weights(deferred), _weights(eager)
    assert list(got) == list(want)
    for name in want:
        assert_bitwise(got[name], want[name], name)
    for name, shape in (("0.weight", (16, 5)), ("1.weight", (3, 16))):
        drawn = oracle.stream(42, 1, name).uniform(-0.07, 0.07, shape)
        assert_bitwise(got[name], drawn.astype(np.float32), f"{name} vs formula")


def test_mismatching_input_names_the_layer(backend):
    """S4.3: a later input with another feature size raises ShapeError naming
    the layer."""
    net = U.Sequential(U.Dense(4), U.Dense(2))
    net.initialize()
    net(native(backend, np.ones((1, 3))))
    with pytest.raises(U.ShapeError) as err:
        net(native(backend, np.ones((1, 7))))
    msg = str(err.value)
    assert "0.weight" in msg and "Dense" in msg and "(4, 3)" in msg and "(4, 7)" in msg


def test_infer_shape_from_shapes_or_arrays(backend):
    """S4.4: infer_shape materializes from shape tuples or example arrays."""
    net = U.Sequential(U.Dense(4), U.Dense(2))
    net.initialize()
    net.infer_shape((1, 6))
    assert net[0].weight.shape == (4, 6) and backend.is_array(net[1].weight.data())
    other = U.Sequential(U.Dense(4))
    other.initialize()
    other.infer_shape(native(backend, np.ones((2, 9))))
    assert other[0].weight.shape == (4, 9)


def test_optimizer_created_before_first_forward(backend):
    """S4.5: an optimizer built on deferred parameters sees them once they exist."""
    net = U.Sequential(U.Dense(3), U.Dense(1))
    net.initialize(U.init.Constant(0.5))
    opt = U.SGD(net.params(), lr=0.1)
    x = native(backend, np.ones((2, 4)))
    U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(net, x)
    before = net[1].weight.numpy()
    grad = host(backend, net[1].weight.grad())
    opt.step()
    np.testing.assert_allclose(net[1].weight.numpy(), before - 0.1 * grad, rtol=1e-6)


def test_initialize_again_keeps_the_recorded_init(backend):
    """S3.5/S4.3: a second initialize() before the first forward changes nothing."""
    U.seed(0)
    eager = U.Sequential(U.Dense(3, in_units=2))
    eager.initialize()
    U.seed(0)
    deferred = U.Sequential(U.Dense(3))
    deferred.initialize()
    with pytest.warns(UserWarning, match="force_reinit"):
        deferred.initialize(U.init.Ones())
    deferred(native(backend, np.ones((1, 2))))
    assert_bitwise(deferred[0].weight.numpy(), eager[0].weight.numpy(), "0.weight")


def test_uninitialized_bias_is_an_error(backend):
    """S4.2: a layer whose bias was never initialized raises, it does not skip it."""
    layer = U.Dense(3, in_units=2)
    layer.weight.set_data(np.ones((3, 2)))
    with pytest.raises(U.ParameterNotInitializedError, match="bias"):
        layer(native(backend, np.ones((1, 2))))


def test_failed_forward_changes_no_shape(backend):
    """S4.2: a forward on an uninitialized net leaves the deferred shapes alone."""
    net = U.Sequential(U.Dense(4))
    with pytest.raises(U.ParameterNotInitializedError):
        net(native(backend, np.ones((1, 3))))
    assert net[0].weight.shape == (4, -1)
    net.initialize()
    net(native(backend, np.ones((1, 7))))
    assert net[0].weight.shape == (4, 7)
