"""``from_torch``: a ``torch.nn.Module`` as a unified net (SPEC 14).

Known modules convert one to one; a module with its own ``forward`` converts by
tracing it with ``torch.fx`` into a :class:`~unified.interop.graph.GraphNet`.
Parameter names are the module's ``state_dict`` keys, except that BatchNorm's
``num_batches_tracked`` counter (unified's BatchNorm has no use for it) is left
out: a BatchNorm is listed as ``bn.weight``, ``bn.bias``, ``bn.running_mean``,
``bn.running_var`` (the layer's ``gamma``/``beta`` attributes hold ``weight``/``bias``),
LayerNorm and GroupNorm as ``weight``/``bias``. PyTorch's conventions are kept:
BatchNorm momentum ``m`` becomes ``1 - m`` and the running variance stays unbiased,
``Linear`` acts on the last axis, epsilons are copied. torch is imported here only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from unified import layers as L
from unified.interop import common
from unified.interop.graph import (
    ConversionError,
    GraphNet,
    Holder,
    Identity,
    attach,
)
from unified.nets import Net, Sequential
from unified.parameters import Parameter

_ACTS: dict[type, Any] = {
    nn.ReLU: lambda m: L.ReLU(),
    nn.Sigmoid: lambda m: L.Sigmoid(),
    nn.Tanh: lambda m: L.Tanh(),
    nn.SELU: lambda m: L.SELU(),
    nn.SiLU: lambda m: L.SiLU(),
    nn.ReLU6: lambda m: L.ReLU6(),
    nn.LeakyReLU: lambda m: L.LeakyReLU(m.negative_slope),
    nn.ELU: lambda m: L.ELU(m.alpha),
    nn.GELU: lambda m: L.GELU(m.approximate),
    nn.Identity: lambda m: Identity(),
    nn.Flatten: lambda m: (
        L.Flatten()
        if (m.start_dim, m.end_dim) == (1, -1)
        else f"Flatten({m.start_dim}, {m.end_dim})"
    ),
    nn.Softplus: lambda m: (
        L.Softplus() if m.beta == 1 else f"Softplus with beta {m.beta}"
    ),
    nn.Softmax: lambda m: (
        L.Softmax(m.dim) if m.dim is not None else "Softmax(dim=None)"
    ),
    nn.LogSoftmax: lambda m: (
        L.LogSoftmax(m.dim) if m.dim is not None else "LogSoftmax(dim=None)"
    ),
}


_rename = common.rename

_NORM_NAMES = {"gamma": "weight", "beta": "bias"}


def leaf(m: Any) -> Net | str | None:
    """The unified layer of a known module; a reason string if unified cannot
    reproduce it exactly; ``None`` if it is not a known leaf."""
    t = type(m)
    if t is nn.Linear:
        return L.Dense(
            m.out_features, in_units=m.in_features, use_bias=m.bias is not None
        )
    if t in (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d):
        if isinstance(m.padding, str) or m.padding_mode != "zeros":
            return f"padding {m.padding!r} / padding_mode {m.padding_mode!r}"
        kw: dict[str, Any] = {
            "strides": m.stride,
            "padding": m.padding,
            "dilation": m.dilation,
            "groups": m.groups,
            "use_bias": m.bias is not None,
            "in_channels": m.in_channels,
        }
        if t is nn.ConvTranspose2d:
            return L.Conv2DTranspose(
                m.out_channels, m.kernel_size, output_padding=m.output_padding, **kw
            )
        cls: Any = L.Conv1D if t is nn.Conv1d else L.Conv2D
        return cls(m.out_channels, m.kernel_size, **kw)
    if t in (nn.MaxPool1d, nn.MaxPool2d):
        if m.return_indices or m.dilation not in (1, (1, 1)):
            return "return_indices or dilation"
        cls = L.MaxPool1D if t is nn.MaxPool1d else L.MaxPool2D
        return cls(m.kernel_size, m.stride or m.kernel_size, m.padding, m.ceil_mode)
    if t in (nn.AvgPool1d, nn.AvgPool2d):
        if getattr(m, "divisor_override", None):
            return "divisor_override"
        cls = L.AvgPool1D if t is nn.AvgPool1d else L.AvgPool2D
        return cls(
            m.kernel_size,
            m.stride or m.kernel_size,
            m.padding,
            m.ceil_mode,
            m.count_include_pad,
        )
    if t in (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool1d):
        if m.output_size not in (1, (1, 1), (1,)):
            return f"adaptive pooling to {m.output_size} (only to 1)"
        return {
            nn.AdaptiveAvgPool2d: L.GlobalAvgPool2D,
            nn.AdaptiveMaxPool2d: L.GlobalMaxPool2D,
            nn.AdaptiveAvgPool1d: L.GlobalAvgPool1D,
        }[t]()
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        if m.momentum is None or not m.track_running_stats:
            return "BatchNorm with momentum=None or track_running_stats=False"
        bn = L.BatchNorm(
            momentum=1.0 - m.momentum,
            epsilon=m.eps,
            center=m.affine,
            scale=m.affine,
            in_channels=m.num_features,
        )
        return _rename(bn, _NORM_NAMES)
    if t is nn.LayerNorm:
        if len(m.normalized_shape) != 1:
            return f"LayerNorm over {tuple(m.normalized_shape)} (only the last axis)"
        if m.elementwise_affine and m.bias is None:
            return "LayerNorm with bias=False"
        ln = L.LayerNorm(
            epsilon=m.eps,
            center=m.elementwise_affine,
            scale=m.elementwise_affine,
            in_channels=m.normalized_shape[0],
        )
        return _rename(ln, _NORM_NAMES)
    if t is nn.GroupNorm:
        gn = L.GroupNorm(
            m.num_groups,
            epsilon=m.eps,
            center=m.affine,
            scale=m.affine,
            in_channels=m.num_channels,
        )
        return _rename(gn, _NORM_NAMES)
    if t is nn.Dropout:
        return L.Dropout(m.p)
    if t is nn.Embedding:
        if m.padding_idx is not None or m.max_norm is not None:
            return "Embedding with padding_idx or max_norm"
        return L.Embedding(m.num_embeddings, m.embedding_dim)
    if t in _ACTS:
        return _ACTS[t](m)
    from unified.interop.torch_seq import sequence_leaf

    return sequence_leaf(m)


def convert(m: nn.Module, path: str, problems: list[str], trace: bool) -> Net:
    """The unified net of ``m`` (placeholders where ``problems`` were found)."""
    layer = leaf(m)
    if isinstance(layer, Net):
        return layer
    builtin = type(m).__module__.startswith("torch.nn.modules")
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    if layer is None and builtin and type(m) not in containers:
        layer = "not supported by unified"
    if isinstance(layer, str):
        problems.append(f"{path or '<root>'} ({type(m).__name__}): {layer}")
        return Holder()
    kids = [
        (name, convert(child, f"{path}.{name}" if path else name, problems, trace))
        for name, child in m.named_children()
    ]
    own = {
        name: Parameter(name, tuple(p.shape), str(p.dtype).replace("torch.", ""))
        for name, p in m.named_parameters(recurse=False)
    }
    own.update(
        {
            name: Parameter(
                name,
                tuple(b.shape),
                str(b.dtype).replace("torch.", ""),
                trainable=False,
            )
            for name, b in m.named_buffers(recurse=False)
        }
    )
    numbered = [n for n, _ in kids] == [str(i) for i in range(len(kids))]
    if type(m) is nn.Sequential and not own and numbered:
        return Sequential(*(k for _, k in kids))
    if not trace:
        holder = Holder()
        for name, p in own.items():
            attach(holder, name, p)
        for name, kid in kids:
            attach(holder, name, kid)
        return holder
    return GraphNet(dict(kids), [], 1, [0], own)


def from_torch(module: Any, *example_inputs: Any) -> Net:
    """Convert a ``torch.nn.Module`` into a unified net (see the module docstring).

    Known layers convert structurally; a custom ``forward`` is traced with
    ``torch.fx`` (``example_inputs`` are not needed for that; when given they are
    run through the module first). The result lives on the active backend.
    Anything unified cannot reproduce raises one ``ConversionError`` listing every
    place; nothing partial is returned.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"from_torch takes a torch.nn.Module, got {type(module).__name__}"
        )
    if example_inputs:
        with torch.no_grad():
            module.eval()(*[torch.as_tensor(np.asarray(x)) for x in example_inputs])
    problems: list[str] = []
    net = convert(module, "", problems, trace=True)
    if isinstance(net, GraphNet):
        from unified.interop.torch_fx import trace_into

        trace_into(net, module, problems, len(example_inputs) or None)
    if problems:
        raise ConversionError(
            f"cannot convert {type(module).__name__}: {len(problems)} unsupported "
            "place(s); nothing was converted:\n  " + "\n  ".join(problems)
        )
    state = {
        k: v.detach().cpu().numpy()
        for k, v in module.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    common.materialize(net, state, f"torch {type(module).__name__}")
    listing = net._listing()
    for name, p in module.named_parameters():
        if not p.requires_grad and name in listing:
            listing[name].frozen = True
    return net
