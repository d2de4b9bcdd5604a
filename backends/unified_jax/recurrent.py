"""The optional ``rnn_layer`` hook of the JAX backend: one ``lax.scan`` per direction.

The input projection of every time step is one matmul; the recurrence is a
``lax.scan`` over time (``reverse=True`` for the reverse direction, whose outputs
``lax.scan`` leaves at their input positions), with the contract's cell formulas
written as the layers' composition writes them, matmuls at
``precision="highest"``. Under ``jax.jit`` (the compiled ``Trainer`` step) the loop
stays one loop instead of ``T`` unrolled copies of the cell, so compilation time no
longer grows with the sequence length; ``jax.grad`` differentiates the scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from unified.hookspecs import Array
from unified.plugins import hookimpl
from unified_jax.eager import eager_jit

_HI = lax.Precision.HIGHEST
State = tuple[Array, ...]


def _linear(x: Array, w: Array, b: Array) -> Array:
    return jnp.matmul(x, w.T, precision=_HI) + b


def _lstm(xp: Array, state: State, w: Array, b: Array) -> State:
    h, c = state
    i, f, g, o = jnp.split(xp + _linear(h, w, b), 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def _gru(xp: Array, state: State, w: Array, b: Array) -> State:
    h = state[0]
    xr, xz, xn = jnp.split(xp, 3, axis=-1)
    hr, hz, hn = jnp.split(_linear(h, w, b), 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return (n + z * (h - n),)


def _simple(act: Callable[[Array], Array]) -> Callable[..., State]:
    def cell(xp: Array, state: State, w: Array, b: Array) -> State:
        return (act(xp + _linear(state[0], w, b)),)

    return cell


_CELLS: dict[str, Callable[..., State]] = {
    "lstm": _lstm,
    "gru": _gru,
    "rnn_tanh": _simple(jnp.tanh),
    "rnn_relu": _simple(jax.nn.relu),
}


@eager_jit(static_argnames=("mode", "reverse"))
def _direction(
    mode: str, reverse: bool, x: Array, state: State, weights: Sequence[Array]
) -> tuple[Array, State]:
    """One direction of one layer: ``(outputs, final states)``. Compiled on its own
    (cached by shapes), so eager calls do not retrace the scan; inlined under an
    outer ``jax.jit``."""
    cell = _CELLS[mode]
    wi, wh, bi, bh = weights
    xp = _linear(x, wi, bi)  # (T, N, G*H), every step at once

    def step(carry: State, xt: Array) -> tuple[State, Array]:
        new = cell(xt, carry, wh, bh)
        return new, new[0]

    last, out = lax.scan(step, tuple(state), xp, reverse=reverse)
    return out, last


@hookimpl
def rnn_layer(
    mode: str,
    x: Array,
    states: Sequence[Array],
    weights: Sequence[Array],
    bidirectional: bool,
) -> tuple[Array, list[Array]]:
    if mode not in _CELLS:
        raise ValueError(f"rnn_layer: mode must be one of {list(_CELLS)}, got {mode!r}")
    outs, finals = [], []
    for d in range(2 if bidirectional else 1):
        state = tuple(s[d] for s in states)
        w = tuple(weights[4 * d : 4 * d + 4])
        out, last = _direction(mode, d == 1, x, state, w)
        outs.append(out)
        finals.append(last)
    output = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
    return output, [jnp.stack([f[i] for f in finals]) for i in range(len(states))]


__all__ = ["rnn_layer"]
