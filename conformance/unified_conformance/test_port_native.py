"""SPEC 14 with PyTorch as the source and the oracle: ``from_torch`` on modules in
the style of torchvision's ResNet and MobileNetV2, ``load_native`` of state_dicts
and files, ``to_native`` trained with ``torch.optim``, and one error listing every
unsupported node for both importers."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: E402

import unified as U

from .helpers import assert_bitwise

pytestmark = pytest.mark.reference("torch")

from .torch_models import MobileNetV2, ResNet  # noqa: E402


def _x(n=2, side=32, dtype="float32"):
    return np.random.default_rng(0).standard_normal((n, 3, side, side)).astype(dtype)


def _source(cls):
    torch.manual_seed(0)
    return cls().eval()


@pytest.mark.parametrize("cls", [ResNet, MobileNetV2])
def test_from_torch_gives_torch_outputs_and_state_dict_names(backend, cls):
    """Inference equals the module's eval output; names are the state_dict keys
    (BatchNorm's ``num_batches_tracked`` counter left out), values bit for bit."""
    module = _source(cls)
    x = _x()
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    net = U.from_torch(module)
    state = {k: v for k, v in module.state_dict().items() if "num_batches" not in k}
    assert list(net.params()) == list(state)
    for n, p in net.params().items():
        assert_bitwise(p.numpy(), state[n].numpy(), n)
    got = U.to_numpy(net(x))
    np.testing.assert_allclose(
        got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max()
    )


@pytest.mark.only_backends("numpy", "torch", "mxnet")
@pytest.mark.parametrize("cls", [ResNet, MobileNetV2])
def test_from_torch_training_step_equals_torch_optim(backend, cls):
    """One SGD-momentum step in training mode equals torch.optim.SGD on the module
    itself (float64 on both sides): parameters and running statistics with
    PyTorch's momentum 0.1 and unbiased running variance."""
    module = _source(cls).double()
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # masks come from each framework's own RNG
    x, y = _x(4, 32, "float64"), np.array([1, 2, 3, 4])
    net = U.from_torch(module)
    module.train()
    opt = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(
        module(torch.from_numpy(x)), torch.from_numpy(y)
    )
    loss.backward()
    opt.step()
    loss = loss.detach()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.05, momentum=0.9))
    got_loss = float(
        trainer.step(lambda n, a, b: U.losses.softmax_cross_entropy(n(a), b), x, y)
    )
    assert abs(got_loss - float(loss)) < 1e-9 * max(1.0, abs(float(loss)))
    state = module.state_dict()
    for n, p in net.params().items():
        np.testing.assert_allclose(
            p.numpy(), state[n].numpy(), rtol=1e-9, atol=1e-12, err_msg=n
        )


def test_to_native_torch_trains_with_torch_optim(backend):
    """The exported module is an nn.Module in eval mode whose parameters
    torch.optim moves exactly as it moves the original module's."""
    original = _source(ResNet).double()
    net = U.from_torch(original)
    exported = net.to_native("torch")
    assert not exported.training
    assert list(exported.state_dict()) == list(net.params())
    x, y = torch.from_numpy(_x(4, 32, "float64")), torch.tensor([1, 2, 3, 4])
    for module in (original, exported):
        module.train()
        opt = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
        torch.nn.functional.cross_entropy(module(x), y).backward()
        opt.step()
    want, got = original.state_dict(), exported.state_dict()
    for n in got:
        np.testing.assert_allclose(
            got[n].numpy(), want[n].numpy(), rtol=1e-10, err_msg=n
        )


def test_to_native_jax_apply_fn_and_state(backend):
    """``apply_fn(params, x)`` equals the source in inference; with training=True it
    returns the running statistics torch's own training forward produces."""
    import jax

    module = _source(MobileNetV2)
    net = U.from_torch(module)
    apply_fn, params = net.to_native("jax")
    x = _x()
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    out = np.asarray(jax.jit(lambda p, a: apply_fn(p, a))(params, x))
    np.testing.assert_allclose(
        out, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max()
    )
    _, state = apply_fn(params, x, training=True)
    module.train()
    with torch.no_grad():
        module(torch.from_numpy(x))
    for n, v in state.items():
        np.testing.assert_allclose(
            np.asarray(v),
            module.state_dict()[n].numpy(),
            rtol=1e-4,
            atol=1e-6,
            err_msg=n,
        )


