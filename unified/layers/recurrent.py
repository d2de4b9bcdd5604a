"""Recurrent layers ``RNN``, ``LSTM`` and ``GRU`` (SPEC 13), written in ``unified.ops``.

The parameters and formulas are Gluon's and PyTorch's: for layer ``k`` and direction
``l`` (forward) or ``r`` (reverse) the layer holds ``lk_i2h_weight``
``(gates * hidden, input)``, ``lk_h2h_weight`` ``(gates * hidden, hidden)``,
``lk_i2h_bias`` and ``lk_h2h_bias`` ``(gates * hidden,)``, where ``input`` is the
input size for layer 0 and ``directions * hidden`` above it. Gates are stacked in
the order i, f, g, o (LSTM) and r, z, n (GRU). :func:`torch_name` and
:func:`gluon_name` map the names to PyTorch's (``weight_ih_l0``, ``bias_hh_l1_reverse``)
and back.

The computation is a plain composition of ops, so it differentiates through time on
every backend: the input projection of all time steps is one ``linear``, then each
step adds ``linear(h, h2h_weight, h2h_bias)`` and applies the cell.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> lstm = U.LSTM(8, num_layers=2)
    >>> lstm.initialize()
    >>> x = np.ones((5, 3, 4), "float32")            # (T, N, C), layout "TNC"
    >>> U.to_numpy(lstm(x)).shape
    (5, 3, 8)
    >>> out, (h, c) = lstm(x, lstm.begin_state(3))
    >>> U.to_numpy(h).shape, U.to_numpy(c).shape
    ((2, 3, 8), (2, 3, 8))
    >>> list(lstm.params())[:4]
    ['l0_i2h_weight', 'l0_h2h_weight', 'l0_i2h_bias', 'l0_h2h_bias']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from unified import backend as _backend
from unified import modes, ops
from unified.errors import ShapeError
from unified.init import Initializer
from unified.layers.rnn_names import gluon_file_name, gluon_name, torch_name
from unified.nets import Net
from unified.parameters import Parameter
from unified.validation import number, one_of, positive_int

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "gluon_file_name",
    "gluon_name",
    "rename",
    "torch_name",
]

# -- cells: one time step, given the precomputed input projection ``xp`` ----------
State = list[Any]


def _rnn_cell(act: Callable[[Any], Any]) -> Callable[[Any, State, Any, Any], State]:
    def cell(xp: Any, state: State, w: Any, b: Any) -> State:
        return [act(ops.add(xp, ops.linear(state[0], w, b)))]

    return cell


def _lstm_cell(xp: Any, state: State, w: Any, b: Any) -> State:
    h, c = state
    i, f, g, o = ops.split(ops.add(xp, ops.linear(h, w, b)), 4, 1)
    c = ops.add(
        ops.multiply(ops.sigmoid(f), c), ops.multiply(ops.sigmoid(i), ops.tanh(g))
    )
    return [ops.multiply(ops.sigmoid(o), ops.tanh(c)), c]


def _gru_cell(xp: Any, state: State, w: Any, b: Any) -> State:
    h = state[0]
    xr, xz, xn = ops.split(xp, 3, 1)
    hr, hz, hn = ops.split(ops.linear(h, w, b), 3, 1)
    r = ops.sigmoid(ops.add(xr, hr))
    z = ops.sigmoid(ops.add(xz, hz))
    n = ops.tanh(ops.add(xn, ops.multiply(r, hn)))
    # (1 - z) * n + z * h
    return [ops.add(n, ops.multiply(z, ops.subtract(h, n)))]


class _Recurrent(Net):
    """The shared body: parameters, deferred input size, layers, directions, dropout."""

    gates = 1
    n_states = 1
    mode = "rnn_tanh"
    """The ``mode`` argument of the ``rnn_layer`` hook."""
    fused = True
    """Use the backend's fused ``rnn_layer`` kernel when it offers one (the
    conformance suite proves it equal to the composition; set ``False`` to force
    the composition)."""

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        layout: str = "TNC",
        dropout: float = 0.0,
        bidirectional: bool = False,
        input_size: int = 0,
        i2h_weight_initializer: Initializer | str | None = None,
        h2h_weight_initializer: Initializer | str | None = None,
        i2h_bias_initializer: Initializer | str | None = "zeros",
        h2h_bias_initializer: Initializer | str | None = "zeros",
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.hidden_size = positive_int(hidden_size, "hidden_size", owner)
        self.num_layers = positive_int(num_layers, "num_layers", owner)
        self.layout = one_of(layout, ("TNC", "NTC"), "layout", owner)
        self.dropout = number(dropout, "dropout", owner, 0.0, 1.0, high_open=True)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(
                f"{owner}: bidirectional must be True or False, got {bidirectional!r}"
            )
        self.bidirectional = bool(bidirectional)
        self.input_size = positive_int(input_size, "input_size", owner, minimum=0)
        self.dtype = np.dtype(dtype).name
        self.directions = 2 if self.bidirectional else 1
        self.aliases: dict[str, str] = {}
        """The registered name of each parameter listed under another name than
        its own (``l0_i2h_weight`` -> ``weight_ih_l0`` in a net converted from
        PyTorch, see :func:`rename`); empty for a layer built by hand."""
        # Host-drawn dropout masks: inputs of a compiled Trainer step (see Dropout).
        self.draws_host_randomness = self.dropout > 0 and self.num_layers > 1
        rows, hidden = self.gates * self.hidden_size, self.hidden_size
        inits = {
            "i2h_weight": i2h_weight_initializer,
            "h2h_weight": h2h_weight_initializer,
            "i2h_bias": i2h_bias_initializer,
            "h2h_bias": h2h_bias_initializer,
        }
        for k in range(self.num_layers):
            width = (self.input_size or -1) if k == 0 else self.directions * hidden
            shapes = {
                "i2h_weight": (rows, width),
                "h2h_weight": (rows, hidden),
                "i2h_bias": (rows,),
                "h2h_bias": (rows,),
            }
            for d in "lr"[: self.directions]:
                for what, shape in shapes.items():
                    name = f"{d}{k}_{what}"
                    setattr(self, name, Parameter(name, shape, dtype, inits[what]))

    def _cell(self) -> Callable[[Any, State, Any, Any], State]:
        raise NotImplementedError

    def _param(self, name: str) -> Parameter:
        value = self._entries[self.aliases.get(name, name)]
        assert isinstance(value, Parameter)
        return value

    # -- states ------------------------------------------------------------------------
    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        """The shape and layout of each state, as Gluon's ``state_info``."""
        shape = (self.num_layers * self.directions, batch_size, self.hidden_size)
        return [{"shape": shape, "__layout__": "LNC"}] * self.n_states

    def begin_state(self, batch_size: int) -> list[Any]:
        """Zero initial states: ``[h]`` (RNN, GRU) or ``[h, c]`` (LSTM), each
        ``(num_layers * directions, batch_size, hidden_size)``, native arrays of the
        layer's backend (Gluon's spelling)."""
        n = positive_int(batch_size, "batch_size", f"{type(self).__name__}.begin_state")
        table = self._backend or _backend.current_backend()
        shape = (self.num_layers * self.directions, n, self.hidden_size)
        return [table.zeros(shape, self.dtype) for _ in range(self.n_states)]

    def _check_states(self, states: Any, batch: int) -> None:
        """Raise unless ``states`` is ``[h]`` / ``[h, c]`` of the right shapes."""
        owner = type(self).__name__
        shape = (self.num_layers * self.directions, batch, self.hidden_size)
        if not isinstance(states, (list, tuple)) or len(states) != self.n_states:
            what = "[h]" if self.n_states == 1 else "[h, c]"
            raise TypeError(
                f"{owner}: states must be a list {what} of arrays of shape {shape}, "
                f"got {type(states).__name__}"
                + (f" of length {len(states)}" if isinstance(states, list) else "")
                + f"; use {owner.lower()}.begin_state(batch_size) for zeros."
            )
        for s in states:
            got = tuple(int(d) for d in s.shape)
            if got != shape:
                raise ShapeError(
                    f"{owner}: each state must have shape (num_layers * directions, "
                    f"N, hidden_size) = {shape}, got {got}"
                )

    def _split_states(self, states: Any, batch: int) -> list[State]:
        """Per (layer, direction) states ``[h]`` / ``[h, c]``, each ``(N, hidden)``."""
        count = self.num_layers * self.directions
        parts = []
        for s in states:
            pieces = ops.split(s, count, 0) if count > 1 else [s]
            parts.append([ops.reshape(p, (batch, self.hidden_size)) for p in pieces])
        return [list(z) for z in zip(*parts)]

    # -- forward -----------------------------------------------------------------------
    def forward(self, x: Any, states: Any = None) -> Any:
        owner = type(self).__name__
        if len(x.shape) != 3:
            raise ShapeError(
                f"{owner}: expected an input of 3 dims ({self.layout}), got shape "
                f"{tuple(x.shape)}"
            )
        if self.layout == "NTC":
            x = ops.transpose(x, (1, 0, 2))
        steps, batch = int(x.shape[0]), int(x.shape[1])
        self._prepare(int(x.shape[2]))
        if states is not None:
            self._check_states(states, batch)
        masks = self._masks(steps, batch)
        kernel = self._kernel()
        if kernel is not None:
            x, new = self._run_fused(kernel, x, states, masks)
        else:
            x, new = self._run_composed(x, states, masks)
        if self.layout == "NTC":
            x = ops.transpose(x, (1, 0, 2))
        return x if states is None else (x, new)

    def _run_composed(
        self, x: Any, states: Any, masks: list[Any]
    ) -> tuple[Any, list[Any]]:
        """Every layer as a composition of ops: the reference implementation."""
        batch = int(x.shape[1])
        if states is None:
            zero = ops.zeros((batch, self.hidden_size), self.dtype)
            initial = [[zero] * self.n_states] * (self.num_layers * self.directions)
        else:
            initial = self._split_states(states, batch)
        cell = self._cell()
        finals: list[State] = []
        for k in range(self.num_layers):
            outputs = []
            for j, d in enumerate("lr"[: self.directions]):
                index = k * self.directions + j
                out, last = self._run(x, k, d, initial[index], cell)
                outputs.append(out)
                finals.append(last)
            x = outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, 2)
            if masks and k < self.num_layers - 1:
                x = ops.multiply(x, masks[k])
        if states is None:
            return x, []
        return x, [ops.stack([f[i] for f in finals], 0) for i in range(self.n_states)]

    def _kernel(self) -> Callable[..., Any] | None:
        """The backend's optional fused ``rnn_layer`` hook, if it has one and
        ``fused`` is on."""
        if not self.fused:
            return None
        table = self._backend or _backend.current_backend()
        if "rnn_layer" not in table.capabilities:
            return None
        kernel: Callable[..., Any] = table.rnn_layer
        return kernel

    def _run_fused(
        self, kernel: Callable[..., Any], x: Any, states: Any, masks: list[Any]
    ) -> tuple[Any, list[Any]]:
        """Every layer through the backend's fused kernel, one layer per call."""
        batch, d = int(x.shape[1]), self.directions
        finals = []
        for k in range(self.num_layers):
            if states is None:
                zero = ops.zeros((d, batch, self.hidden_size), self.dtype)
                initial = [zero] * self.n_states
            elif self.num_layers == 1:
                initial = list(states)
            else:
                initial = [ops.slice_axis(s, 0, k * d, (k + 1) * d) for s in states]
            weights = [
                self._param(f"{side}{k}_{what}").data()
                for side in "lr"[:d]
                for what in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")
            ]
            x, new = kernel(self.mode, x, initial, weights, self.bidirectional)
            finals.append(new)
            if masks and k < self.num_layers - 1:
                x = ops.multiply(x, masks[k])
        if states is None:
            return x, []
        if self.num_layers == 1:
            return x, list(finals[0])
        return x, [
            ops.concatenate([f[i] for f in finals], 0) for i in range(self.n_states)
        ]

    def _run(
        self, x: Any, k: int, d: str, state: State, cell: Any
    ) -> tuple[Any, State]:
        """One layer in one direction over the whole sequence ``x`` ``(T, N, C)``."""
        steps, batch, width = (int(s) for s in x.shape)
        p = f"{d}{k}_"
        w_i, b_i = self._param(p + "i2h_weight"), self._param(p + "i2h_bias")
        w_h, b_h = self._param(p + "h2h_weight"), self._param(p + "h2h_bias")
        rows = self.gates * self.hidden_size
        xp = ops.linear(ops.reshape(x, (steps * batch, width)), w_i.data(), b_i.data())
        xs = ops.split(xp, steps, 0) if steps > 1 else [xp]
        w, b = w_h.data(), b_h.data()
        order = range(steps) if d == "l" else range(steps - 1, -1, -1)
        outs: list[Any] = [None] * steps
        for t in order:
            state = cell(ops.reshape(xs[t], (batch, rows)), state, w, b)
            outs[t] = state[0]
        return ops.stack(outs, 0), state

    def _masks(self, steps: int, batch: int) -> list[Any]:
        """The between-layer dropout masks of this forward (none in inference)."""
        if not self.draws_host_randomness or not modes.is_training(self):
            return []
        table = self._backend or _backend.current_backend()
        shape = (steps, batch, self.directions * self.hidden_size)
        return modes.dropout_masks(
            self, shape, self.dropout, self.dtype, table, self.num_layers - 1
        )

    def _prepare(self, features: int) -> None:
        """Infer the input size at the first forward; explain a mismatch later."""
        first = self._param("l0_i2h_weight")
        if first._data is not None and first._shape[1] == features:
            return
        where = f"{type(self).__name__}({self._describe()})"
        rows = self.gates * self.hidden_size
        for d in "lr"[: self.directions]:
            self._param(f"{d}0_i2h_weight")._infer((rows, features), where)
        self.input_size = features

    def _describe(self) -> str:
        width = self._param("l0_i2h_weight").shape[1]
        text = f"{width if width != -1 else '?'} -> {self.hidden_size}, {self.layout}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional"
        return text


