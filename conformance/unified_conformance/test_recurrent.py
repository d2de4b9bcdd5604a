"""Conformance of the recurrent layers ``RNN``, ``LSTM`` and ``GRU`` (SPEC 13).

Every layer runs on the ``backend`` fixture with NumPy float32 inputs and states and
is checked against independent implementations:

* a float64 NumPy oracle written here (a plain loop over time implementing the
  formulas of PyTorch and Gluon, with host-drawn dropout masks restated from SPEC 12);
* ``torch.nn.RNN/LSTM/GRU`` (float64) with the weights copied across under their
  PyTorch names (``torch_name``), both layouts, 2 layers, bidirectional, forward
  outputs, final states and every parameter gradient (torch autograd);
* Gluon's ``mxnet.gluon.rnn.RNN/LSTM/GRU`` (float32) with the weights copied by name;
* deferred ``input_size`` == eager, bitwise; sharing one LSTM between two inputs,
  freezing it and giving it its own learning rate (seed 003's PyTorch habits);
* three ``Trainer`` steps of an Embedding + LSTM + Dense model (with between-layer
  dropout) within float32 tolerance of the NumPy backend, same initial weights.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import unified as U
from unified.layers.recurrent import gluon_file_name, gluon_name, torch_name

from .helpers import assert_bitwise, assert_close, host, native

RNG = np.random.default_rng(20240615)
T, N, C, H = 5, 3, 4, 6
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
STATES = {"RNN": 1, "LSTM": 2, "GRU": 1}


# -- the float64 oracle -----------------------------------------------------------
def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _step(kind: str, act: str, x: np.ndarray, state: list[np.ndarray], w: dict) -> list:
    """One time step of one cell, the formulas of PyTorch's and Gluon's docs."""
    h = state[0]
    gx = x @ w["i2h_weight"].T + w["i2h_bias"]
    gh = h @ w["h2h_weight"].T + w["h2h_bias"]
    if kind == "RNN":
        pre = gx + gh
        return [np.tanh(pre) if act == "tanh" else np.maximum(pre, 0.0)]
    if kind == "LSTM":
        i, f, g, o = np.split(gx + gh, 4, axis=1)
        c = _sigmoid(f) * state[1] + _sigmoid(i) * np.tanh(g)
        return [_sigmoid(o) * np.tanh(c), c]
    xr, xz, xn = np.split(gx, 3, axis=1)
    hr, hz, hn = np.split(gh, 3, axis=1)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return [(1.0 - z) * n + z * h]


def oracle(
    layer: U.Net,
    x: np.ndarray,
    states: list[np.ndarray] | None,
    masks: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Output and final states of ``layer``'s configuration, in float64."""
    kind = type(layer).__name__
    act = getattr(layer, "activation", "tanh")
    dirs = 2 if layer.bidirectional else 1
    p = {n: q.numpy().astype(np.float64) for n, q in layer.params().items()}
    seq = x.astype(np.float64)
    if layer.layout == "NTC":
        seq = seq.transpose(1, 0, 2)
    steps, batch = seq.shape[:2]
    zeros = np.zeros((layer.num_layers * dirs, batch, layer.hidden_size))
    init = [np.asarray(s, np.float64) for s in states] if states else None
    init = init or [zeros] * STATES[kind]
    finals: list[list[np.ndarray]] = [[] for _ in range(STATES[kind])]
    for k in range(layer.num_layers):
        outs = []
        for j, d in enumerate("lr"[:dirs]):
            w = {
                key: p[f"{d}{k}_{key}"]
                for key in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")
            }
            state = [s[k * dirs + j] for s in init]
            ys = [np.zeros(0)] * steps
            order = range(steps) if d == "l" else reversed(range(steps))
            for t in order:
                state = _step(kind, act, seq[t], state, w)
                ys[t] = state[0]
            outs.append(np.stack(ys))
            for i, s in enumerate(state):
                finals[i].append(s)
        seq = np.concatenate(outs, axis=2)
        if masks is not None and k < layer.num_layers - 1:
            seq = seq * masks[k]
    if layer.layout == "NTC":
        seq = seq.transpose(1, 0, 2)
    return seq, [np.stack(f) for f in finals]


