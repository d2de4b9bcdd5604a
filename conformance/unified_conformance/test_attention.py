"""Conformance of attention (SPEC 13) on every backend:
``unified.functional.scaled_dot_product_attention``, ``MultiHeadAttention`` and
``TransformerEncoderLayer``.

Oracles:

* a float64 NumPy ``scaled_dot_product_attention`` written here (boolean masks:
  ``True`` = take part; float masks added; a fully masked row gives weights 0);
* ``torch.nn.functional.scaled_dot_product_attention`` in float64;
* ``torch.nn.MultiheadAttention`` and ``torch.nn.TransformerEncoderLayer`` in float64
  with the unified weights copied across by ``state_dict`` key (LayerNorm's
  ``gamma``/``beta`` are torch's ``weight``/``bias``): outputs, attention weights
  and every parameter gradient (torch autograd);
* the dropout masks recomputed from SPEC 12's Philox formula;
* a tiny transformer classifier: names, initial weights bitwise equal to the NumPy
  backend's for one seed, three ``Trainer`` steps within float32 tolerance of it.

Shapes are small (E=8, 2 heads, L=S=4, N=2) to keep the suite fast.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any

import numpy as np
import pytest

import unified as U
from unified import functional as F

from .helpers import assert_bitwise, assert_close, host, native

RNG = np.random.default_rng(20240615)
E, H, L, S, N = 8, 2, 4, 4, 2
GRAD_TOL = {"rtol": 1e-4, "atol": 1e-5}


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# -- the float64 oracle --------------------------------------------------------------
def sdpa_oracle(q, k, v, mask=None, causal=False, scale=None, drop=None):
    """Attention in float64: ``softmax(q k^T * scale + mask) @ v``, empty rows 0."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        mask = np.tril(np.ones((q.shape[-2], k.shape[-2]), bool))
    if mask is not None and mask.dtype == bool:
        s = np.where(mask, s, -np.inf)
    elif mask is not None:
        s = s + mask.astype(np.float64)
    top = s.max(-1, keepdims=True)
    live = np.isfinite(top)
    e = np.exp(s - np.where(live, top, 0.0))
    w = np.where(live, e / np.where(live, e.sum(-1, keepdims=True), 1.0), 0.0)
    if drop is not None:
        w = w * drop
    return w @ v, w


def philox_mask(seed: int, name: str, call: int, shape, rate: float) -> np.ndarray:
    """SPEC 12's dropout mask, recomputed from the formula."""
    seq = np.random.SeedSequence([seed, 1, zlib.crc32(name.encode()), call])
    keep = np.random.Generator(np.random.Philox(seq)).random(shape) >= rate
    return np.where(keep, np.float32(1 / (1 - rate)), np.float32(0))


Q4, K4, V4 = _rand(N, H, L, 4), _rand(N, H, S, 4), _rand(N, H, S, 3)
BOOL_MASK = RNG.random((L, S)) > 0.4
BOOL_MASK[:, 0] = True  # no empty row: torch's module and the functional agree
EMPTY_ROW_MASK = BOOL_MASK.copy()
EMPTY_ROW_MASK[2] = False
FLOAT_MASK = _rand(N, 1, L, S)
FLOAT_MASK[0, 0, 1, 2] = -np.inf
SDPA_CASES: dict[str, dict[str, Any]] = {
    "plain": {},
    "bool-mask": {"attn_mask": BOOL_MASK},
    "bool-mask-empty-row": {"attn_mask": EMPTY_ROW_MASK},
    "float-mask": {"attn_mask": FLOAT_MASK},
    "causal": {"is_causal": True},
    "scale": {"scale": 0.3},
}


def _oracle_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "mask": kw.get("attn_mask"),
        "causal": kw.get("is_causal", False),
        "scale": kw.get("scale"),
    }


@pytest.mark.reference("torch")
@pytest.mark.parametrize("case", sorted(SDPA_CASES))
def test_sdpa_matches_oracle_and_torch(backend: Any, case: str) -> None:
    """NumPy float32 inputs: equal to the float64 oracle and to torch's F.sdpa."""
    import torch

    kw = SDPA_CASES[case]
    got = U.to_numpy(F.scaled_dot_product_attention(Q4, K4, V4, **kw))
    assert got.dtype == np.float32 and got.shape == (N, H, L, 3)
    want, _ = sdpa_oracle(Q4, K4, V4, **_oracle_kwargs(kw))
    assert_close(got, want, f"sdpa {case} vs oracle")
    t = {
        k: torch.tensor(v, dtype=torch.bool if v.dtype == bool else torch.float64)
        if isinstance(v, np.ndarray)
        else v
        for k, v in kw.items()
    }
    ref = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a, dtype=torch.float64) for a in (Q4, K4, V4)), **t
    )
    assert_close(got, ref.numpy(), f"sdpa {case} vs torch")
    if case == "bool-mask-empty-row":
        assert not got[:, :, 2].any(), "a fully masked row gives a zero output"