def rename(layer: _Recurrent, name_of: Callable[[str], str]) -> _Recurrent:
    """List ``layer``'s parameters under ``name_of(own_name)`` (a converter keeps
    the source's names this way: ``torch_name``, or Gluon's file keys); the layer
    computes as before. Returns ``layer``.

    Example::

        >>> import unified as U
        >>> from unified.layers.recurrent import rename, torch_name
        >>> lstm = rename(U.LSTM(3, input_size=2), torch_name)
        >>> list(lstm.params())[:2]
        ['weight_ih_l0', 'weight_hh_l0']
    """
    from unified import nets

    canonical = {registered: own for own, registered in layer.aliases.items()}
    entries: dict[str, Any] = {}
    for registered, value in layer._entries.items():
        if isinstance(value, Parameter):
            own = canonical.get(registered, registered)
            new = name_of(own)
            layer.aliases[own] = new
            value.name = new
            entries[new] = value
        else:
            entries[registered] = value
    object.__setattr__(layer, "_entries", entries)
    nets._bump()
    return layer


_ARGUMENTS = """
    Arguments:
        hidden_size: the size of each state (the output has
            ``directions * hidden_size`` features).
        num_layers: the number of stacked layers; layer ``k > 0`` reads the
            output of layer ``k - 1``.
        layout: ``"TNC"`` (time first, the default of Gluon and PyTorch) or
            ``"NTC"`` (batch first); states are ``(layers * directions, N, hidden)``
            in both.
        dropout: the drop probability applied to the output of every layer but
            the last, in training mode only; masks are drawn on the host as
            :class:`~unified.Dropout`'s are, so they are identical on every backend.
        bidirectional: add a reverse-direction layer (``r0_...``) whose output is
            concatenated after the forward one's on the feature axis.
        input_size: the input feature size; ``0`` infers it at the first forward
            (the values equal the eager case, SPEC 4).
        i2h_weight_initializer, h2h_weight_initializer: the weights' own
            initializers; ``None`` uses the one given to ``initialize`` (Gluon's
            rule; PyTorch draws every parameter from U(-1/sqrt(hidden),
            1/sqrt(hidden)) instead).
        i2h_bias_initializer, h2h_bias_initializer: the biases' own initializers
            (zeros by default, as in Gluon).
        dtype: the parameters' dtype.

    Call ``layer(x)`` for the output ``(T, N, directions * hidden)`` (``(N, T, ...)``
    with ``"NTC"``), or ``layer(x, states)`` for ``(output, new_states)``; NumPy
    arrays are accepted for both.
"""


