"""SPEC 8: safetensors checkpoints (atomic, validated, tie-preserving) and porting."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import unified as U

from .helpers import assert_bitwise, assert_close, host, native
from .plugin import selected_backends


def _tied_net(seed=0):
    U.seed(seed)
    shared = U.Dense(4, activation="relu")
    net = U.Sequential(U.Dense(4, activation="relu"), shared, shared, U.Dense(2))
    net.initialize()
    net.infer_shape((1, 3))
    return net


def test_round_trip_and_metadata(backend, tmp_path):
    """S8.1: values under structural names, with format, backend and tie table."""
    from safetensors import safe_open

    net = _tied_net()
    path = tmp_path / "net.safetensors"
    net.save(path)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert sorted(keys) == sorted(net.params())
    assert meta["format_version"] == "1" and meta["backend"] == backend.name
    assert json.loads(meta["ties"]) == {"2.weight": "1.weight", "2.bias": "1.bias"}
    other = _tied_net(seed=1)
    other.load(path)
    for name, p in net.params().items():
        assert_bitwise(other.params()[name].numpy(), p.numpy(), name)


def test_load_reties_shared_parameters(backend, tmp_path):
    """S8.1/S7.1: loading a checkpoint with a tie re-ties an untied net."""
    path = tmp_path / "tied.safetensors"
    _tied_net().save(path)
    untied = U.Sequential(
        U.Dense(4, activation="relu"),
        U.Dense(4, activation="relu"),
        U.Dense(4, activation="relu"),
        U.Dense(2),
    )
    untied.initialize()
    untied.load(path)
    assert untied[1].weight is untied[2].weight
    assert list(untied.params()) == list(_tied_net().params())


def test_failed_save_keeps_previous_file(backend, tmp_path, monkeypatch):
    """S8.1: a save that fails leaves the previous file intact."""
    import safetensors.numpy

    net = _tied_net()
    path = tmp_path / "net.safetensors"
    net.save(path)
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        _tied_net(seed=3).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.safetensors"], "temporary file left behind"


def test_failed_load_lists_all_problems_and_changes_nothing(backend, tmp_path):
    """S8.2: every mismatch in one CheckpointError; the net is unchanged."""
    src = U.Sequential(U.Dense(4, in_units=3), U.Dense(5, in_units=4))
    src.initialize()
    path = tmp_path / "src.safetensors"
    src.save(path)
    dst = U.Sequential(
        U.Dense(4, in_units=3), U.Dense(6, in_units=4), U.Dense(1, in_units=6)
    )
    dst.initialize()
    before = {n: p.numpy() for n, p in dst.params().items()}
    with pytest.raises(U.CheckpointError) as err:
        dst.load(path)
    msg = str(err.value)
    for needle in (
        "'1.weight'",
        "'1.bias'",
        "(5, 4)",
        "(6, 4)",
        "missing in checkpoint: '2.weight'",
    ):
        assert needle in msg, needle
    for name, p in dst.params().items():
        np.testing.assert_array_equal(p.numpy(), before[name])
    short = U.Sequential(U.Dense(4, in_units=3))
    short.initialize()
    with pytest.raises(U.CheckpointError, match="unexpected in checkpoint: '1.weight'"):
        short.load(path)


def test_load_rejects_non_checkpoints(backend, tmp_path):
    """S8.2: a missing file, garbage or a pickle raise CheckpointError (nothing
    unpickled)."""
    import pickle

    net = U.Sequential(U.Dense(2, in_units=2))
    net.initialize()
    with pytest.raises(U.CheckpointError, match="does not exist"):
        net.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"0.weight": np.zeros((2, 2))}))
    with pytest.raises(U.CheckpointError, match="not a readable safetensors"):
        net.load(bad)


def test_strict_false_loads_the_common_part(backend, tmp_path):
    """S8.2: strict=False skips names present on only one side."""
    src = U.Sequential(U.Dense(4, in_units=3))
    src.initialize()
    path = tmp_path / "part.safetensors"
    src.save(path)
    dst = U.Sequential(U.Dense(4, in_units=3), U.Dense(1, in_units=4))
    dst.initialize()
    dst.load(path, strict=False)
    np.testing.assert_array_equal(dst[0].weight.numpy(), src[0].weight.numpy())
    # and the other way: names only in the checkpoint are skipped too
    dst.save(path)
    src2 = U.Sequential(U.Dense(4, in_units=3))
    src2.initialize()
    src2.load(path, strict=False)
    np.testing.assert_array_equal(src2[0].weight.numpy(), dst[0].weight.numpy())


def test_load_fills_a_deferred_net(backend, tmp_path):
    """S8.2/S4: loading into a net with unknown dims fills them."""
    path = tmp_path / "n.safetensors"
    _tied_net().save(path)
    fresh = U.Sequential(
        U.Dense(4, activation="relu"),
        U.Dense(4, activation="relu"),
        U.Dense(4, activation="relu"),
        U.Dense(2),
    )
    fresh.initialize()
    fresh.load(path)
    assert fresh[0].weight.shape == (4, 3)


def test_optimizer_state_in_checkpoint(backend, tmp_path):
    """S6.5/S8.1: optimizer state saved with the net continues identically."""
    net = _tied_net()
    opt = U.Adam(net.params(), lr=0.01)
    x = native(backend, np.ones((2, 3)))
    grad = U.value_and_grad(lambda n, x: U.ops.sum(U.ops.square(n(x))))
    for _ in range(2):
        grad(net, x)
        opt.step()
    path = tmp_path / "with_opt.safetensors"
    net.save(path, optimizer=opt)
    twin = _tied_net(seed=9)
    twin_opt = U.Adam(twin.params(), lr=0.01)
    twin.load(path, optimizer=twin_opt)
    for n, o in ((net, opt), (twin, twin_opt)):
        grad(n, x)
        o.step()
    for name, p in net.params().items():
        np.testing.assert_array_equal(twin.params()[name].numpy(), p.numpy())


@pytest.mark.parametrize("target", selected_backends())
def test_port_keeps_values_ties_and_frozen_flags(backend, target):
    """S8.3: port() gives identical values, ties and frozen flags on another backend."""
    net = _tied_net()
    net[0].bias.frozen = True
    twin = U.port(net, target)
    assert twin[1].weight is twin[2].weight and twin[0].bias.frozen
    x = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    with U.use_backend(target) as table:
        out = table.to_numpy(twin(table.asarray(x, "float32")))
        assert table.is_array(twin[0].weight.data())
    for name, p in net.params().items():
        assert_bitwise(twin.params()[name].numpy(), p.numpy(), name)
    assert_close(out, host(backend, net(native(backend, x))), "ported output")


def test_mismatching_optimizer_state_changes_nothing(backend, tmp_path):
    """S8.2: optimizer state that cannot be loaded fails the whole load, net
    unchanged."""
    net = _tied_net()
    opt = U.Adam(net.params(), lr=0.01)
    x = native(backend, np.ones((2, 3)))
    U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(net, x)
    opt.step()
    path = tmp_path / "adam.safetensors"
    net.save(path, optimizer=opt)
    plain = tmp_path / "plain.safetensors"
    net.save(plain)
    target = _tied_net(seed=5)
    before = {n: p.numpy() for n, p in target.params().items()}
    for source, optimizer, needle in (
        (path, U.SGD(target.params(), lr=0.1, momentum=0.9), "saved by Adam"),
        (plain, U.Adam(target.params(), lr=0.1), "no optimizer state"),
    ):
        with pytest.raises(U.CheckpointError, match=needle):
            target.load(source, optimizer=optimizer)
        assert not optimizer.state
        for name, p in target.params().items():
            np.testing.assert_array_equal(p.numpy(), before[name])


def test_dtype_mismatch_is_reported(backend, tmp_path):
    """S8.2: a dtype that differs from the parameter's is a listed problem."""
    from safetensors.numpy import save_file

    net = U.Sequential(U.Dense(2, in_units=2))
    net.initialize()
    path = tmp_path / "f64.safetensors"
    save_file(
        {"0.weight": np.zeros((2, 2)), "0.bias": np.zeros(2, np.float32)},
        str(path),
        metadata={"format": "unified.checkpoint", "format_version": "1", "ties": "{}"},
    )
    with pytest.raises(U.CheckpointError, match="dtype float64 in checkpoint"):
        net.load(path)


