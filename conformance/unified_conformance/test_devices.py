"""Devices: ``set_backend(..., device=)``, ``UNIFIED_DEVICE``, ``net.to(device)``.

Everything a net owns (parameters, state, gradients, optimizer state, dropout masks,
converted batches, compiled-step outputs) must be on the chosen device, and training
there must follow the default device's trajectory. Placement is checked with the
frameworks' own attributes (``tensor.device``, ``array.devices()``,
``ndarray.context``), not with the backend's ``device_of`` hook.

The ``device`` fixture is ``--unified-device`` (``cuda:0`` on a GPU machine), by
default a second device of the backend when it has one here (MXNet's ``cpu:1``).
JAX has several CPU devices only when ``XLA_FLAGS`` forces them before it is
imported, so ``test_jax_forced_host_devices`` reruns this file in a subprocess
with four host devices and ``--unified-device cpu:1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unified as U

from .helpers import assert_bitwise, assert_close

X = np.random.default_rng(0).standard_normal((6, 5)).astype("float32")
Y = np.array([0, 1, 2, 0, 1, 2])


# -- the oracle: the frameworks' own device objects ----------------------------------


def native_device(backend_name: str, name: str) -> Any:
    """The framework's object for device ``name`` (``kind:index``)."""
    kind, _, index = name.partition(":")
    i = int(index or 0)
    if backend_name == "torch":
        import torch

        return torch.device(kind if kind == "cpu" else f"{kind}:{i}")
    if backend_name == "jax":
        import jax

        return next(d for d in jax.devices(kind) if d.id == i)
    if backend_name == "mxnet":
        import mxnet as mx

        return mx.Context(kind, i)
    return "cpu"  # NumPy: host memory


def placed_on(backend_name: str, x: Any) -> Any:
    """The framework's object for the device native array ``x`` lives on."""
    if backend_name == "torch":
        return x.device
    if backend_name == "jax":
        (only,) = x.devices()
        return only
    if backend_name == "mxnet":
        return x.context
    assert isinstance(x, np.ndarray | np.generic), type(x)
    return "cpu"


def assert_on(backend: Any, x: Any, device: str, what: str) -> None:
    __tracebackhide__ = True
    got, expected = placed_on(backend.name, x), native_device(backend.name, device)
    assert got == expected, f"{what} is on {got}, expected {expected}"


def _net() -> U.Net:
    """Dense (deferred input size), BatchNorm (state), Dropout (masks), Dense."""
    return U.Sequential(
        U.Dense(8, activation="relu"), U.BatchNorm(), U.Dropout(0.3), U.Dense(3)
    )


def _loss(net: U.Net, x: Any, y: Any) -> Any:
    return U.losses.softmax_cross_entropy(net(x), y)


def _train(net: U.Net, steps: int, opt: Any = None) -> tuple[list[float], Any]:
    opt = opt or U.Adam(net.params(), lr=0.05)
    trainer = U.Trainer(net, opt)
    losses = [float(U.to_numpy(trainer.step(_loss, X, Y))) for _ in range(steps)]
    return losses, trainer


def _default(backend: Any) -> str:
    return U.devices(backend.name)[0]


def _assert_everything_on(backend: Any, net: U.Net, opt: Any, device: str) -> None:
    for name, p in net.params().items():
        assert_on(backend, p.data(), device, f"parameter {name}")
        if p.trainable:
            assert_on(backend, p.grad(), device, f"gradient of {name}")
            for key, v in opt.state[id(p)]["arrays"].items():
                assert_on(backend, v, device, f"optimizer state {key} of {name}")
    assert net.device == device


def _same_trajectory(got: Any, expected: Any, what: str) -> None:
    # Bitwise on one kind of device (CPU here); float32 tolerance across kinds
    # (a GPU's kernels round differently from the CPU's).
    assert_close(got, expected, what, rtol=1e-4, atol=1e-5)


# -- the hooks -----------------------------------------------------------------------


@pytest.mark.requires("devices")
def test_device_hooks(backend, device):
    """devices() lists the framework's default first; to_device places host data
    once (keeping its dtype) and native arrays; device_of names the device."""
    names = backend.devices()
    assert names and all(isinstance(n, str) for n in names)
    defaults = {
        "torch": lambda: __import__("torch").empty(0).device,
        "jax": lambda: __import__("jax").devices()[0],
        "mxnet": lambda: __import__("mxnet").current_context(),
    }
    assert native_device(backend.name, names[0]) == defaults[backend.name]()
    host = np.arange(6, dtype="float64").reshape(2, 3)
    for dtype in ("float32", "int64"):
        x = backend.to_device(host.astype(dtype), device)
        assert_on(backend, x, device, f"to_device of {dtype} host data")
        assert backend.device_of(x) == device
        assert U.to_numpy(x).dtype.name in (dtype, "int32")  # JAX without x64
        np.testing.assert_array_equal(U.to_numpy(x), host.astype(dtype))
    x = backend.to_device(host.astype("float32"), device)
    back = backend.to_device(x, names[0])
    assert_on(backend, back, names[0], "to_device back to the default device")
    assert backend.device_of(back) == names[0]
    np.testing.assert_array_equal(U.to_numpy(back), host)


