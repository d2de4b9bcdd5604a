"""``from_torch`` for sequence modules: ``nn.LSTM``/``GRU``/``RNN``,
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (SPEC 14).

Each becomes the unified layer of the same structure with the module's
``state_dict`` keys as parameter names: a recurrent layer lists ``weight_ih_l0``,
``bias_hh_l1_reverse``, ... (:func:`unified.layers.recurrent.rename`; the layer's
attributes keep unified's names ``l0_i2h_weight``), attention keeps
``in_proj_weight``, ``out_proj.weight``, ..., and a transformer layer's LayerNorms
list ``norm1.weight``/``norm1.bias``. ``batch_first=True`` becomes
``layout="NTC"``. In a traced ``forward`` a recurrent module returns PyTorch's
``(output, h_n)`` / ``(output, (h_n, c_n))`` and an attention module
``(output, weights)`` (see :mod:`unified.interop.torch_fx`). torch is imported here
only.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as TF
from torch import nn

from unified import layers as L
from unified.layers.recurrent import rename, torch_name
from unified.nets import Net

_RECURRENT = {nn.LSTM: L.LSTM, nn.GRU: L.GRU, nn.RNN: L.RNN}


def _dtype(p: Any) -> str:
    return str(p.dtype).replace("torch.", "")


def _recurrent(m: Any) -> Net | str:
    refused = []
    if getattr(m, "proj_size", 0):
        refused.append(f"proj_size={m.proj_size}")
    if not m.bias:
        refused.append("bias=False")
    if refused:
        return " and ".join(refused) + " (unified's recurrent layers have neither)"
    kw: dict[str, Any] = {
        "num_layers": m.num_layers,
        "layout": "NTC" if m.batch_first else "TNC",
        "dropout": float(m.dropout),
        "bidirectional": bool(m.bidirectional),
        "input_size": m.input_size,
        "dtype": _dtype(m.weight_ih_l0),
    }
    if type(m) is nn.RNN:
        kw["activation"] = "tanh" if m.mode == "RNN_TANH" else "relu"
    layer = _RECURRENT[type(m)](m.hidden_size, **kw)
    return rename(layer, torch_name)


def _attention(m: Any) -> Net | str:
    if m.bias_k is not None or m.add_zero_attn:
        return "add_bias_kv or add_zero_attn (unified's attention has neither)"
    return L.MultiHeadAttention(
        m.embed_dim,
        m.num_heads,
        dropout=float(m.dropout),
        bias=m.in_proj_bias is not None,
        kdim=m.kdim,
        vdim=m.vdim,
        layout="NTC" if m.batch_first else "TNC",
        dtype=_dtype(m.out_proj.weight),
    )


def _encoder_layer(m: Any) -> Net | str:
    from unified.interop.torch_import import _NORM_NAMES, _rename

    act = m.activation
    name = {TF.relu: "relu", TF.gelu: "gelu"}.get(act)
    if isinstance(act, nn.ReLU):
        name = "relu"
    elif isinstance(act, nn.GELU) and act.approximate == "none":
        name = "gelu"
    problems = []
    if name is None:
        problems.append(f"activation {act!r} (only relu and gelu)")
    attention = _attention(m.self_attn)
    if isinstance(attention, str):
        problems.append(f"self_attn: {attention}")
    if problems:
        return "; ".join(problems)
    layer = L.TransformerEncoderLayer(
        m.linear1.in_features,
        m.self_attn.num_heads,
        dim_feedforward=m.linear1.out_features,
        dropout=float(m.dropout.p),
        activation=str(name),
        layer_norm_eps=m.norm1.eps,
        norm_first=bool(m.norm_first),
        layout="NTC" if m.self_attn.batch_first else "TNC",
        bias=m.linear1.bias is not None,
        dtype=_dtype(m.linear1.weight),
    )
    _rename(layer.norm1, _NORM_NAMES)
    _rename(layer.norm2, _NORM_NAMES)
    return layer


def sequence_leaf(m: Any) -> Net | str | None:
    """The unified layer of a sequence module, a reason it has none, or ``None``
    if ``m`` is not one of them."""
    t = type(m)
    if t in _RECURRENT:
        return _recurrent(m)
    if t is nn.MultiheadAttention:
        return _attention(m)
    if t is nn.TransformerEncoderLayer:
        return _encoder_layer(m)
    return None