class _QKV(U.Net):
    """q, k, v as parameters, so value_and_grad gives their gradients."""

    def __init__(self) -> None:
        super().__init__()
        self.q = U.Parameter("q", Q4.shape)
        self.k = U.Parameter("k", K4.shape)
        self.v = U.Parameter("v", V4.shape)

    def forward(self, mask: Any = None, causal: bool = False) -> Any:
        return F.scaled_dot_product_attention(
            self.q.data(), self.k.data(), self.v.data(), mask, is_causal=causal
        )


@pytest.mark.reference("torch")
@pytest.mark.parametrize("case", ["bool-mask-empty-row", "float-mask", "causal"])
def test_sdpa_gradients_match_torch_autograd(backend: Any, case: str) -> None:
    """Gradients of q, k, v equal torch's; a fully masked row gives no NaN."""
    import torch

    kw = SDPA_CASES[case]
    net = _QKV()
    net.initialize()
    for p, a in zip(net.params().values(), (Q4, K4, V4)):
        p.set_data(a)
    g = _rand(N, H, L, 3)
    mask = kw.get("attn_mask")

    def loss(n: Any, gout: Any) -> Any:
        out = n(mask, kw.get("is_causal", False))
        return U.ops.sum(U.ops.multiply(out, gout), None, False)

    U.value_and_grad(loss)(net, native(backend, g))
    tq, tk, tv = (
        torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (Q4, K4, V4)
    )
    tmask = None
    if mask is not None:
        tmask = torch.tensor(mask) if mask.dtype == bool else torch.tensor(mask + 0.0)
    out = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=tmask, is_causal=kw.get("is_causal", False)
    )
    (out * torch.tensor(g, dtype=torch.float64)).sum().backward()
    for (name, p), t in zip(net.params().items(), (tq, tk, tv)):
        got = host(backend, p.grad())
        assert np.isfinite(got).all(), f"{case}: grad {name} is not finite"
        assert_close(got, t.grad.numpy(), f"{case}: grad {name}", **GRAD_TOL)


def test_sdpa_dropout_uses_the_host_stream(backend: Any) -> None:
    """dropout_p > 0 multiplies the weights by SPEC 12's mask for the name
    "scaled_dot_product_attention", call counting from unified.seed."""
    U.seed(3)
    first = U.to_numpy(F.scaled_dot_product_attention(Q4, K4, V4, dropout_p=0.5))
    second = U.to_numpy(F.scaled_dot_product_attention(Q4, K4, V4, dropout_p=0.5))
    for call, got in enumerate((first, second)):
        drop = philox_mask(3, "scaled_dot_product_attention", call, (N, H, L, S), 0.5)
        want, _ = sdpa_oracle(Q4, K4, V4, drop=drop)
        assert_close(got, want, f"sdpa dropout call {call}")
    assert not np.allclose(first, second)


def test_sdpa_rejects_mask_with_causal(backend: Any) -> None:
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(Q4, K4, V4, BOOL_MASK, is_causal=True)
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(Q4, K4, V4, dropout_p=1.0)


# -- MultiHeadAttention vs torch.nn.MultiheadAttention -------------------------------
KPM = np.zeros((N, S), bool)
KPM[1, 2:] = True
ATTN_BOOL = ~BOOL_MASK  # nn.MultiheadAttention: True = NOT allowed
ATTN_FLOAT3 = _rand(N * H, L, S)
MHA_CASES: dict[str, dict[str, Any]] = {
    # name: constructor kwargs, call kwargs, cross attention?
    "self-TNC": {"make": {}, "call": {}},
    "self-NTC-weights": {
        "make": {"layout": "NTC"},
        "call": {"need_weights": True},
    },
    "cross-key-padding": {
        "make": {},
        "call": {"key_padding_mask": KPM, "need_weights": True},
        "cross": True,
    },
    "kdim-vdim-masks": {
        "make": {"kdim": 5, "vdim": 3},
        "call": {"key_padding_mask": KPM, "attn_mask": ATTN_BOOL},
        "cross": True,
    },
    "float-attn-mask-per-head-weights": {
        "make": {"layout": "NTC"},
        "call": {
            "attn_mask": ATTN_FLOAT3,
            "need_weights": True,
            "average_attn_weights": False,
        },
    },
    "no-bias": {"make": {"bias": False}, "call": {"attn_mask": ATTN_BOOL}},
}


