"""The optional ``rnn_layer`` hook of the MXNet backend: the fused ``RNN`` operator.

``mx.nd.RNN`` is the kernel behind Gluon's ``rnn.RNN``/``LSTM``/``GRU`` layers; its
gate orders and formulas are the contract's (PyTorch's), and its modes have the
contract's names. It takes every weight of the layer as one flat vector, in Gluon's
order: the weights of each direction (``i2h`` then ``h2h``), then the biases in the
same order; the vector is built with a recorded ``concat``, so gradients reach the
separate weights. Called for one layer without dropout, time-major, with the states
given and returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mxnet as mx

from unified import hookimpl
from unified_mxnet import _np_on, _np_restore

Array = Any
_nd = mx.nd
_MODES = ("rnn_tanh", "rnn_relu", "lstm", "gru")


@hookimpl
def rnn_layer(
    mode: str,
    x: Array,
    states: Sequence[Array],
    weights: Sequence[Array],
    bidirectional: bool,
) -> tuple[Array, list[Array]]:
    if mode not in _MODES:
        raise ValueError(f"rnn_layer: mode must be one of {list(_MODES)}, got {mode!r}")
    prev = _np_on()
    try:
        d = 2 if bidirectional else 1
        per = [weights[4 * j : 4 * j + 4] for j in range(d)]
        flat = [w.reshape((-1,)) for p in per for w in p[:2]]
        flat += [b.reshape((-1,)) for p in per for b in p[2:]]
        params = _nd.concat(*flat, dim=0)
        lstm = mode == "lstm"
        extra = {"state_cell": states[1]} if lstm else {}
        out = _nd.RNN(
            x, params, states[0], state_size=int(states[0].shape[2]), num_layers=1,
            bidirectional=bool(bidirectional), mode=mode, p=0.0, state_outputs=True,
            **extra,
        )  # fmt: skip
        return out[0], list(out[1:])
    finally:
        _np_restore(prev)
