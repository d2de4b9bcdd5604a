"""Conformance of the convolution, pooling, embedding and flatten layers (SPEC 13).

Every layer runs on the ``backend`` fixture with NumPy inputs (float32, one float64
case) and is checked against independent implementations:

* the native framework's own module, ``torch.nn`` (float64, the unified layer's
  weights copied across; the layouts agree, so a copy is a plain copy) and Gluon's
  ``mxnet.gluon.nn`` blocks (float32);
* parameter gradients of a small conv net's cross-entropy against torch autograd
  on the same weights;
* deferred shapes: inferring ``in_channels`` at the first forward gives values
  bitwise equal to giving them at construction (SPEC 4);
* a LeNet-5-style net (as ``Sequential`` and as a custom ``Net``): names, shapes,
  initial weights bitwise equal to the NumPy backend's for one seed, and three
  ``Trainer`` SGD-momentum steps within float32 tolerance of the NumPy backend.

Max-pooling inputs are tie-free so the tie rule does not matter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import unified as U

from .helpers import assert_bitwise, assert_close, host, native

RNG = np.random.default_rng(20240614)


def _data(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    """Tie-free values (a permutation, spaced 0.01 apart), centred on zero."""
    size = int(np.prod(shape))
    values = (RNG.permutation(size) - size / 2) * (4.0 / size)
    return values.reshape(shape).astype(dtype)


# -- against torch.nn ------------------------------------------------------------
# name -> (unified layer, torch module (given torch.nn), input shape, torch post-op)
TorchCase = tuple[
    Callable[[], U.Net], Callable[[Any], Any], tuple[int, ...], str | None
]
TORCH_CASES: dict[str, TorchCase] = {
    "Conv1D": (
        lambda: U.Conv1D(4, 3, strides=2, padding=1),
        lambda nn: nn.Conv1d(3, 4, 3, stride=2, padding=1),
        (4, 3, 9),
        None,
    ),
    "Conv1D-dilated-groups": (
        lambda: U.Conv1D(4, 2, dilation=2, groups=2, use_bias=False),
        lambda nn: nn.Conv1d(2, 4, 2, dilation=2, groups=2, bias=False),
        (4, 2, 7),
        None,
    ),
    "Conv2D-relu": (
        lambda: U.Conv2D(
            5,
            (3, 2),
            strides=(2, 1),
            padding=(1, 0),
            dilation=(1, 2),
            activation="relu",
        ),
        lambda nn: nn.Conv2d(
            3, 5, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)
        ),
        (4, 3, 7, 6),
        "relu",
    ),
    "Conv2D-groups-stride-alias": (
        lambda: U.Conv2D(4, 3, stride=2, groups=2, in_channels=4),
        lambda nn: nn.Conv2d(4, 4, 3, stride=2, groups=2),
        (4, 4, 7, 7),
        None,
    ),
    "Conv2DTranspose": (
        lambda: U.Conv2DTranspose(4, 3, strides=2, padding=1, output_padding=1),
        lambda nn: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
        (4, 3, 4, 5),
        None,
    ),
    "Conv2DTranspose-groups-dilated": (
        lambda: U.Conv2DTranspose(4, 2, dilation=2, groups=2, activation="tanh"),
        lambda nn: nn.ConvTranspose2d(4, 4, 2, groups=2, dilation=2),
        (4, 4, 3, 3),
        "tanh",
    ),
    "MaxPool1D": (
        lambda: U.MaxPool1D(3, 2, 1),
        lambda nn: nn.MaxPool1d(3, 2, 1),
        (4, 2, 8),
        None,
    ),
    "MaxPool2D-ceil": (
        lambda: U.MaxPool2D(3, strides=2, padding=1, ceil_mode=True),
        lambda nn: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        (4, 2, 6, 7),
        None,
    ),
    "MaxPool2D-default": (
        lambda: U.MaxPool2D(),
        lambda nn: nn.MaxPool2d(2),
        (4, 2, 5, 6),
        None,
    ),
    "AvgPool1D-exclude-pad": (
        lambda: U.AvgPool1D(3, 2, 1, count_include_pad=False),
        lambda nn: nn.AvgPool1d(3, 2, 1, count_include_pad=False),
        (4, 2, 8),
        None,
    ),
    "AvgPool2D-ceil": (
        lambda: U.AvgPool2D(3, strides=2, padding=1, ceil_mode=True),
        lambda nn: nn.AvgPool2d(3, 2, 1, ceil_mode=True),
        (4, 2, 6, 7),
        None,
    ),
    "GlobalAvgPool1D": (
        lambda: U.GlobalAvgPool1D(),
        lambda nn: nn.AdaptiveAvgPool1d(1),
        (4, 3, 5),
        None,
    ),
    "GlobalAvgPool2D": (
        lambda: U.GlobalAvgPool2D(),
        lambda nn: nn.AdaptiveAvgPool2d(1),
        (4, 3, 5, 4),
        None,
    ),
    "GlobalMaxPool1D": (
        lambda: U.GlobalMaxPool1D(),
        lambda nn: nn.AdaptiveMaxPool1d(1),
        (4, 3, 5),
        None,
    ),
    "GlobalMaxPool2D": (
        lambda: U.GlobalMaxPool2D(),
        lambda nn: nn.AdaptiveMaxPool2d(1),
        (4, 3, 5, 4),
        None,
    ),
    "Flatten": (lambda: U.Flatten(), lambda nn: nn.Flatten(), (4, 3, 2, 5), None),
}


def _copy_into_torch(layer: U.Net, module: Any, dtype: Any) -> None:
    import torch

    for name, p in layer.params().items():
        getattr(module, name).data = torch.tensor(p.numpy(), dtype=dtype)


@pytest.mark.reference("torch")
@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_layer_matches_torch_module(backend: Any, name: str) -> None:
    """Output equals torch.nn's module (float64) with the unified weights copied."""
    import torch

    make, make_torch, shape, post = TORCH_CASES[name]
    U.seed(1)
    layer = make()
    layer.initialize(U.init.Xavier())
    x = _data(shape)
    got = U.to_numpy(layer(x))
    module = make_torch(torch.nn).double()
    _copy_into_torch(layer, module, torch.float64)
    with torch.no_grad():
        want = module(torch.tensor(x, dtype=torch.float64))
        if post is not None:
            want = getattr(torch, post)(want)
    assert got.dtype == np.float32, f"{name}: dtype {got.dtype}"
    assert_close(got, want.numpy(), f"{name} vs torch.nn", rtol=1e-5, atol=1e-5)