def _mha_inputs(case: dict[str, Any]) -> tuple[np.ndarray, ...]:
    make = case["make"]
    ntc = make.get("layout") == "NTC"
    shape = (lambda t, d: (N, t, d)) if ntc else (lambda t, d: (t, N, d))
    q = _rand(*shape(L, E))
    if not case.get("cross"):
        return (q,)
    return (
        q,
        _rand(*shape(S, make.get("kdim", E))),
        _rand(*shape(S, make.get("vdim", E))),
    )


def _torch_mha(torch: Any, mha: U.MultiHeadAttention, make: dict[str, Any]) -> Any:
    module = torch.nn.MultiheadAttention(
        E,
        H,
        bias=make.get("bias", True),
        kdim=make.get("kdim"),
        vdim=make.get("vdim"),
        batch_first=make.get("layout") == "NTC",
    ).double()
    state = {
        n: torch.tensor(p.numpy(), dtype=torch.float64) for n, p in mha.params().items()
    }
    assert list(state) == list(module.state_dict()), "state_dict keys and order"
    module.load_state_dict(state)
    return module


def _torch_call_kwargs(torch: Any, call: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in call.items():
        if isinstance(v, np.ndarray):
            v = (
                torch.tensor(v)
                if v.dtype == bool
                else torch.tensor(v, dtype=torch.float64)
            )
        out[k] = v
    return out


@pytest.mark.reference("torch")
@pytest.mark.parametrize("name", sorted(MHA_CASES))
def test_mha_matches_torch(backend: Any, name: str) -> None:
    """Outputs, attention weights and every parameter gradient equal torch's."""
    import torch

    case = MHA_CASES[name]
    U.seed(11)
    mha = U.MultiHeadAttention(E, H, **case["make"])
    mha.initialize(U.init.Xavier())
    if mha.in_proj_bias is not None:
        mha.in_proj_bias.set_data(_rand(3 * E) * 0.1)
        mha.out_proj.bias.set_data(_rand(E) * 0.1)
    inputs = _mha_inputs(case)
    call = case["call"]
    need = call.get("need_weights", False)
    got = mha(*inputs, **call)
    out = U.to_numpy(got[0] if need else got)
    g = _rand(*out.shape)

    module = _torch_mha(torch, mha, case["make"])
    tin = [torch.tensor(a, dtype=torch.float64) for a in inputs]
    tin += tin[:1] * (3 - len(tin))
    tout, tweights = module(
        *tin, **_torch_call_kwargs(torch, {"need_weights": False, **call})
    )
    assert out.dtype == np.float32
    assert_close(out, tout.detach().numpy(), f"{name}: output vs torch")
    if need:
        assert_close(U.to_numpy(got[1]), tweights.detach().numpy(), f"{name}: weights")

    def loss(net: Any, gout: Any, *xs: Any) -> Any:
        y = net(*xs, **{**call, "need_weights": False})
        return U.ops.sum(U.ops.multiply(y, gout), None, False)

    U.value_and_grad(loss)(
        mha, native(backend, g), *(native(backend, a) for a in inputs)
    )
    (tout * torch.tensor(g, dtype=torch.float64)).sum().backward()
    tparams = dict(module.named_parameters())
    for pname, p in mha.params().items():
        assert_close(
            host(backend, p.grad()),
            tparams[pname].grad.numpy(),
            f"{name}: grad {pname}",
            **GRAD_TOL,
        )


def test_mha_parameter_layout() -> None:
    """Packed (3E, E) in-projection, or separate q/k/v weights when kdim/vdim differ."""
    packed = U.MultiHeadAttention(E, H)
    assert {n: p.shape for n, p in packed.params().items()} == {
        "in_proj_weight": (3 * E, E),
        "in_proj_bias": (3 * E,),
        "out_proj.weight": (E, E),
        "out_proj.bias": (E,),
    }
    split = U.MultiHeadAttention(E, H, kdim=5, vdim=3, bias=False)
    assert {n: p.shape for n, p in split.params().items()} == {
        "q_proj_weight": (E, E),
        "k_proj_weight": (E, 5),
        "v_proj_weight": (E, 3),
        "out_proj.weight": (E, E),
    }


def test_mha_fully_masked_query_gives_bias_output(backend: Any) -> None:
    """A batch entry whose every key is padding attends to nothing: its output is
    out_proj's bias (PyTorch's module gives NaN), and gradients stay finite."""
    U.seed(12)
    mha = U.MultiHeadAttention(E, H)
    mha.initialize()
    bias = _rand(E)
    mha.out_proj.bias.set_data(bias)
    x = _rand(L, N, E)
    kpm = np.zeros((N, S), bool)
    kpm[1] = True
    out = U.to_numpy(mha(x, key_padding_mask=kpm))
    assert_close(out[:, 1], np.broadcast_to(bias, (L, E)), "fully masked entry")
    assert np.isfinite(out).all()
    U.value_and_grad(lambda n, a: U.ops.sum(n(a, key_padding_mask=kpm), None, False))(
        mha, native(backend, x)
    )
    for pname, p in mha.params().items():
        assert np.isfinite(host(backend, p.grad())).all(), f"grad {pname} not finite"


def test_mha_dropout_on_weights_in_training_only(backend: Any) -> None:
    """Training mode multiplies the per-head weights by the Dropout child's SPEC 12
    mask (name "dropout"); inference mode is dropout-free."""
    U.seed(13)
    mha = U.MultiHeadAttention(E, H, dropout=0.5)
    mha.initialize()
    x = _rand(L, N, E)
    kw = {"need_weights": True, "average_attn_weights": False}
    _, clean = mha(x, **kw)
    clean = U.to_numpy(clean)
    with U.training(True):
        out, dropped = mha(x, **kw)
    drop = philox_mask(13, "dropout", 0, (N, H, L, S), 0.5)
    assert_close(U.to_numpy(dropped), clean * drop, "dropped weights")
    _, again = mha(x, **kw)
    assert_close(U.to_numpy(again), clean, "inference after training")


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: U.MultiHeadAttention(8, 3), ValueError, "divisible"),
        (lambda: U.MultiHeadAttention(8.0, 2), TypeError, "embed_dim"),
        (lambda: U.MultiHeadAttention(8, 2, layout="NCT"), ValueError, "layout"),
        (lambda: U.MultiHeadAttention(8, 2, dropout=1.0), ValueError, "dropout"),
        (lambda: U.MultiHeadAttention(8, 2, kdim=0), ValueError, "kdim"),
        (lambda: U.TransformerEncoderLayer(8, 3), ValueError, "divisible"),
        (
            lambda: U.TransformerEncoderLayer(8, 2, activation="nope"),
            ValueError,
            "nope",
        ),
        (
            lambda: U.TransformerEncoderLayer(8, 2, dim_feedforward=0),
            ValueError,
            "dim_",
        ),
        (lambda: U.TransformerEncoderLayer(8, 2, dropout=-0.1), ValueError, "dropout"),
    ],
)
def test_constructor_checks(make: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_mha_shape_errors(backend: Any) -> None:
    mha = U.MultiHeadAttention(E, H)
    mha.initialize()
    with pytest.raises(U.ShapeError, match="embed_dim=8"):
        mha(_rand(L, N, E + 1))
    with pytest.raises(U.ShapeError, match="3-d"):
        mha(_rand(L, E))
    with pytest.raises(U.ShapeError, match="key_padding_mask"):
        mha(_rand(L, N, E), key_padding_mask=np.zeros((S, N), bool)[:3])
    with pytest.raises(U.ShapeError, match="attn_mask"):
        mha(_rand(L, N, E), attn_mask=np.zeros((N, L, S), bool))


# -- TransformerEncoderLayer vs torch.nn.TransformerEncoderLayer ---------------------
ENC_CASES = {
    "post-relu": {"norm_first": False, "activation": "relu"},
    "post-gelu-masks": {"norm_first": False, "activation": "gelu", "masks": True},
    "pre-relu-NTC": {"norm_first": True, "activation": "relu", "layout": "NTC"},
    "pre-gelu-masks": {"norm_first": True, "activation": "gelu", "masks": True},
}
TORCH_NAME = {"gamma": "weight", "beta": "bias"}


def _torch_key(name: str) -> str:
    head, _, tail = name.rpartition(".")
    return f"{head}.{TORCH_NAME.get(tail, tail)}" if head.startswith("norm") else name


@pytest.mark.reference("torch")
@pytest.mark.parametrize("name", sorted(ENC_CASES))
def test_encoder_layer_matches_torch(backend: Any, name: str) -> None:
    """Outputs and parameter gradients equal torch's (dropout 0, weights copied)."""
    import torch

    cfg = ENC_CASES[name]
    layout = cfg.get("layout", "TNC")
    U.seed(14)
    layer = U.TransformerEncoderLayer(
        E, H, 16, 0.0, cfg["activation"], 1e-5, cfg["norm_first"], layout
    )
    layer.initialize(U.init.Xavier())
    for pname, p in layer.params().items():
        if not pname.endswith("weight"):  # biases and LayerNorm gamma/beta
            p.set_data(p.numpy() + _rand(*p.shape) * 0.1)
    x = _rand(*((N, L, E) if layout == "NTC" else (L, N, E)))
    masks: dict[str, np.ndarray] = {}
    if cfg.get("masks"):
        masks = {"src_mask": ATTN_BOOL, "src_key_padding_mask": KPM}
    out = U.to_numpy(layer(x, **masks))
    g = _rand(*out.shape)

    module = torch.nn.TransformerEncoderLayer(
        E,
        H,
        16,
        0.0,
        cfg["activation"],
        1e-5,
        batch_first=layout == "NTC",
        norm_first=cfg["norm_first"],
    ).double()
    state = {
        _torch_key(n): torch.tensor(p.numpy(), dtype=torch.float64)
        for n, p in layer.params().items()
    }
    assert list(state) == list(module.state_dict()), "state_dict keys and order"
    module.load_state_dict(state)
    tout = module(
        torch.tensor(x, dtype=torch.float64), **_torch_call_kwargs(torch, masks)
    )
    assert_close(out, tout.detach().numpy(), f"{name}: output vs torch", atol=1e-5)

    def loss(net: Any, a: Any, gout: Any) -> Any:
        return U.ops.sum(U.ops.multiply(net(a, **masks), gout), None, False)

    U.value_and_grad(loss)(layer, native(backend, x), native(backend, g))
    (tout * torch.tensor(g, dtype=torch.float64)).sum().backward()
    tparams = dict(module.named_parameters())
    for pname, p in layer.params().items():
        assert_close(
            host(backend, p.grad()),
            tparams[_torch_key(pname)].grad.numpy(),
            f"{name}: grad {pname}",
            **GRAD_TOL,
        )


# -- a tiny transformer classifier under Trainer -------------------------------------
class TinyTransformer(U.Net):
    """Embed (N, T, F) features, one encoder layer (NTC), mean over T, classify."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = U.Dense(E, in_units=3)
        self.encoder = U.TransformerEncoderLayer(
            E, H, dim_feedforward=16, dropout=0.0, activation="gelu", layout="NTC"
        )
        self.head = U.Dense(3, in_units=E)

    def forward(self, x: Any) -> Any:
        h = self.encoder(self.embed(x))
        return self.head(U.ops.mean(h, 1, False))


TT_X = RNG.standard_normal((N * 2, L, 3)).astype(np.float32)
TT_Y = np.array([0, 2, 1, 2])


def _ce(net: U.Net, x: Any, y: Any) -> Any:
    return U.losses.softmax_cross_entropy(net(x), y)


def _run_tiny() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    U.seed(15)
    net = TinyTransformer()
    net.initialize(U.init.Xavier())
    start = {n: p.numpy() for n, p in net.params().items()}
    # SGD, not Adam: the key part of in_proj_bias has an exactly-zero gradient
    # (it shifts each softmax row by a constant), and Adam would blow its
    # rounding noise up to lr-sized steps.
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1, momentum=0.9))
    for _ in range(3):
        trainer.step(_ce, TT_X, TT_Y)
    return start, {n: p.numpy() for n, p in net.params().items()}


@functools.cache
def _tiny_on_numpy() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with U.use_backend("numpy"):
        return _run_tiny()


def test_tiny_transformer_trains_like_numpy_backend(backend: Any) -> None:
    """Same seed: bitwise-equal initial weights; 3 SGD-momentum steps agree in
    float32 (compiled on JAX: the net has no dropout)."""
    start, trained = _run_tiny()
    ref_start, ref_trained = _tiny_on_numpy()
    assert list(start) == list(ref_start)
    assert list(start)[:4] == [
        "embed.weight",
        "embed.bias",
        "encoder.self_attn.in_proj_weight",
        "encoder.self_attn.in_proj_bias",
    ]
    for n in start:
        assert_bitwise(start[n], ref_start[n], f"initial {n}")
        assert not np.array_equal(trained[n], start[n]), f"{n} was not trained"
        assert_close(trained[n], ref_trained[n], f"trained {n}", atol=1e-5)