# -- cases ------------------------------------------------------------------------
CASES: dict[str, Callable[[], U.Net]] = {
    "RNN-tanh": lambda: U.RNN(H),
    "RNN-relu-2-bi-NTC": lambda: U.RNN(
        H, 2, activation="relu", bidirectional=True, layout="NTC"
    ),
    "LSTM": lambda: U.LSTM(H),
    "LSTM-2-bi": lambda: U.LSTM(H, num_layers=2, bidirectional=True),
    "LSTM-2-NTC": lambda: U.LSTM(H, num_layers=2, layout="NTC"),
    "GRU": lambda: U.GRU(H),
    "GRU-2-bi-NTC": lambda: U.GRU(H, 2, bidirectional=True, layout="NTC"),
}


def _input(layer: U.Net, dtype: str = "float32") -> np.ndarray:
    shape = (N, T, C) if layer.layout == "NTC" else (T, N, C)
    return RNG.standard_normal(shape).astype(dtype)


def _states(layer: U.Net) -> list[np.ndarray]:
    dirs = 2 if layer.bidirectional else 1
    shape = (layer.num_layers * dirs, N, H)
    kind = type(layer).__name__
    return [RNG.standard_normal(shape).astype(np.float32) for _ in range(STATES[kind])]


def _make(name: str, seed: int = 1) -> U.Net:
    U.seed(seed)
    layer = CASES[name]()
    # Xavier weights and non-zero biases: every term of the formulas matters.
    layer.initialize(U.init.Xavier())
    layer.infer_shape((T, N, C) if layer.layout == "TNC" else (N, T, C))
    for pname, p in layer.params().items():
        if pname.endswith("bias"):
            p.set_data(RNG.uniform(-0.5, 0.5, p.shape))
    return layer


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_float64_oracle(backend: Any, name: str) -> None:
    """Output and final states equal the oracle; without states, the output alone."""
    layer = _make(name)
    x, states = _input(layer), _states(layer)
    out, new = layer(x, states)
    want, want_states = oracle(layer, x, states)
    assert U.to_numpy(out).dtype == np.float32
    assert_close(U.to_numpy(out), want, f"{name} output", rtol=1e-5, atol=1e-5)
    assert len(new) == len(want_states), f"{name}: {len(new)} states"
    for i, (got, ref) in enumerate(zip(new, want_states)):
        assert_close(U.to_numpy(got), ref, f"{name} state {i}", rtol=1e-5, atol=1e-5)
    plain = layer(x)  # zero initial states, output only
    want0, _ = oracle(layer, x, None)
    assert_close(U.to_numpy(plain), want0, f"{name} output (no states)", atol=1e-5)


def _torch_module(layer: U.Net, torch: Any) -> Any:
    kind = type(layer).__name__
    kw: dict[str, Any] = {
        "num_layers": layer.num_layers,
        "bidirectional": layer.bidirectional,
        "batch_first": layer.layout == "NTC",
    }
    if kind == "RNN":
        kw["nonlinearity"] = layer.activation
    module = getattr(torch.nn, kind)(C, H, **kw).double()
    for pname, p in layer.params().items():
        getattr(module, torch_name(pname)).data = torch.tensor(p.numpy()).double()
    return module


@pytest.mark.reference("torch")
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_module(backend: Any, name: str) -> None:
    """Output and final states equal torch.nn's module with the weights copied."""
    import torch

    layer = _make(name, seed=2)
    x, states = _input(layer), _states(layer)
    out, new = layer(x, states)
    module = _torch_module(layer, torch)
    t_states = [torch.tensor(s).double() for s in states]
    with torch.no_grad():
        want, t_new = module(
            torch.tensor(x).double(),
            tuple(t_states) if len(states) == 2 else t_states[0],
        )
    t_new = list(t_new) if isinstance(t_new, tuple) else [t_new]
    assert_close(U.to_numpy(out), want.numpy(), f"{name} vs torch", atol=1e-5)
    for i, (got, ref) in enumerate(zip(new, t_new)):
        assert_close(
            U.to_numpy(got), ref.numpy(), f"{name} state {i} vs torch", atol=1e-5
        )