# -- selecting a device ----------------------------------------------------------------


def test_default_device_and_spellings(backend, device, monkeypatch):
    """No device: the framework's default (the backend's own table); "cpu" is
    "cpu:0"; framework objects name the same device as strings."""
    monkeypatch.delenv("UNIFIED_DEVICE", raising=False)
    names = U.devices(backend.name)
    plain = U.set_backend(backend.name)
    assert U.devices() == names  # the active backend's
    assert plain.device == names[0]
    assert U.set_backend(backend.name, device="cpu") is plain
    assert U.set_backend(backend.name, device="CPU:0") is plain
    table = U.set_backend(backend.name, device=device)
    assert table.device == device and U.current_backend() is table
    assert U.set_backend(backend.name, device=device.upper()) is table
    native = native_device(backend.name, device)
    if backend.name != "numpy":  # framework objects: torch.device, jax/mx devices
        assert U.set_backend(backend.name, device=native) is table
    with U.use_backend(backend.name) as inner:
        assert inner.device == names[0]
    assert U.current_backend() is table  # restored after the block
    U.set_backend(backend.name)


def test_environment_variable(backend, device, monkeypatch):
    """UNIFIED_DEVICE is used when no device is given; an explicit one wins."""
    monkeypatch.setenv("UNIFIED_DEVICE", device)
    try:
        assert U.set_backend(backend.name).device == device
        assert U.set_backend(backend.name, device="cpu").device == _default(backend)
        monkeypatch.setenv("UNIFIED_DEVICE", "gpu:63")
        with pytest.raises(U.DeviceNotAvailableError, match="gpu:63"):
            U.set_backend(backend.name)
    finally:
        monkeypatch.delenv("UNIFIED_DEVICE")
        U.set_backend(backend.name)


def test_unavailable_device_is_a_clear_error(backend, device):
    """Naming the device asked for, the backend, and every device that exists."""
    names = U.devices(backend.name)
    for missing in ("cuda:63", "gpu:63", "cpu:4096"):
        with pytest.raises(U.DeviceNotAvailableError) as info:
            U.set_backend(backend.name, device=missing)
        message = str(info.value)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, U.UnifiedError)
        assert repr(missing) in message and f"backend {backend.name}" in message
        assert f"available: {', '.join(names)}." in message
    if "cuda:0" not in names:  # this machine has no GPU (torch: only "cpu")
        with pytest.raises(U.DeviceNotAvailableError, match="'cuda:0' is not avail"):
            U.set_backend(backend.name, device="cuda:0")
    with pytest.raises(U.DeviceNotAvailableError, match="cannot read the device"):
        U.set_backend(backend.name, device="cpu:first")
    with pytest.raises(TypeError, match="a device is a string"):
        U.set_backend(backend.name, device=3.5)
    U.set_backend(backend.name)
    net = _net()
    net.initialize()
    net(X)
    before = {k: p.numpy() for k, p in net.params().items()}
    with pytest.raises(U.DeviceNotAvailableError, match="gpu:63"):
        net.to("gpu:63")
    for name, p in net.params().items():  # nothing moved
        assert_on(backend, p.data(), _default(backend), name)
        assert_bitwise(p.numpy(), before[name], name)


# -- placement -------------------------------------------------------------------------


def test_everything_is_created_on_the_device(backend, device):
    """Parameters (deferred too), state, gradients, optimizer state, dropout masks,
    converted batches, outputs and compiled-step results."""
    with U.use_backend(backend.name, device=device) as table:
        U.seed(0)
        net = _net()
        net.initialize()
        x = U.asarray(X)
        assert_on(backend, x, device, "U.asarray(NumPy data)")
        assert_on(backend, U.ops.zeros((2, 3), "float32"), device, "ops.zeros")
        with U.use_backend(backend.name):
            default_array = U.asarray(X)
        assert_on(backend, U.asarray(default_array), device, "U.asarray(native)")
        out = net(X)  # deferred Dense weight drawn now, on the device
        assert_on(backend, out, device, "the output of a NumPy batch")
        losses, trainer = _train(net, 2)  # compiled on JAX
        loss = trainer.step(_loss, X, Y)
        assert_on(backend, loss, device, "the loss of a training step")
        _assert_everything_on(backend, net, trainer.optimizer, device)
        masks = U.modes.dropout_masks(net[2], (4, 3), 0.5, "float32", table, count=2)
        for mask in masks:
            assert_on(backend, mask, device, "a dropout mask")
        value, grads = U.value_and_grad(_loss)(net, X, Y)
        assert_on(backend, value, device, "value_and_grad's value")
        for name, g in grads.items():
            assert_on(backend, g, device, f"value_and_grad gradient of {name}")
        with U.training(True):
            assert_on(backend, net(X), device, "a training-mode forward (masks)")