@pytest.mark.reference("torch")
def test_float64_conv_matches_torch(backend: Any) -> None:
    """A float64 Conv2D stays float64 and matches torch in float64.

    Without 64-bit support (JAX's default) it computes in float32.
    """
    import torch

    U.seed(2)
    layer = U.Conv2D(3, 3, padding=1, dtype="float64")
    layer.initialize()
    x = _data((4, 2, 6, 6), "float64")
    got = U.to_numpy(layer(x))
    conv = torch.nn.Conv2d(2, 3, 3, padding=1).double()
    _copy_into_torch(layer, conv, torch.float64)
    with torch.no_grad():
        want = conv(torch.tensor(x))
    # JAX without x64 (its default, left alone) stores float64 as float32.
    wide = backend.to_numpy(backend.asarray(np.zeros(1), "float64")).dtype
    assert got.dtype == wide, f"float64 layer gave {got.dtype}"
    tol = 1e-12 if wide == np.float64 else 1e-5
    assert_close(got, want.numpy(), "float64 conv", rtol=tol, atol=tol)


@pytest.mark.reference("torch")
def test_embedding_matches_torch(backend: Any) -> None:
    """Integer NumPy indices of any shape look up the rows torch.nn.Embedding does."""
    import torch

    U.seed(3)
    emb = U.Embedding(10, 3)
    emb.initialize(U.init.Normal(1.0))
    idx = RNG.integers(0, 10, (4, 5))
    got = U.to_numpy(emb(idx))
    module = torch.nn.Embedding(10, 3).double()
    _copy_into_torch(emb, module, torch.float64)
    with torch.no_grad():
        want = module(torch.tensor(idx))
    assert got.shape == (4, 5, 3) and got.dtype == np.float32
    assert_close(got, want.numpy(), "Embedding vs torch.nn.Embedding")