@pytest.mark.reference("torch")
def test_names_map_to_torch_one_to_one(backend: Any) -> None:
    """Names, shapes and order equal torch's state_dict under torch_name/gluon_name."""
    import torch

    layer = U.LSTM(H, num_layers=2, bidirectional=True, input_size=C)
    module = torch.nn.LSTM(C, H, num_layers=2, bidirectional=True)
    ours = {torch_name(n): p.shape for n, p in layer.params().items()}
    theirs = {n: tuple(v.shape) for n, v in module.state_dict().items()}
    assert list(ours) == list(theirs) and ours == theirs
    assert [gluon_name(n) for n in theirs] == list(layer.params())
    assert list(layer.params())[4:6] == ["r0_i2h_weight", "r0_h2h_weight"]
    assert layer.params()["l1_i2h_weight"].shape == (4 * H, 2 * H)
    with pytest.raises(ValueError, match="weight_ih_l0"):
        gluon_name("l0_i2h_weight")


def _gluon() -> Any:
    from unified_mxnet import mx as mxnet  # numpy.bool before mxnet loads

    return mxnet


@pytest.mark.reference("mxnet")
@pytest.mark.parametrize("bidirectional", [False, True])
def test_names_map_to_gluon_files(backend: Any, bidirectional: bool) -> None:
    """Gluon's block attributes are our names; its save_parameters keys map one to
    one through gluon_file_name, in the same order."""
    mx = _gluon()
    block = mx.gluon.rnn.GRU(H, 2, bidirectional=bidirectional, input_size=C)
    block.initialize()
    layer = U.GRU(H, 2, bidirectional=bidirectional, input_size=C)
    for pname, p in layer.params().items():
        assert getattr(block, pname).shape == p.shape, pname
    keys = list(block._collect_params_with_prefix())
    assert [gluon_file_name(n, bidirectional) for n in layer.params()] == keys


GLUON = ["RNN-relu-2-bi-NTC", "LSTM-2-bi", "LSTM-2-NTC", "GRU-2-bi-NTC"]


@pytest.mark.reference("mxnet")
@pytest.mark.parametrize("name", GLUON)
def test_matches_gluon_layer(backend: Any, name: str) -> None:
    """Output and states equal Gluon's fused layer with the weights set by name."""
    mx = _gluon()
    layer = _make(name, seed=3)
    x, states = _input(layer), _states(layer)
    out, new = layer(x, states)
    kind = type(layer).__name__
    kw: dict[str, Any] = {
        "num_layers": layer.num_layers,
        "bidirectional": layer.bidirectional,
        "layout": layer.layout,
        "input_size": C,
    }
    if kind == "RNN":
        kw["activation"] = layer.activation
    block = getattr(mx.gluon.rnn, kind)(H, **kw)
    block.initialize()
    for pname, p in layer.params().items():
        getattr(block, pname).set_data(mx.nd.array(p.numpy()))
    want, g_new = block(mx.nd.array(x), [mx.nd.array(s) for s in states])
    assert_close(U.to_numpy(out), want.asnumpy(), f"{name} vs Gluon", atol=1e-5)
    for i, (got, ref) in enumerate(zip(new, g_new)):
        assert_close(U.to_numpy(got), ref.asnumpy(), f"{name} state {i}", atol=1e-5)


# -- gradients ----------------------------------------------------------------------
@pytest.mark.reference("torch")
@pytest.mark.parametrize("name", ["RNN-relu-2-bi-NTC", "LSTM-2-bi", "GRU-2-bi-NTC"])
def test_gradients_match_torch_autograd(backend: Any, name: str) -> None:
    """Every parameter gradient of a loss over outputs and final states equals
    torch's."""
    import torch

    layer = _make(name, seed=4)
    x, states = _input(layer), _states(layer)
    w_out = RNG.standard_normal(
        (N, T, 2 * H) if layer.layout == "NTC" else (T, N, 2 * H)
    )
    w_h = RNG.standard_normal(states[0].shape)

    def loss_fn(net: U.Net, xs: Any, *st: Any) -> Any:
        out, new = net(xs, list(st))
        total = U.ops.sum(U.ops.multiply(out, native(backend, w_out)), None, False)
        for s in new:
            total = U.ops.add(
                total, U.ops.sum(U.ops.multiply(s, native(backend, w_h)), None, False)
            )
        return total

    loss, _ = U.value_and_grad(loss_fn)(layer, x, *states)
    module = _torch_module(layer, torch)
    t_states = [torch.tensor(s).double() for s in states]
    out, t_new = module(
        torch.tensor(x).double(), tuple(t_states) if len(states) == 2 else t_states[0]
    )
    t_new = list(t_new) if isinstance(t_new, tuple) else [t_new]
    total = (out * torch.tensor(w_out)).sum()
    for s in t_new:
        total = total + (s * torch.tensor(w_h)).sum()
    total.backward()
    assert_close(host(backend, loss), total.item(), f"{name} loss", rtol=1e-5)
    for pname, p in layer.params().items():
        want = getattr(module, torch_name(pname)).grad.numpy()
        assert_close(
            host(backend, p.grad()), want, f"grad {pname}", rtol=1e-4, atol=1e-5
        )


