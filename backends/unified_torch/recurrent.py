"""The optional ``rnn_layer`` hook of the PyTorch backend: torch's fused RNN kernels.

``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh`` and ``torch.rnn_relu`` are the
kernels behind ``torch.nn.LSTM``/``GRU``/``RNN``; called for one layer (no dropout,
time-major), with the weights in ``torch.nn``'s ``_flat_weights`` order, they compute
:func:`unified.hookspecs.rnn_layer` exactly as its contract states. Autograd records
them like any other op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from unified import hookimpl
from unified.hookspecs import Array

_KERNELS: dict[str, Callable[..., Any]] = {
    "gru": torch.gru,
    "rnn_tanh": torch.rnn_tanh,
    "rnn_relu": torch.rnn_relu,
}


@hookimpl
def rnn_layer(
    mode: str,
    x: Array,
    states: Sequence[Array],
    weights: Sequence[Array],
    bidirectional: bool,
) -> tuple[Array, list[Array]]:
    # Arguments after the weights: has_biases, num_layers, dropout, train,
    # bidirectional, batch_first.
    if mode == "lstm":
        out, h, c = torch.lstm(
            x, (states[0], states[1]), list(weights), True, 1, 0.0, False,
            bool(bidirectional), False,
        )  # fmt: skip
        return out, [h, c]
    try:
        kernel = _KERNELS[mode]
    except KeyError:
        raise ValueError(
            f"rnn_layer: mode must be one of {['lstm', *_KERNELS]}, got {mode!r}"
        ) from None
    out, h = kernel(
        x, states[0], list(weights), True, 1, 0.0, False, bool(bidirectional), False
    )
    return out, [h]