def test_training_on_the_device_follows_the_default_trajectory(backend, device):
    """Same seed, same batches: the same losses and weights on either device."""
    results = {}
    for where in (None, device):
        with U.use_backend(backend.name, device=where):
            U.seed(3)
            net = _net()
            net.initialize()
            losses, _ = _train(net, 4)
            results[where] = (losses, {k: p.numpy() for k, p in net.params().items()})
    (base_losses, base), (losses, got) = results[None], results[device]
    _same_trajectory(losses, base_losses, "losses on the device")
    for name in base:
        _same_trajectory(got[name], base[name], f"{name} after 4 steps")


def test_net_to_moves_everything(backend, device):
    """net.to(device) returns the net and moves parameters, state, gradients and
    existing optimizer state; training continues on the default trajectory."""
    U.set_backend(backend.name)
    reference = {}
    for move in (False, True):
        U.seed(5)
        net = _net()
        net.initialize()
        opt = U.Adam(net.params(), lr=0.05)
        losses, trainer = _train(net, 1, opt)
        if move:
            assert net.to(native_device(backend.name, device)) is net
            _assert_everything_on(backend, net, opt, device)
        losses += [float(U.to_numpy(trainer.step(_loss, X, Y))) for _ in range(2)]
        if move:
            _assert_everything_on(backend, net, opt, device)
            assert_on(backend, net(X), device, "the output after net.to")
            net.to("cpu")
            _assert_everything_on(backend, net, opt, _default(backend))
            losses.append(float(U.to_numpy(trainer.step(_loss, X, Y))))
        else:
            losses.append(float(U.to_numpy(trainer.step(_loss, X, Y))))
        reference[move] = losses, {k: p.numpy() for k, p in net.params().items()}
    _same_trajectory(reference[True][0], reference[False][0], "losses around net.to")
    for name, value in reference[False][1].items():
        _same_trajectory(reference[True][1][name], value, f"{name} around net.to")


def test_checkpoint_round_trip_from_the_device(backend, device, tmp_path):
    """Save from the device; load on the default device and on the device."""
    path = tmp_path / "net.safetensors"
    with U.use_backend(backend.name, device=device):
        U.seed(7)
        net = _net()
        net.initialize()
        _, trainer = _train(net, 2)
        net.save(path, optimizer=trainer.optimizer)
        saved = {k: p.numpy() for k, p in net.params().items()}
        assert saved["0.weight"].shape == (8, 5)  # p.numpy() from the device
        weight = U.to_numpy(net.params()["0.weight"].data())
        assert_bitwise(weight, saved["0.weight"], "U.to_numpy on the device")
    for where in (None, device):
        with U.use_backend(backend.name, device=where):
            other = _net()
            other.initialize()
            other.infer_shape(X.shape)
            opt = U.Adam(other.params(), lr=0.05)
            other.load(path, optimizer=opt)
            target = where or _default(backend)
            for name, p in other.params().items():
                assert_bitwise(p.numpy(), saved[name], f"{name} loaded")
                assert_on(backend, p.data(), target, f"loaded {name}")
            for st in opt.state.values():
                for v in st["arrays"].values():
                    assert_on(backend, v, target, "loaded optimizer state")


@pytest.mark.only_backends("jax")
def test_jax_forced_host_devices(backend):
    """JAX with four host devices (XLA_FLAGS before import): this file again, on
    ``jax.devices()[1]``, in a subprocess (params, training, the compiled step's
    outputs staying there)."""
    if len(U.devices("jax")) > 1:
        pytest.skip("this process already has several JAX devices")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    env.pop("UNIFIED_DEVICE", None)
    here = Path(__file__)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(here),
            "-q",
            "-p",
            "no:cacheprovider",
            "--unified-backend",
            "jax",
            "--unified-device",
            "cpu:1",
            "-k",
            "hooks or spellings or everything or net_to or checkpoint",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]