# -- the optional fused kernel ------------------------------------------------------
def _one_layer_copy(layer: U.Net) -> U.Net:
    """A one-layer, time-major layer holding ``layer``'s layer-0 weights."""
    kw: dict[str, Any] = {"bidirectional": layer.bidirectional, "input_size": C}
    if isinstance(layer, U.RNN):
        kw["activation"] = layer.activation
    single = type(layer)(H, **kw)
    single.initialize()
    for pname, p in single.params().items():
        p.set_data(layer.params()[pname].numpy())
    return single


@pytest.mark.requires("rnn_layer")
@pytest.mark.parametrize(
    "name", ["RNN-tanh", "RNN-relu-2-bi-NTC", "LSTM-2-bi", "GRU-2-bi-NTC"]
)
def test_rnn_layer_hook_matches_oracle(backend: Any, name: str) -> None:
    """The fused hook itself, called on layer 0: output and states equal the oracle."""
    layer = _make(name, seed=11)
    d = 2 if layer.bidirectional else 1
    x = RNG.standard_normal((T, N, C)).astype(np.float32)
    states = [s[:d] for s in _states(layer)]
    weights = [
        native(backend, layer.params()[f"{side}0_{what}"].numpy())
        for side in "lr"[:d]
        for what in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")
    ]
    out, new = backend.rnn_layer(
        layer.mode,
        native(backend, x),
        [native(backend, s) for s in states],
        weights,
        layer.bidirectional,
    )
    want, want_states = oracle(_one_layer_copy(layer), x, states)
    assert_close(host(backend, out), want, f"{name} rnn_layer output", atol=1e-5)
    for i, (got, ref) in enumerate(zip(new, want_states)):
        assert_close(host(backend, got), ref, f"{name} rnn_layer state {i}", atol=1e-5)


FUSED = {
    "LSTM-2-bi-dropout": lambda: U.LSTM(H, 2, dropout=0.3, bidirectional=True),
    "GRU-3-NTC-dropout": lambda: U.GRU(H, 3, dropout=0.3, layout="NTC"),
    "RNN-relu-2-bi": lambda: U.RNN(H, 2, activation="relu", bidirectional=True),
}


@pytest.mark.requires("rnn_layer")
@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_kernel_equals_composition(backend: Any, name: str) -> None:
    """A layer on the backend's rnn_layer kernel equals the same layer composed of
    ops (fused=False): training-mode outputs (dropout), states and gradients."""
    U.seed(12)
    layer = FUSED[name]()
    layer.initialize(U.init.Xavier())
    x = _input(layer)
    states = _states(layer)

    def loss_fn(net: U.Net, xs: Any, *st: Any) -> Any:
        out, new = net(xs, list(st))
        total = U.ops.sum(U.ops.multiply(out, out), None, False)
        for s in new:
            total = U.ops.add(total, U.ops.sum(s, None, False))
        return total

    results = []
    for fused in (True, False):
        layer.fused = fused
        U.seed(13)  # the same dropout masks for both
        loss, _ = U.value_and_grad(loss_fn)(layer, x, *states)
        with U.training(True):
            out, new = layer(x, states)
        grads = {n: host(backend, p.grad()) for n, p in layer.params().items()}
        results.append((host(backend, loss), U.to_numpy(out), new, grads))
    (l0, y0, s0, g0), (l1, y1, s1, g1) = results
    assert_close(l0, l1, f"{name} loss, fused vs composed")
    assert_close(y0, y1, f"{name} output, fused vs composed", atol=1e-6)
    for i, (a, b) in enumerate(zip(s0, s1)):
        assert_close(U.to_numpy(a), U.to_numpy(b), f"{name} state {i}", atol=1e-6)
    for n in g0:
        assert_close(g0[n], g1[n], f"{name} grad {n}, fused vs composed", atol=1e-5)


