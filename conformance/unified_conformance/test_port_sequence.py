"""SPEC 14 for sequence models: ``from_torch`` of ``nn.LSTM``/``GRU``/``RNN``,
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (PyTorch's outputs,
``state_dict`` names, one ``torch.optim`` step, the round trip back to torch), a
torch LSTM ``state_dict`` loaded into a hand-written net, and ``from_gluon`` of
``gluon.rnn`` layers (Gluon's outputs and structural names)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unified as U

from .helpers import assert_bitwise


class Tagger(nn.Module):
    """Embedding, a 2-layer bidirectional batch-first LSTM, Linear on the last step."""

    def __init__(self, dropout: float = 0.3) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(
            6, 5, num_layers=2, bidirectional=True, batch_first=True, dropout=dropout
        )
        self.fc = nn.Linear(10, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.fc(out[:, -1])


class Encoder(nn.Module):
    """A tiny transformer encoder classifier (mean over the sequence)."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.encoder = nn.TransformerEncoderLayer(
            8, 2, dim_feedforward=16, dropout=dropout, batch_first=True
        )
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


class Recurrents(nn.Module):
    """GRU (time-first) into a 2-layer ReLU RNN; both final states are used."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 4)
        self.rnn = nn.RNN(4, 4, num_layers=2, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, h = self.gru(x)
        z, g = self.rnn(y)
        return z + h + g[1]


class CrossAttention(nn.Module):
    """Batch-first attention with kdim/vdim; returns the output and the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True)

    def forward(self, q, k, v):
        out, weights = self.attn(q, k, v)
        return out, weights


def _tokens(n: int = 3, t: int = 7) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 20, (n, t))


def _source(cls, **kw):
    torch.manual_seed(0)
    return cls(**kw).eval()


def _close(got, want, tol=1e-5):
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.reference("torch")
@pytest.mark.parametrize("cls", [Tagger, Encoder, Recurrents])
def test_from_torch_sequence_models(backend, cls):
    """Eval outputs equal torch's; names are the state_dict keys (``lstm.weight_ih_l0``,
    ``encoder.norm1.weight``), values bit for bit."""
    module = _source(cls)
    if cls is Recurrents:
        x = np.random.default_rng(1).standard_normal((6, 2, 3)).astype("float32")
        inputs = torch.from_numpy(x)
    else:
        x = _tokens()
        inputs = torch.from_numpy(x)
    with torch.no_grad():
        want = module(inputs).numpy()
    net = U.from_torch(module)
    state = module.state_dict()
    assert list(net.params()) == list(state)
    for n, p in net.params().items():
        assert_bitwise(p.numpy(), state[n].numpy(), n)
    _close(U.to_numpy(net(x)), want)


@pytest.mark.reference("torch")
def test_from_torch_attention_with_kdim_vdim(backend):
    module = _source(CrossAttention)
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 4, 8)).astype("float32")
    k = rng.standard_normal((2, 6, 5)).astype("float32")
    v = rng.standard_normal((2, 6, 3)).astype("float32")
    with torch.no_grad():
        want_out, want_w = (
            t.numpy() for t in module(*map(torch.from_numpy, (q, k, v)))
        )
    net = U.from_torch(module)
    assert list(net.params()) == list(module.state_dict())
    assert "attn.q_proj_weight" in net.params()
    out, weights = net(q, k, v)
    _close(U.to_numpy(out), want_out)
    _close(U.to_numpy(weights), want_w)


@pytest.mark.reference("torch")
@pytest.mark.parametrize("cls", [Tagger, Encoder])
def test_from_torch_sequence_training_step_equals_torch_optim(backend, cls):
    """One SGD-momentum step in training mode equals torch.optim.SGD's on the module
    (dropout 0: masks come from each framework's RNG; float64, float32 on JAX)."""
    dtype = "float32" if backend.name == "jax" else "float64"
    module = _source(cls, dropout=0.0).to(getattr(torch, dtype))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x, y = _tokens(4), np.array([0, 1, 2, 1])
    net = U.from_torch(module)
    module.train()
    opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    loss = nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    opt.step()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1, momentum=0.9))
    got_loss = float(
        trainer.step(lambda n, a, b: U.losses.softmax_cross_entropy(n(a), b), x, y)
    )
    tol = 1e-5 if dtype == "float32" else 1e-10
    want_loss = float(loss.detach())
    assert abs(got_loss - want_loss) < tol * max(1.0, abs(want_loss))
    state = module.state_dict()
    for n, p in net.params().items():
        step = state[n].numpy() - before[n].numpy()
        got = p.numpy() - before[n].numpy()
        np.testing.assert_allclose(
            got, step, rtol=0, atol=tol * 100 * max(np.abs(step).max(), 1e-3), err_msg=n
        )