def _hand_net():
    return U.Sequential(
        U.Conv2D(4, 3, in_channels=3),
        U.BatchNorm(momentum=0.9),
        U.ReLU(),
        U.Flatten(),
        U.Dense(5),
    )


def _torch_twin():
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 5),
    ).eval()


@pytest.mark.parametrize("form", ["state_dict", "pt", "safetensors", "module"])
def test_load_native_matches_by_structure(backend, form, tmp_path):
    """A state_dict (dict, weights-only .pt, .safetensors or the module) loads into a
    unified net of the same architecture by order and shape; outputs agree."""
    twin = _torch_twin()
    with torch.no_grad():
        twin[1].running_mean.uniform_(-1, 1)
        twin[1].running_var.uniform_(0.5, 2)
    source = {
        "state_dict": twin.state_dict(),
        "module": twin,
    }.get(form)
    if form == "pt":
        source = str(tmp_path / "w.pt")
        torch.save(twin.state_dict(), source)
    if form == "safetensors":
        from safetensors.torch import save_file

        source = str(tmp_path / "w.safetensors")
        save_file({k: v.contiguous() for k, v in twin.state_dict().items()}, source)
    net = _hand_net()
    net.initialize()
    U.load_native(net, source)
    x = _x(2, 8)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(U.to_numpy(net(x)), expected, rtol=1e-4, atol=1e-5)


def test_load_native_lists_every_mismatch_and_changes_nothing(backend):
    net = U.Sequential(
        U.Conv2D(4, 3, in_channels=3),
        U.BatchNorm(in_channels=4),
        U.Dense(7, in_units=144),
    )
    net.initialize()
    before = {n: p.numpy() for n, p in net.params().items()}
    with pytest.raises(U.CheckpointError) as err:
        U.load_native(net, _torch_twin().state_dict())
    msg = str(err.value)
    assert "'2.weight'" in msg and "(5, 144)" in msg and "'2.bias'" in msg
    for n, p in net.params().items():
        np.testing.assert_array_equal(p.numpy(), before[n])


def test_load_native_refuses_pickled_pt(backend, tmp_path):
    path = str(tmp_path / "model.pt")
    torch.save(_torch_twin(), path)  # a whole pickled module, not a state_dict
    net = _hand_net()
    net.initialize()
    with pytest.raises(U.CheckpointError, match="weights_only"):
        U.load_native(net, path)


class _Odd(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.act = torch.nn.Hardswish()

    def forward(self, x):
        y = torch.sort(self.fc(x), dim=1).values
        return self.act(y).exp()


def test_unsupported_torch_nodes_are_listed_in_one_error(backend):
    with pytest.raises(U.ConversionError) as err:
        U.from_torch(_Odd())
    msg = str(err.value)
    assert "act (Hardswish)" in msg and "sort" in msg and "exp" in msg


@pytest.mark.reference("mxnet")
def test_unsupported_gluon_nodes_are_listed_in_one_error(backend):
    from mxnet.gluon import nn
    from unified_mxnet import mx  # restores numpy.bool before mxnet loads

    class Odd(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.fc = nn.Dense(4)
            self.act = nn.PReLU()

        def hybrid_forward(self, F, x):
            return F.sort(self.act(self.fc(x)), axis=1).exp()

    block = Odd()
    block.initialize()
    block(mx.nd.ones((2, 3)))
    with pytest.raises(U.ConversionError) as err:
        U.from_gluon(block)
    msg = str(err.value)
    assert "act (PReLU)" in msg and "sort" in msg and "exp" in msg