# -- deferred input size ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_deferred_equals_eager_bitwise(backend: Any, kind: str) -> None:
    """input_size=0 infers C at the first forward: weights and outputs bitwise equal."""
    x = RNG.standard_normal((T, N, C)).astype(np.float32)
    results = []
    for size in (C, 0):
        U.seed(5)
        layer = getattr(U, kind)(H, num_layers=2, bidirectional=True, input_size=size)
        if not size:
            assert layer.params()["r0_i2h_weight"].shape == (GATES[kind] * H, -1)
        layer.initialize(U.init.Xavier())
        out = U.to_numpy(layer(x))
        results.append(({n: p.numpy() for n, p in layer.params().items()}, out))
    (w0, y0), (w1, y1) = results
    assert list(w0) == list(w1)
    for n in w0:
        assert_bitwise(w1[n], w0[n], f"{kind} deferred {n}")
    assert_bitwise(y1, y0, f"{kind} deferred output")
    with pytest.raises(U.ShapeError, match=kind):
        layer(RNG.standard_normal((T, N, C + 1)).astype(np.float32))


# -- sharing, freezing, learning-rate groups (seed 003) -----------------------------
class TwoInputs(U.Net):
    """Seed 003: one LSTM applied to two inputs, a Dense on the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = U.LSTM(5, input_size=10)
        self.linear = U.Dense(2, in_units=5)

    def forward(self, a: Any, b: Any) -> Any:
        return self.linear(U.ops.add(self.lstm(a), self.lstm(b)))


A = RNG.standard_normal((T, 2, 10)).astype(np.float32)
B = RNG.standard_normal((T, 2, 10)).astype(np.float32)
Y2 = np.array([[[0, 1]] * 2] * T)


def _sq(net: U.Net, a: Any, b: Any) -> Any:
    d = U.ops.subtract(net(a, b), U.asarray(Y2, "float32"))
    return U.ops.mean(U.ops.multiply(d, d), None, False)


def _two_inputs(seed: int) -> TwoInputs:
    U.seed(seed)
    net = TwoInputs()
    net.initialize(U.init.Xavier())
    return net


@pytest.mark.reference("torch")
def test_shared_lstm_gradient_is_the_sum_of_both_uses(backend: Any) -> None:
    """One LSTM used twice: its gradient equals torch's for the same model."""
    import torch

    net = _two_inputs(6)
    assert list(net.params()) == [
        "lstm.l0_i2h_weight", "lstm.l0_h2h_weight", "lstm.l0_i2h_bias",
        "lstm.l0_h2h_bias", "linear.weight", "linear.bias",
    ]  # fmt: skip
    U.value_and_grad(_sq)(net, A, B)
    lstm = torch.nn.LSTM(10, 5).double()
    linear = torch.nn.Linear(5, 2).double()
    for pname, p in net.params().items():
        owner, local = pname.split(".")
        module, attr = (lstm, torch_name(local)) if owner == "lstm" else (linear, local)
        getattr(module, attr).data = torch.tensor(p.numpy()).double()
    out = linear(lstm(torch.tensor(A).double())[0] + lstm(torch.tensor(B).double())[0])
    ((out - torch.tensor(Y2).double()) ** 2).mean().backward()
    for pname, p in net.params().items():
        owner, local = pname.split(".")
        module, attr = (lstm, torch_name(local)) if owner == "lstm" else (linear, local)
        want = getattr(module, attr).grad.numpy()
        assert_close(host(backend, p.grad()), want, f"grad {pname}", atol=1e-6)


