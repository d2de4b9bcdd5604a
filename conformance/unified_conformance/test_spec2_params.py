"""SPEC 2: parameter access, set_data, attributes and layout."""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from .helpers import host, native


def _net(backend):
    net = U.Sequential(U.Dense(3, in_units=2), U.Dense(1, in_units=3))
    net.initialize()
    return net


def test_data_is_native_and_numpy_is_a_copy(backend):
    """S2.1: data() is the backend's array; numpy() a NumPy copy."""
    w = _net(backend)[0].weight
    assert backend.is_array(w.data())
    copy = w.numpy()
    assert isinstance(copy, np.ndarray) and copy.dtype == np.float32
    copy[...] = 123.0
    assert not np.any(host(backend, w.data()) == 123.0), "numpy() must not alias"


def test_grad_is_native(backend):
    """S2.1: grad() returns the native gradient (zeros before any gradient)."""
    w = _net(backend)[0].weight
    g = w.grad()
    assert backend.is_array(g) and host(backend, g).shape == (3, 2)
    assert not host(backend, g).any()


def test_set_data_accepts_native_and_host_values(backend):
    """S2.2: set_data takes native arrays or anything numpy.asarray takes."""
    w = _net(backend)[0].weight
    w.set_data([[1, 2], [3, 4], [5, 6]])
    assert w.numpy().tolist() == [[1, 2], [3, 4], [5, 6]]
    w.set_data(native(backend, np.full((3, 2), 7.0)))
    assert (w.numpy() == 7).all()


def test_set_data_casts_dtype(backend):
    """S2.2: the dtype is cast to the parameter's dtype."""
    w = _net(backend)[0].weight
    w.set_data(np.full((3, 2), 0.1, dtype=np.float64))
    assert w.numpy().dtype == np.float32
    assert (w.numpy() == np.float32(0.1)).all()


def test_set_data_wrong_shape_names_everything(backend):
    """S2.2: a wrong shape raises ShapeError naming the parameter, expected and got."""
    w = _net(backend)[0].weight
    before = w.numpy()
    with pytest.raises(U.ShapeError) as err:
        w.set_data(np.zeros((2, 3)))
    msg = str(err.value)
    assert "0.weight" in msg and "(3, 2)" in msg and "(2, 3)" in msg
    np.testing.assert_array_equal(w.numpy(), before)


def test_set_data_fills_deferred_dims(backend):
    """S2.2: set_data may fill the unknown dims of a deferred parameter."""
    net = U.Sequential(U.Dense(3))
    net.initialize()
    net[0].weight.set_data(np.ones((3, 5)))
    assert net[0].weight.shape == (3, 5)
    out = net(native(backend, np.ones((2, 5))))
    np.testing.assert_allclose(host(backend, out), 5.0)


def test_attributes_and_defaults(backend):
    """S2.3: shape, dtype float32, name, frozen, lr_mult and wd_mult (1.0, mutable)."""
    net = _net(backend)
    for name, p in net.params().items():
        assert p.dtype == "float32" and p.frozen is False
        assert p.lr_mult == 1.0 and p.wd_mult == 1.0
        assert p.name == name
    net[0].bias.lr_mult = 2.0
    assert net.params()["0.bias"].lr_mult == 2.0


def test_dense_layout_is_out_in(backend):
    """S2.4: Dense weight is (units, in_units); y = x @ W.T + b."""
    layer = U.Dense(3, in_units=2)
    layer.initialize()
    assert layer.weight.shape == (3, 2) and layer.bias.shape == (3,)
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    layer.weight.set_data(w)
    layer.bias.set_data([1, 2, 3])
    x = np.array([[1.0, -1.0]], np.float32)
    out = host(backend, layer(native(backend, x)))
    np.testing.assert_array_equal(out, x.astype(np.float64) @ w.T + [1, 2, 3])
