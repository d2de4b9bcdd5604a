"""The optional ``batch_norm`` and ``batch_norm_inference`` hooks of the PyTorch
backend: ``torch.batch_norm`` in training and in inference mode.

One call of the kernel behind ``torch.nn.BatchNorm*d`` in training mode, with one
fused autograd node for the backward. The batch statistics the contract returns are
read from fresh running buffers updated with ``momentum=1.0`` (so they receive the
batch mean and PyTorch's *unbiased* variance, converted back to the biased one),
which costs no extra pass over ``x``. The channel axis is moved to position 1 (a
view) when it is elsewhere.
"""

from __future__ import annotations

import torch

from unified import hookimpl
from unified.hookspecs import Array


@hookimpl
def batch_norm(
    x: Array, gamma: Array | None, beta: Array | None, axis: int, eps: float
) -> tuple[Array, Array, Array]:
    moved = axis != 1
    if moved:
        x = torch.movedim(x, axis, 1)
    channels = x.shape[1]
    count = x.numel() // max(channels, 1)
    if count < 2:  # torch's unbiased variance is undefined for one value
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x.detach(), dim=dims, correction=0)
        y = torch.batch_norm(x, gamma, beta, None, None, True, 0.0, eps, False)
    else:
        mean = torch.zeros(channels, dtype=x.dtype, device=x.device)
        var = torch.ones(channels, dtype=x.dtype, device=x.device)
        y = torch.batch_norm(x, gamma, beta, mean, var, True, 1.0, eps, False)
        var = var * ((count - 1) / count)  # not in place: autograd saved var
    if moved:
        y = torch.movedim(y, 1, axis)
    return y, mean, var


@hookimpl
def batch_norm_inference(
    x: Array,
    mean: Array,
    var: Array,
    gamma: Array | None,
    beta: Array | None,
    axis: int,
    eps: float,
) -> Array:
    """One ``torch.batch_norm`` call with ``training=False`` (the kernel behind
    ``nn.BatchNorm*d.eval()``): no full-size intermediate, one autograd node."""
    moved = axis != 1
    if moved:
        x = torch.movedim(x, axis, 1)
    y = torch.batch_norm(x, gamma, beta, mean, var, False, 0.0, eps, False)
    return torch.movedim(y, 1, axis) if moved else y