def test_frozen_lstm_is_not_stepped(backend: Any) -> None:
    """U.freeze(net, 'lstm\\..*'): the LSTM stays put through Trainer steps."""
    net = _two_inputs(7)
    U.freeze(net, r"lstm\..*")
    before = {n: p.numpy() for n, p in net.params().items()}
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.5, momentum=0.9))
    for _ in range(2):
        trainer.step(_sq, A, B)
    for n, p in net.params().items():
        if n.startswith("lstm."):
            assert_bitwise(p.numpy(), before[n], f"frozen {n}")
        else:
            assert not np.array_equal(p.numpy(), before[n]), f"{n} was not trained"


def test_lstm_has_its_own_learning_rate(backend: Any) -> None:
    """lr_groups: one SGD step moves the LSTM by 0.1 * grad, the Dense by 0.01 *
    grad."""
    net = _two_inputs(8)
    groups = U.lr_groups(net, {r"lstm\..*": 0.1})
    U.value_and_grad(_sq)(net, A, B)
    grads = {n: host(backend, p.grad()) for n, p in net.params().items()}
    before = {n: p.numpy().astype(np.float64) for n, p in net.params().items()}
    U.Trainer(net, U.SGD(groups, lr=0.01)).step(_sq, A, B)
    for n, p in net.params().items():
        lr = 0.1 if n.startswith("lstm.") else 0.01
        assert_close(p.numpy(), before[n] - lr * grads[n], f"stepped {n}", atol=1e-6)


# -- dropout between layers ---------------------------------------------------------
def _masks(name: str, call: int, seed: int, rate: float, shape: tuple, count: int):
    """SPEC 12's stream restated: one generator per forward, a mask per boundary."""
    seq = np.random.SeedSequence([seed, 1, zlib.crc32(name.encode()), call])
    gen = np.random.Generator(np.random.Philox(seq))
    scale = np.float32(1.0 / (1.0 - rate))
    return [
        np.where(gen.random(shape) >= rate, scale, np.float32(0)).astype(np.float64)
        for _ in range(count)
    ]


def test_dropout_between_layers_only_in_training(backend: Any) -> None:
    """Inference output == no-dropout output; training output == oracle with masks."""
    U.seed(9)
    layer = U.GRU(H, num_layers=3, dropout=0.4, bidirectional=True)
    layer.initialize(U.init.Xavier())
    x = RNG.standard_normal((T, N, C)).astype(np.float32)
    plain = U.to_numpy(layer(x))
    U.seed(9)
    same = U.GRU(H, num_layers=3, bidirectional=True)
    same.initialize(U.init.Xavier())
    assert_bitwise(U.to_numpy(same(x)), plain, "inference output vs dropout=0")
    with U.training(True):
        first = U.to_numpy(layer(x))
        second = U.to_numpy(layer(x))
    assert not np.allclose(first, plain) and not np.allclose(first, second)
    for call, got in enumerate((first, second)):
        masks = _masks("", call, 9, 0.4, (T, N, 2 * H), 2)
        want, _ = oracle(layer, x, None, masks)
        assert_close(got, want, f"training forward {call}", atol=1e-5)
    single = U.LSTM(H, dropout=0.5)  # one layer: no boundary, nothing dropped
    single.initialize()
    with U.training(True):
        assert_bitwise(U.to_numpy(single(x)), U.to_numpy(single(x)), "1 layer")


# -- a model trained on every backend -----------------------------------------------
def _seq_model() -> U.Net:
    return U.Sequential(
        U.Embedding(10, 4),
        U.LSTM(H, num_layers=2, layout="NTC", dropout=0.25, bidirectional=True),
        U.Dense(3, flatten=True),
    )


TOKENS = RNG.integers(0, 10, (N, T))
LABELS = np.array([0, 2, 1])


def _ce(net: U.Net, x: Any, y: Any) -> Any:
    return U.losses.softmax_cross_entropy(net(x), y)


def _train_seq() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    U.seed(10)
    net = _seq_model()
    net.initialize(U.init.Xavier())
    net.infer_shape(TOKENS)
    start = {n: p.numpy() for n, p in net.params().items()}
    trainer = U.Trainer(net, U.Adam(net.params(), lr=0.05))
    for _ in range(3):
        trainer.step(_ce, TOKENS, LABELS)
    return start, {n: p.numpy() for n, p in net.params().items()}