# -- against Gluon ---------------------------------------------------------------
GluonCase = tuple[Callable[[], U.Net], Callable[[Any], Any], tuple[int, ...]]
GLUON_CASES: dict[str, GluonCase] = {
    "Conv2D": (
        lambda: U.Conv2D(4, 3, strides=2, padding=1, activation="relu"),
        lambda nn: nn.Conv2D(
            4, 3, strides=2, padding=1, activation="relu", in_channels=3
        ),
        (4, 3, 7, 6),
    ),
    "MaxPool2D": (
        lambda: U.MaxPool2D(3, 2, 1),
        lambda nn: nn.MaxPool2D(3, 2, 1),
        (4, 2, 7, 7),
    ),
    "AvgPool2D": (
        lambda: U.AvgPool2D(3, 2, 1, count_include_pad=False),
        lambda nn: nn.AvgPool2D(3, 2, 1, count_include_pad=False),
        (4, 2, 7, 7),
    ),
    "GlobalAvgPool2D": (
        lambda: U.GlobalAvgPool2D(),
        lambda nn: nn.GlobalAvgPool2D(),
        (4, 3, 5, 4),
    ),
    "Flatten": (lambda: U.Flatten(), lambda nn: nn.Flatten(), (4, 3, 2, 5)),
    "Dense-flatten": (
        lambda: U.Dense(5, flatten=True),
        lambda nn: nn.Dense(5, in_units=30),
        (4, 3, 2, 5),
    ),
}


def _gluon() -> Any:
    from unified_mxnet import mx  # restores numpy.bool before mxnet loads

    return mx


@pytest.mark.reference("mxnet")
@pytest.mark.parametrize("name", sorted(GLUON_CASES))
def test_layer_matches_gluon_block(backend: Any, name: str) -> None:
    """Output (and the output shape) equals the Gluon block's with the same weights."""
    mx = _gluon()
    make, make_gluon, shape = GLUON_CASES[name]
    U.seed(4)
    layer = make()
    layer.initialize(U.init.Xavier())
    x = _data(shape)
    got = U.to_numpy(layer(x))
    block = make_gluon(mx.gluon.nn)
    block.initialize()
    for pname, p in layer.params().items():
        getattr(block, pname).set_data(mx.nd.array(p.numpy()))
    want = block(mx.nd.array(x)).asnumpy()
    assert_close(got, want, f"{name} vs Gluon", rtol=1e-5, atol=1e-5)


@pytest.mark.reference("mxnet")
def test_embedding_matches_gluon(backend: Any) -> None:
    mx = _gluon()
    U.seed(5)
    emb = U.Embedding(7, 4)
    emb.initialize()
    idx = RNG.integers(0, 7, (4, 3))
    block = mx.gluon.nn.Embedding(7, 4)
    block.initialize()
    block.weight.set_data(mx.nd.array(emb.weight.numpy()))
    want = block(mx.nd.array(idx)).asnumpy()
    assert_close(U.to_numpy(emb(idx)), want, "Embedding vs Gluon", rtol=0, atol=0)


# -- gradients against torch autograd --------------------------------------------
def _small_net() -> U.Sequential:
    return U.Sequential(
        U.Conv2D(4, 3, padding=1, activation="relu"),
        U.MaxPool2D(2),
        U.Conv2DTranspose(2, 2, strides=2, activation="tanh"),
        U.AvgPool2D(2),
        U.Flatten(),
        U.Dense(3),
    )


@pytest.mark.reference("torch")
def test_conv_net_gradients_match_torch_autograd(backend: Any) -> None:
    """Every parameter gradient of a conv net's cross-entropy equals torch's."""
    import torch

    nn = torch.nn
    U.seed(6)
    net = _small_net()
    net.initialize(U.init.Xavier())
    x = _data((4, 2, 6, 6))
    y = np.array([0, 2, 1, 2])
    loss, _ = U.value_and_grad(lambda n, a: U.losses.softmax_cross_entropy(n(a), y))(
        net, native(backend, x)
    )
    ref = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.ConvTranspose2d(4, 2, 2, stride=2),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(18, 3),
    ).double()
    where = {"0": ref[0], "2": ref[3], "5": ref[7]}
    for pname, p in net.params().items():
        layer, attr = pname.split(".")
        getattr(where[layer], attr).data = torch.tensor(p.numpy(), dtype=torch.float64)
    want = nn.functional.cross_entropy(
        ref(torch.tensor(x, dtype=torch.float64)), torch.tensor(y)
    )
    want.backward()
    assert_close(host(backend, loss), want.item(), "loss")
    for pname, p in net.params().items():
        layer, attr = pname.split(".")
        expected = getattr(where[layer], attr).grad.numpy()
        assert_close(
            host(backend, p.grad()), expected, f"grad {pname}", rtol=1e-4, atol=1e-6
        )


