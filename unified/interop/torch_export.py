"""``net.to_native("torch")``: a ``torch.nn.Module`` (see ``unified.interop.export``).

A ``Sequential`` whose every layer has an exact ``torch.nn`` twin with the same
parameter names (``Dense`` without ``flatten`` -> ``Linear``, ``Conv`` ->
``Conv1d``/``Conv2d``/``ConvTranspose2d``, activations, pools without a differing
rounding, ``Dropout``, ``Flatten``, ``Embedding``) becomes a ``torch.nn.Sequential``
of those modules. Anything else (graphs, Gluon-named BatchNorm, Dense with
``flatten=True`` or a fused activation, ...) becomes a :class:`UnifiedModule`,
which runs the unified net on the torch backend on the module's own tensors.
"""

from __future__ import annotations

from typing import Any

import torch

from unified import layers as L
from unified import modes as _modes
from unified.checkpoint import port
from unified.nets import Net, Sequential


class UnifiedModule(torch.nn.Module):
    """A unified net as a ``torch.nn.Module``: parameters are ``nn.Parameter`` s and
    state parameters are buffers, under the unified structural names."""

    def __init__(self, net: Net) -> None:
        super().__init__()
        twin = port(net, "torch")
        self._unified = [twin]  # a list: not registered as a submodule
        self._links: list[tuple[Any, str, str]] = []
        for name, p in twin._listing().items():
            *parents, leaf = name.split(".")
            module: torch.nn.Module = self
            for part in parents:
                if part not in module._modules:
                    module.add_module(part, torch.nn.Module())
                module = module._modules[part]  # type: ignore[assignment]
            value = p._data.detach().clone()
            if p.trainable:
                module.register_parameter(
                    leaf, torch.nn.Parameter(value, requires_grad=not p.frozen)
                )
            else:
                module.register_buffer(leaf, value)
            self._links.append((p, ".".join(parents), leaf))
        self.eval()

    def forward(self, *args: Any) -> Any:
        for p, parent, leaf in self._links:
            module = self.get_submodule(parent) if parent else self
            p._data = getattr(module, leaf)
        with _modes.training(self.training):
            return self._unified[0](*args)


class _BatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """``torch.nn.BatchNorm1d/2d`` for any input rank (the layer does not know it)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input (N, C, ...), got {input.dim()}-D")


_ACTS = {
    "relu": torch.nn.ReLU,
    "sigmoid": torch.nn.Sigmoid,
    "tanh": torch.nn.Tanh,
    "softrelu": torch.nn.Softplus,
    "softplus": torch.nn.Softplus,
    "selu": torch.nn.SELU,
    "silu": torch.nn.SiLU,
    "swish": torch.nn.SiLU,
    "relu6": torch.nn.ReLU6,
}


def _twin(layer: Any) -> torch.nn.Module | None:
    """The exact ``torch.nn`` module of ``layer`` (parameters not yet copied)."""
    t = type(layer)
    names = list(layer._entries)
    if t is L.Dense and not layer.flatten and layer.activation is None:
        w = layer.weight.shape
        return torch.nn.Linear(w[1], w[0], bias=layer.bias is not None)
    if t in (L.Conv1D, L.Conv2D, L.Conv2DTranspose) and layer.activation is None:
        c: Any = layer
        cls: Any = {
            L.Conv1D: torch.nn.Conv1d,
            L.Conv2D: torch.nn.Conv2d,
            L.Conv2DTranspose: torch.nn.ConvTranspose2d,
        }[t]
        extra = {"output_padding": c.output_padding} if c.transpose else {}
        return cls(
            c.in_channels,
            c.channels,
            c.kernel_size,
            stride=c.strides,
            padding=c.padding,
            dilation=c.dilation,
            groups=c.groups,
            bias=c.bias is not None,
            **extra,
        )
    if t is L.BatchNorm and names[:2] == ["weight", "bias"]:
        b: Any = layer
        if b.axis != 1 or not b.unbiased_running_var or b.use_global_stats:
            return None
        return _BatchNorm(
            b.running_mean.shape[0], b.epsilon, round(1.0 - b.momentum, 12)
        )
    if t in (L.MaxPool1D, L.MaxPool2D, L.AvgPool1D, L.AvgPool2D):
        p: Any = layer
        if p.mode == "max":
            cls = torch.nn.MaxPool1d if p.ndim == 1 else torch.nn.MaxPool2d
            return cls(p.pool_size, p.strides, p.padding, ceil_mode=p.ceil_mode)
        cls = torch.nn.AvgPool1d if p.ndim == 1 else torch.nn.AvgPool2d
        return cls(p.pool_size, p.strides, p.padding, p.ceil_mode, p.count_include_pad)
    if t is L.Flatten:
        return torch.nn.Flatten()
    if t is L.Dropout:
        return torch.nn.Dropout(layer.rate)
    if t is L.Embedding:
        w = layer.weight.shape
        return torch.nn.Embedding(w[0], w[1])
    if t is L.LeakyReLU:
        return torch.nn.LeakyReLU(layer.alpha)
    if t is L.ELU:
        return torch.nn.ELU(layer.alpha)
    if t is L.GELU:
        return torch.nn.GELU(
            approximate="tanh" if layer.activation == "gelu_tanh" else "none"
        )
    if isinstance(layer, L.Activation) and not names:
        cls = _ACTS.get(str(layer.activation))
        return cls() if cls is not None else None
    return None


def structural(net: Net) -> torch.nn.Module | None:
    """A ``torch.nn.Sequential`` of exact twins, or ``None`` if some layer has none."""
    if type(net) is not Sequential:
        return None
    modules = []
    for layer in net:
        twin = _twin(layer)
        if twin is None:
            return None
        modules.append(twin)
    seq = torch.nn.Sequential(*modules)
    state = {
        k: v
        for k, v in seq.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    listing = net._listing()
    if list(state) != list(listing) or any(
        tuple(state[k].shape) != tuple(listing[k].shape) for k in state
    ):
        return None
    with torch.no_grad():
        for name, p in listing.items():
            target = seq.get_parameter(name) if p.trainable else seq.get_buffer(name)
            target.copy_(torch.from_numpy(p.numpy()))
            if p.trainable and p.frozen:
                target.requires_grad_(False)
    return seq.eval()


def to_torch(net: Net) -> torch.nn.Module:
    """The exported module: structural when exact, else a :class:`UnifiedModule`."""
    return structural(net) or UnifiedModule(net)