def _signature(cls: type) -> type:
    cls.__doc__ = (cls.__doc__ or "") + _ARGUMENTS
    return cls


@_signature
class RNN(_Recurrent):
    """Elman recurrent layer: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    ``activation`` is ``"tanh"`` (default) or ``"relu"``. States are ``[h]``;
    ``gates = 1``, so the weights are ``(hidden, input)`` and ``(hidden, hidden)``.

    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> rnn = U.RNN(4, activation="relu", layout="NTC", bidirectional=True)
        >>> rnn.initialize()
        >>> U.to_numpy(rnn(np.ones((3, 5, 2), "float32"))).shape
        (3, 5, 8)
        >>> rnn.params()["r0_i2h_weight"].shape
        (4, 2)
    """

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        activation: str = "tanh",
        layout: str = "TNC",
        dropout: float = 0.0,
        bidirectional: bool = False,
        input_size: int = 0,
        i2h_weight_initializer: Initializer | str | None = None,
        h2h_weight_initializer: Initializer | str | None = None,
        i2h_bias_initializer: Initializer | str | None = "zeros",
        h2h_bias_initializer: Initializer | str | None = "zeros",
        dtype: str = "float32",
    ) -> None:
        act = one_of(activation, ("tanh", "relu"), "activation", "RNN")
        super().__init__(
            hidden_size,
            num_layers,
            layout,
            dropout,
            bidirectional,
            input_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            dtype,
        )
        self.activation: str = act
        self.mode = f"rnn_{act}"

    def _cell(self) -> Callable[[Any, State, Any, Any], State]:
        return _rnn_cell(ops.tanh if self.activation == "tanh" else ops.relu)

    def _describe(self) -> str:
        return super()._describe() + f", {self.activation}"