@functools.cache
def _seq_on_numpy() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with U.use_backend("numpy"):
        return _train_seq()


def test_embedding_lstm_dense_trains_like_numpy(backend: Any) -> None:
    """Same seed: bitwise-equal initial weights; 3 Adam steps agree in float32."""
    start, trained = _train_seq()
    ref_start, ref_trained = _seq_on_numpy()
    assert list(start) == list(ref_start)
    assert start["1.l1_i2h_weight"].shape == (4 * H, 2 * H)
    for n in start:
        assert_bitwise(start[n], ref_start[n], f"initial {n}")
        assert not np.array_equal(trained[n], start[n]), f"{n} was not trained"
        assert_close(trained[n], ref_trained[n], f"trained {n}", rtol=1e-4, atol=1e-5)


# -- states and argument checks -----------------------------------------------------
def test_begin_state_and_numpy_states(backend: Any) -> None:
    """begin_state gives zeros of the right shape; NumPy float64 states work too."""
    layer = _make("LSTM-2-bi")
    h, c = layer.begin_state(N)
    assert U.to_numpy(h).shape == (4, N, H) and not U.to_numpy(c).any()
    x = _input(layer)
    out0 = U.to_numpy(layer(x))
    out1, _ = layer(x, [h, c])
    out2, _ = layer(x, [np.zeros((4, N, H)), np.zeros((4, N, H))])
    assert_bitwise(U.to_numpy(out1), out0, "zero states")
    assert_bitwise(U.to_numpy(out2), out0, "NumPy float64 zero states")
    assert layer.state_info(N)[0]["shape"] == (4, N, H)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: U.LSTM(0), ValueError, "hidden_size"),
        (lambda: U.LSTM(4, num_layers=1.0), TypeError, "num_layers"),
        (lambda: U.GRU(4, layout="BTC"), ValueError, "layout"),
        (lambda: U.GRU(4, dropout=1.0), ValueError, "dropout"),
        (lambda: U.RNN(4, activation="sigmoid"), ValueError, "activation"),
        (lambda: U.RNN(4, bidirectional="yes"), TypeError, "bidirectional"),
        (lambda: U.LSTM(4, input_size=-1), ValueError, "input_size"),
    ],
)
def test_constructor_checks(backend: Any, make: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_call_checks(backend: Any) -> None:
    """A 2-D input, a wrong state shape or a wrong number of states explain
    themselves."""
    layer = _make("LSTM")
    x = _input(layer)
    with pytest.raises(U.ShapeError, match="3 dims"):
        layer(x[0])
    with pytest.raises(U.ShapeError, match=r"\(1, 3, 6\)"):
        layer(x, [np.zeros((1, 2, H)), np.zeros((1, 2, H))])
    with pytest.raises(TypeError, match=r"\[h, c\]"):
        layer(x, [np.zeros((1, N, H))])


def _seq_loss(net: Any, x: Any, y: Any) -> Any:
    d = net(x) - y
    return U.ops.mean(d * d)


@pytest.mark.requires("jit")
def test_compiled_step_with_between_layer_dropout_equals_eager(backend: Any) -> None:
    """The between-layer masks are inputs of a compiled Trainer step: 3 compiled
    steps equal 3 eager ones (same masks, same numbers)."""
    x = np.random.default_rng(8).standard_normal((5, 3, 4)).astype(np.float32)
    y = np.random.default_rng(9).standard_normal((5, 3, 6)).astype(np.float32)

    def run(compile: bool) -> tuple[list[float], np.ndarray, int]:
        U.seed(2)
        net = U.LSTM(3, num_layers=3, dropout=0.5, bidirectional=True)
        net.initialize()
        trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1), compile=compile)
        losses = [float(trainer.step(_seq_loss, x, y)) for _ in range(3)]
        return losses, net.params()["l0_i2h_weight"].numpy(), trainer.compilations

    eager, compiled = run(False), run(True)
    assert compiled[2] == 1
    assert_close(compiled[0], eager[0], "losses", rtol=1e-5, atol=1e-6)
    assert_close(compiled[1], eager[1], "l0_i2h_weight", rtol=1e-5, atol=1e-6)