@pytest.mark.reference("torch")
@pytest.mark.parametrize("cls", [Tagger, Encoder])
def test_sequence_round_trip_to_torch_is_bitwise(backend, cls):
    """``to_native("torch")`` gives the module's state_dict back key for key and
    bit for bit; a fresh module loading it computes the source's outputs."""
    module = _source(cls)
    exported = U.from_torch(module).to_native("torch")
    got, want = exported.state_dict(), module.state_dict()
    assert list(got) == list(want)
    for n in want:
        assert_bitwise(got[n].numpy(), want[n].numpy(), n)
    torch.manual_seed(5)
    fresh = cls().eval()
    fresh.load_state_dict(got)
    x = torch.from_numpy(_tokens())
    with torch.no_grad():
        assert_bitwise(fresh(x).numpy(), module(x).numpy(), "outputs")
        _close(exported(x).numpy(), module(x).numpy())


class _Refused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.LSTM(3, 4, proj_size=2)
        self.b = nn.GRU(3, 4, bias=False)

    def forward(self, x):
        return self.a(x)[0] + self.b(x)[0]


@pytest.mark.reference("torch")
def test_unsupported_recurrent_options_are_listed_in_one_error(backend):
    with pytest.raises(U.ConversionError) as err:
        U.from_torch(_Refused())
    msg = str(err.value)
    assert "a (LSTM): proj_size=2" in msg and "b (GRU): bias=False" in msg


@pytest.mark.reference("torch")
def test_load_native_torch_lstm_state_dict(backend):
    """A torch LSTM state_dict (PyTorch's names) loads into a hand-written unified
    LSTM (unified's names) by structure; outputs equal torch's."""
    torch.manual_seed(3)
    source = nn.LSTM(3, 4, num_layers=2, bidirectional=True).eval()
    net = U.LSTM(4, num_layers=2, bidirectional=True, input_size=3)
    net.initialize()
    U.load_native(net, source.state_dict())
    x = np.random.default_rng(4).standard_normal((5, 2, 3)).astype("float32")
    with torch.no_grad():
        want = source(torch.from_numpy(x))[0].numpy()
    _close(U.to_numpy(net(x)), want)


@pytest.mark.reference("mxnet")
def test_from_gluon_embedding_lstm_dense(backend):
    """Gluon's Embedding + bidirectional LSTM + Dense: Gluon's outputs, names the
    keys of ``_collect_params_with_prefix`` (``1._unfused.0.l_cell.i2h_weight``)."""
    from unified_mxnet import mx  # restores numpy.bool before mxnet loads

    gluon = mx.gluon

    mx.random.seed(0)
    block = gluon.nn.HybridSequential()
    block.add(
        gluon.nn.Embedding(20, 6),
        gluon.rnn.LSTM(5, num_layers=2, bidirectional=True, layout="NTC"),
        gluon.nn.Dense(4, flatten=False),
    )
    block.initialize(mx.init.Xavier())
    x = _tokens()
    want = block(mx.nd.array(x)).asnumpy()
    net = U.from_gluon(block)
    structural = block._collect_params_with_prefix()
    assert list(net.params()) == list(structural)
    assert "1._unfused.1.r_cell.h2h_bias" in net.params()
    for n, p in net.params().items():
        assert_bitwise(p.numpy(), structural[n].data().asnumpy(), n)
    _close(U.to_numpy(net(x)), want)


@pytest.mark.reference("mxnet")
@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_from_gluon_gru_and_rnn(backend, kind):
    from unified_mxnet import mx  # restores numpy.bool before mxnet loads

    gluon = mx.gluon

    mx.random.seed(1)
    extra = {"activation": "relu"} if kind == "RNN" else {}
    block = getattr(gluon.rnn, kind)(4, num_layers=2, input_size=3, **extra)
    block.initialize(mx.init.Xavier())
    x = np.random.default_rng(5).standard_normal((5, 2, 3)).astype("float32")
    want = block(mx.nd.array(x)).asnumpy()
    net = U.from_gluon(block)
    assert list(net.params()) == list(block._collect_params_with_prefix())
    _close(U.to_numpy(net(x)), want)