def _ways():
    from .test_spec7_sharing import WAYS

    return WAYS


@pytest.mark.parametrize("way", ["params=", "share()", "reuse"])
def test_every_kind_of_tie_survives_save_load_and_port(backend, way, tmp_path):
    """S7.1/S8: ties made any of the three ways survive a checkpoint and a port."""
    net, (i, j) = _ways()[way]()
    net.initialize()
    net.infer_shape((1, 4))
    path = tmp_path / "tied.safetensors"
    net.save(path)
    fresh = U.Sequential(*(U.Dense(4, activation="relu") for _ in range(3)))
    fresh.initialize()
    fresh.load(path)
    assert fresh[i].weight is fresh[j].weight
    for target in selected_backends():
        twin = U.port(net, target)
        assert twin[i].weight is twin[j].weight and twin.ties() == net.ties()


def test_port_keeps_multipliers(backend):
    """S8.3: port copies lr_mult and wd_mult with the values."""
    net = _tied_net()
    net[3].weight.lr_mult, net[3].bias.wd_mult = 0.5, 0.0
    twin = U.port(net, backend.name)
    assert twin[3].weight.lr_mult == 0.5 and twin[3].bias.wd_mult == 0.0


def test_retie_refuses_disagreeing_flags(backend, tmp_path):
    """S8.2: re-tying two parameters that differ in frozen/lr_mult is a listed
    problem."""
    path = tmp_path / "tied.safetensors"
    _tied_net().save(path)
    untied = U.Sequential(
        *(U.Dense(4, activation="relu") for _ in range(3)), U.Dense(2)
    )
    untied.initialize()
    untied.infer_shape((1, 3))
    untied[2].weight.frozen = True
    with pytest.raises(U.CheckpointError, match="differ in frozen"):
        untied.load(path)
    assert untied[1].weight is not untied[2].weight


def test_save_refuses_parameters_without_values(backend, tmp_path):
    """S8.1: a deferred net cannot be saved before its shapes are known; the error
    names the parameters and nothing is written."""
    net = U.Sequential(U.Dense(3), U.Dense(2, in_units=3))
    net.initialize()
    path = tmp_path / "deferred.safetensors"
    with pytest.raises(U.CheckpointError, match=r"1 parameter\(s\) hold no values"):
        net.save(path)
    assert not path.exists()


def test_port_keeps_a_deferred_parameter_deferred(backend):
    """S8.3: a deferred parameter ported stays deferred with its initializer, so it
    draws the same values as the original once the shapes are known."""
    U.seed(5)
    net = U.Sequential(U.Dense(3, weight_initializer=U.init.Normal(0.3)))
    net.initialize()
    twin = U.port(net, backend.name)
    assert twin[0].weight.shape == (3, -1)
    net.infer_shape((2, 4))
    twin.infer_shape((2, 4))
    assert_bitwise(twin[0].weight.numpy(), net[0].weight.numpy(), "ported draw")