# -- deferred shapes -------------------------------------------------------------
DEFERRED = {
    "Conv1D": (lambda **kw: U.Conv1D(4, 3, padding=1, **kw), (4, 3, 6)),
    "Conv2D": (lambda **kw: U.Conv2D(4, (3, 2), groups=2, **kw), (4, 6, 5, 5)),
    "Conv2DTranspose": (
        lambda **kw: U.Conv2DTranspose(4, 3, strides=2, groups=2, **kw),
        (4, 2, 3, 3),
    ),
}


@pytest.mark.parametrize("name", sorted(DEFERRED))
def test_deferred_equals_eager_bitwise(backend: Any, name: str) -> None:
    """Inferring in_channels gives the eager layer's weights and outputs, bitwise."""
    make, shape = DEFERRED[name]
    x = _data(shape)
    results = []
    for kw in ({"in_channels": shape[1]}, {}):
        U.seed(7)
        layer = make(**kw)
        if not kw:
            assert -1 in layer.weight.shape, layer.weight.shape
        layer.initialize(U.init.Xavier(magnitude=2.0))
        out = U.to_numpy(layer(x))
        results.append((layer.weight.numpy(), layer.bias.numpy(), out))
    (w0, b0, y0), (w1, b1, y1) = results
    assert_bitwise(w1, w0, f"{name} deferred weight")
    assert_bitwise(b1, b0, f"{name} deferred bias")
    assert_bitwise(y1, y0, f"{name} deferred output")
    other = list(shape)
    other[1] *= 2
    with pytest.raises(U.ShapeError, match=name):
        layer(_data(tuple(other)))


def test_conv_fan_uses_kernel_size(backend: Any) -> None:
    """Xavier's bound uses fan_in = in * prod(kernel), fan_out = out * prod(kernel)."""
    U.seed(8)
    layer = U.Conv2D(16, 5, in_channels=8, weight_initializer=U.init.Xavier())
    layer.initialize()
    w = layer.weight.numpy()
    bound = np.sqrt(3.0 / ((8 * 25 + 16 * 25) / 2))
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound
    assert not layer.bias.numpy().any()


# -- LeNet -----------------------------------------------------------------------
def _lenet_sequential() -> U.Net:
    return U.Sequential(
        U.Conv2D(6, 5, activation="relu"),
        U.MaxPool2D(2),
        U.Conv2D(16, 5, activation="relu"),
        U.MaxPool2D(2),
        U.Flatten(),
        U.Dense(120, activation="relu"),
        U.Dense(84, activation="relu"),
        U.Dense(10),
    )


class LeNet(U.Net):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = U.Conv2D(6, 5, activation="relu")
        self.pool1 = U.MaxPool2D(2)
        self.conv2 = U.Conv2D(16, 5, activation="relu")
        self.pool2 = U.MaxPool2D(2)
        self.flatten = U.Flatten()
        self.fc1 = U.Dense(120, activation="relu")
        self.fc2 = U.Dense(84, activation="relu")
        self.out = U.Dense(10)

    def forward(self, x: Any) -> Any:
        x = self.pool1(self.conv1(x))
        x = self.flatten(self.pool2(self.conv2(x)))
        return self.out(self.fc2(self.fc1(x)))


LENETS = {"Sequential": _lenet_sequential, "Net": LeNet}
LENET_X = RNG.standard_normal((4, 1, 28, 28)).astype(np.float32)
LENET_Y = np.array([3, 1, 9, 0])
SEQ_SHAPES = {
    "0.weight": (6, 1, 5, 5),
    "0.bias": (6,),
    "2.weight": (16, 6, 5, 5),
    "2.bias": (16,),
    "5.weight": (120, 256),
    "5.bias": (120,),
    "6.weight": (84, 120),
    "6.bias": (84,),
    "7.weight": (10, 84),
    "7.bias": (10,),
}


def _ce(net: U.Net, x: Any, y: Any) -> Any:
    return U.losses.softmax_cross_entropy(net(x), y)


