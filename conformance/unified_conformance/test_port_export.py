"""SPEC 14: ``from_gluon`` of the files ``HybridBlock.export`` writes (a prefix or
the pair ``(symbol_file, params_file)``), with Gluon itself as the oracle; the
export's global parameter names are kept as the file gives them; ``unified port``
and ``load_native`` accept the prefix."""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from .helpers import assert_bitwise

pytestmark = pytest.mark.reference("mxnet")


def _exported(tmp_path):
    """A small HybridSequential (conv, BatchNorm with moved statistics, dropout,
    pooling, dense), hybridized and exported; returns (prefix, input, output)."""
    from unified_mxnet import mx  # restores numpy.bool before mxnet loads

    gluon = mx.gluon

    mx.random.seed(0)
    block = gluon.nn.HybridSequential()
    block.add(
        gluon.nn.Conv2D(4, 3, in_channels=2),
        gluon.nn.BatchNorm(in_channels=4),
        gluon.nn.Activation("relu"),
        gluon.nn.Dropout(0.3),
        gluon.nn.MaxPool2D(2),
        gluon.nn.Dense(5, in_units=36),
    )
    block.initialize(mx.init.Xavier())
    bn = block[1]
    bn.running_mean.set_data(mx.nd.random.uniform(-1, 1, (4,)))
    bn.running_var.set_data(mx.nd.random.uniform(0.5, 2, (4,)))
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype("float32")
    block.hybridize()
    want = block(mx.nd.array(x)).asnumpy()
    prefix = str(tmp_path / "net")
    block.export(prefix)
    return prefix, x, want


def _file_arrays(prefix):
    from unified_mxnet import mx  # restores numpy.bool before mxnet loads

    return {
        k.split(":", 1)[1]: v.asnumpy()
        for k, v in mx.nd.load(prefix + "-0000.params").items()
    }


@pytest.mark.parametrize("form", ["prefix", "pair"])
def test_from_gluon_export_equals_gluon(backend, tmp_path, form):
    """Outputs equal Gluon's; names are the file's (``arg:``/``aux:`` dropped),
    values bit for bit; the running statistics are state parameters."""
    prefix, x, want = _exported(tmp_path)
    source = (
        prefix
        if form == "prefix"
        else (
            prefix + "-symbol.json",
            prefix + "-0000.params",
        )
    )
    net = U.from_gluon(source)
    stored = _file_arrays(prefix)
    assert set(net.params()) == set(stored)
    assert all("." not in n for n in net.params())  # global names, no structure
    for n, p in net.params().items():
        assert_bitwise(p.numpy(), stored[n], n)
        assert p.trainable == (not n.endswith(("running_mean", "running_var")))
    got = U.to_numpy(net(x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_port_cli_and_load_native_take_an_export_prefix(backend, tmp_path):
    import torch

    from unified.cli import main

    prefix, _, _ = _exported(tmp_path)
    out = str(tmp_path / "net.pt")
    main(["port", prefix, "--to", "torch", "--out", out])
    state = torch.load(out, weights_only=True)
    stored = _file_arrays(prefix)
    assert set(state) == set(stored)
    for n, v in state.items():
        assert_bitwise(v.numpy(), stored[n], n)
    net = U.from_gluon(prefix)
    before = {n: p.numpy() for n, p in net.params().items()}
    for p in net.params().values():
        p.set_data(np.zeros(p.shape, p.dtype))
    U.load_native(net, prefix)
    for n, p in net.params().items():
        assert_bitwise(p.numpy(), before[n], n)


def test_export_with_two_params_files_is_refused(backend, tmp_path):
    import shutil

    prefix, _, _ = _exported(tmp_path)
    shutil.copy(prefix + "-0000.params", prefix + "-0001.params")
    with pytest.raises(U.ConversionError, match="exactly one parameter file"):
        U.from_gluon(prefix)