@_signature
class LSTM(_Recurrent):
    """Long short-term memory layer (gates i, f, g, o; states ``[h, c]``).

    ``i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh)``;
    ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``, ``h' = sigmoid(o) * tanh(c')``.
    The weights are ``(4 * hidden, input)`` and ``(4 * hidden, hidden)``.

    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> lstm = U.LSTM(3, input_size=2)
        >>> lstm.params()["l0_i2h_weight"].shape
        (12, 2)
        >>> lstm.initialize()
        >>> out, (h, c) = lstm(np.ones((4, 1, 2), "float32"), lstm.begin_state(1))
        >>> bool((U.to_numpy(out)[-1] == U.to_numpy(h)[0]).all())
        True
    """

    gates = 4
    n_states = 2
    mode = "lstm"

    def _cell(self) -> Callable[[Any, State, Any, Any], State]:
        return _lstm_cell


@_signature
class GRU(_Recurrent):
    """Gated recurrent unit layer (gates r, z, n; states ``[h]``), PyTorch's and
    Gluon's formula (the reset gate multiplies ``W_hn h + b_hn``)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    The weights are ``(3 * hidden, input)`` and ``(3 * hidden, hidden)``.

    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> gru = U.GRU(5, num_layers=2, dropout=0.5)
        >>> gru.initialize()
        >>> out, [h] = gru(np.ones((4, 2, 3)), gru.begin_state(2))
        >>> U.to_numpy(out).shape, U.to_numpy(h).shape
        ((4, 2, 5), (2, 2, 5))
    """

    gates = 3
    mode = "gru"

    def _cell(self) -> Callable[[Any, State, Any, Any], State]:
        return _gru_cell