def _run_lenet(kind: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Initial and trained (3 SGD-momentum steps) weights on the active backend."""
    U.seed(9)
    net = LENETS[kind]()
    net.initialize(U.init.Xavier())
    net.infer_shape(LENET_X.shape)
    start = {n: p.numpy() for n, p in net.params().items()}
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.05, momentum=0.9))
    for _ in range(3):
        trainer.step(_ce, LENET_X, LENET_Y)
    return start, {n: p.numpy() for n, p in net.params().items()}


@functools.cache
def _lenet_on_numpy(kind: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with U.use_backend("numpy"):
        return _run_lenet(kind)


@pytest.mark.parametrize("kind", sorted(LENETS))
def test_lenet_matches_numpy_backend(backend: Any, kind: str) -> None:
    """Same seed: bitwise-equal initial weights; 3 Trainer steps agree in float32."""
    start, trained = _run_lenet(kind)
    ref_start, ref_trained = _lenet_on_numpy(kind)
    if kind == "Sequential":
        got = {n: tuple(a.shape) for n, a in start.items()}
        assert got == SEQ_SHAPES
    assert list(start) == list(ref_start)
    for n in start:
        assert_bitwise(start[n], ref_start[n], f"LeNet {kind} initial {n}")
        assert not np.array_equal(trained[n], start[n]), f"{n} was not trained"
        assert_close(trained[n], ref_trained[n], f"LeNet {kind} trained {n}", atol=1e-5)


def test_lenet_names(backend: Any) -> None:
    names = list(LeNet().params())
    assert names[:2] == ["conv1.weight", "conv1.bias"]
    assert names[-2:] == ["out.weight", "out.bias"]


# -- Embedding range checks ------------------------------------------------------
@pytest.mark.parametrize("bad", [5, -1])
def test_embedding_index_out_of_range(backend: Any, bad: int) -> None:
    """Indices outside [0, input_dim) raise IndexError, never a silent row."""
    emb = U.Embedding(5, 2)
    emb.initialize()
    with pytest.raises(IndexError, match=rf"index {bad} is outside \[0, 5\)"):
        emb(np.array([[0, bad], [1, 2]]))


def test_embedding_index_checked_in_trainer_step(backend: Any) -> None:
    """In a (possibly compiled) Trainer step a bad index raises; nothing changes."""
    U.seed(10)
    net = U.Sequential(U.Embedding(5, 3), U.Flatten(), U.Dense(2))
    net.initialize()
    good = np.array([[0, 4], [1, 2]])
    y = np.array([0, 1])
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1))
    trainer.step(_ce, good, y)
    before = {n: p.numpy() for n, p in net.params().items()}
    with pytest.raises(IndexError, match=r"outside \[0, 5\)"):
        trainer.step(_ce, np.array([[0, 5], [1, 2]]), y)
    for n, p in net.params().items():
        assert_bitwise(p.numpy(), before[n], f"{n} after the failed step")


# -- constructor checks ----------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: U.Conv2D(0, 3), ValueError, "channels"),
        (lambda: U.Conv2D(4, (3, 3, 3)), ValueError, "kernel_size"),
        (lambda: U.Conv2D(4, 3, padding=-1), ValueError, "padding"),
        (lambda: U.Conv2D(3, 3, groups=2), ValueError, "groups"),
        (lambda: U.Conv2D(4, 3, strides=2, stride=2), TypeError, "stride"),
        (lambda: U.Conv1D(4, 2.0), TypeError, "kernel_size"),
        (lambda: U.Conv2D(4, 3, activation="nope"), ValueError, "nope"),
        (
            lambda: U.Conv2DTranspose(4, 3, strides=2, output_padding=2),
            ValueError,
            "output_padding",
        ),
        (lambda: U.MaxPool2D(2, padding=2), ValueError, "padding"),
        (lambda: U.AvgPool1D(0), ValueError, "pool_size"),
        (lambda: U.Embedding(0, 3), ValueError, "input_dim"),
    ],
)
def test_constructor_errors_name_the_argument(
    make: Any, error: Any, match: str
) -> None:
    with pytest.raises(error, match=match):
        make()


def test_wrong_rank_is_a_shape_error(backend: Any) -> None:
    layer = U.Conv2D(2, 3)
    layer.initialize()
    with pytest.raises(U.ShapeError, match=r"4 dims \(N, C, H, W\)"):
        layer(_data((4, 3, 5)))
    with pytest.raises(U.ShapeError, match="MaxPool1D"):
        U.MaxPool1D()(_data((4, 3, 5, 5)))
