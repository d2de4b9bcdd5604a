"""SPEC 7: sharing (three ways), freezing and averaging."""

from __future__ import annotations

import re

import numpy as np
import pytest

import unified as U

from . import oracle
from .helpers import assert_close, host, native


def _gluon_style():
    shared = U.Dense(4, activation="relu")
    net = U.Sequential(
        U.Dense(4, activation="relu"),
        shared,
        U.Dense(4, activation="relu", params=shared.params()),
    )
    return net, (1, 2)


def _share_call():
    net = U.Sequential(
        U.Dense(4, activation="relu"),
        U.Dense(4, activation="relu"),
        U.Dense(4, activation="relu"),
    )
    U.share(net[2], net[1])
    return net, (1, 2)


def _reuse():
    layer = U.Dense(4, activation="relu")
    return U.Sequential(U.Dense(4, activation="relu"), layer, layer), (1, 2)


WAYS = {"params=": _gluon_style, "share()": _share_call, "reuse": _reuse}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_three_ways_to_share_mean_the_same(backend, way):
    """S7.1: one object, listed once, gradient summed, updated once, tie recorded."""
    net, (i, j) = WAYS[way]()
    net.initialize()
    x = native(backend, np.random.default_rng(0).standard_normal((2, 4)))
    net(x)
    assert net[i].weight is net[j].weight
    assert list(net.params(".*weight")) == ["0.weight", f"{i}.weight"]
    assert net.ties() == {f"{j}.weight": f"{i}.weight", f"{j}.bias": f"{i}.bias"}
    w = net[i].weight.numpy()
    w[0, 0] = 42.0
    net[i].weight.set_data(w)
    assert host(backend, net[j].weight.data())[0, 0] == 42.0
    opt = U.SGD(net.params(), lr=0.1)
    U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(net, x)
    before = net[i].weight.numpy()
    layers = [(net[k].weight.numpy(), net[k].bias.numpy(), "relu") for k in range(3)]
    out, cache = oracle.mlp_forward(host(backend, x), layers)
    per_use = oracle.mlp_backward(layers, cache, np.ones_like(out))
    summed = per_use[i][0] + per_use[j][0]
    assert_close(
        host(backend, net[i].weight.grad()), summed, "summed gradient", rtol=1e-4
    )
    opt.step()
    assert_close(
        net[j].weight.numpy(), before - 0.1 * summed, "updated once", rtol=1e-4
    )


def test_share_rejects_incompatible_shapes(backend):
    """S7.1: share() needs agreeing (or deferred-compatible) shapes, else ShapeError."""
    a, b = U.Dense(4, in_units=3), U.Dense(4, in_units=5)
    with pytest.raises(U.ShapeError, match="weight"):
        U.share(b, a)
    deferred = U.Dense(4)
    U.share(deferred, a)
    assert deferred.weight is a.weight
    with pytest.raises(U.StructureError, match="no parameter names in common"):
        U.share(U.Sequential(U.Dense(4, in_units=3)), a)


def test_freeze_unfreeze_by_pattern(backend):
    """S7.2: freeze/unfreeze select by regex; ParamDict.freeze; p.frozen."""
    net = U.Sequential(U.Dense(3, in_units=2), U.Dense(1, in_units=3))
    U.freeze(net, ".*bias")
    assert [n for n, p in net.params().items() if p.frozen] == ["0.bias", "1.bias"]
    U.unfreeze(net)
    net.params("0\\..*").freeze()
    assert [n for n, p in net.params().items() if p.frozen] == ["0.weight", "0.bias"]
    net[0].weight.frozen = False
    assert [n for n, p in net.params().items() if p.frozen] == ["0.bias"]


def _mlp(seed, tie=False):
    U.seed(seed)
    layer = U.Dense(3, in_units=3)
    net = U.Sequential(
        U.Dense(3, in_units=2), layer, layer if tie else U.Dense(3, in_units=3)
    )
    net.initialize()
    return net


def test_average_weighted(backend):
    """S7.3: average() of same-named parameters, weights normalized to sum 1."""
    nets = [_mlp(1), _mlp(2), _mlp(3)]
    out = U.average(nets, weights=[1, 1, 2])
    for name, p in out.params().items():
        want = sum(
            w * n.params()[name].numpy().astype(np.float64)
            for w, n in zip([0.25, 0.25, 0.5], nets)
        )
        assert_close(p.numpy(), want, name)
    assert out is not nets[0] and backend.is_array(out[0].weight.data())


def test_average_into_and_ties(backend):
    """S7.3: averaging into a net respects ties (a shared parameter is averaged
    once)."""
    a, b, into = _mlp(1, tie=True), _mlp(2, tie=True), _mlp(3, tie=True)
    U.average([a, b], into=into)
    assert into[1].weight is into[2].weight
    want = (a[1].weight.numpy().astype(np.float64) + b[1].weight.numpy()) / 2
    assert_close(into[2].weight.numpy(), want, "tied weight")


def test_average_lists_every_mismatch(backend):
    """S7.3: names or shapes that disagree raise one error listing every mismatch."""
    a = _mlp(1)
    b = U.Sequential(U.Dense(3, in_units=4), U.Dense(3, in_units=3))
    b.initialize()
    with pytest.raises(U.StructureError) as err:
        U.average([a, b])
    msg = str(err.value)
    assert (
        "'0.weight'" in msg
        and "(3, 4)" in msg
        and "'2.weight'" in msg
        and "'2.bias'" in msg
    )
    tied = _mlp(2, tie=True)
    with pytest.raises(U.StructureError, match="2.weight"):
        U.average([a, tied])
    deferred = U.Sequential(U.Dense(3), U.Dense(3), U.Dense(3))
    deferred.initialize()
    for nets, label in (([a, deferred], "nets[1]"), ([deferred, a], "nets[0]")):
        msg = re.escape(f"{label}: '0.weight' is not initialized")
        with pytest.raises(U.StructureError, match=msg):
            U.average(nets)


def test_average_across_backends(backend_pair):
    """S7.3: nets on different backends average; the result lives on the backend of
    nets[0] (needs a second backend: skipped on a NumPy-only run)."""
    ref, other = backend_pair
    with U.use_backend(ref.name):
        a = _mlp(1)
    with U.use_backend(other.name):
        b = _mlp(2)
    for nets, table in (([a, b], ref), ([b, a], other)):
        out = U.average(nets, weights=[3, 1])
        for name, p in out.params().items():
            want = (
                0.75 * nets[0].params()[name].numpy().astype(np.float64)
                + 0.25 * nets[1].params()[name].numpy()
            )
            assert_close(p.numpy(), want, f"{name}, average into {table.name}")
            assert table.is_array(p.data()), f"{name} is not on {table.name}"


def test_share_completes_a_deferred_source_shape(backend):
    """S7: sharing a known-shape parameter into a deferred one fills in the unknown
    dimensions of the kept (source) parameter."""
    dst, src = U.Dense(4, in_units=3), U.Dense(4)
    assert src.weight.shape == (4, -1)
    U.share(dst, src)
    assert dst.weight is src.weight and src.weight.shape == (4, 3)
