"""The pure training step a backend's ``jit`` compiles for :class:`~unified.Trainer`.

:func:`pure_step` builds a function of native arrays only (parameters, optimizer
state, the coefficient array, the batch, dropout masks) that runs the forward, the
backward and the optimizer's update rule and returns the new values instead of
writing them: the backend compiles it once per structure and the ``Trainer``
writes the results back once the step has succeeded. Its first and fourth
arguments (:data:`DONATED`) are what a backend with the capability ``donate`` may
reuse for the results (:func:`unshare` first copies any array someone else
holds). :class:`Row` reads a parameter's coefficients lazily, so an unused one adds
nothing to the compiled step; :class:`Functional` keeps an in-place backend's
``axpby`` from writing into the step's inputs.

Example::

    >>> import numpy as np
    >>> from unified.pure_step import Row
    >>> coefficients = Row(np.array([[0.1, 0.9]]), 0, ("lr", "momentum"))
    >>> float(coefficients["momentum"]), len(coefficients)
    (0.9, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from unified import checks, donation
from unified import modes as _modes
from unified.autodiff import LossFn, traced_call
from unified.nets import Net
from unified.optim import Optimizer


def pure_step(
    net: Net,
    opt: Optimizer,
    table: Any,
    loss_fn: LossFn,
    train: list[Any],
    others: list[Any],
    entries: list[Any],
    statics: tuple[Any, ...],
    names: tuple[tuple[str, ...], ...],
    held: list[Any],
    written: list[bool],
    messages: list[str],
    host_checks: list[Any],
) -> Callable[..., Any]:
    """Build the pure function the backend compiles: new values, optimizer state,
    loss, grads, the new values of the state parameters ``held`` (which
    ``written`` flags, fixed when the function is traced, say were written), and
    the counts of failed data checks (whose ``messages`` are filled when traced)."""
    count = len(train)
    # train[i] is stepped[j] (slot (0, j)) if the optimizer updates it (its j-th
    # entry), else rest[j] (slot (1, j)): the order ``Trainer`` passes them in
    index = {id(p): i for i, (_, p) in enumerate(entries)}
    sources: list[tuple[int, int]] = []
    unstepped = 0
    for p in train:
        if id(p) in index:
            sources.append((0, index[id(p)]))
        else:
            sources.append((1, unstepped))
            unstepped += 1
    position = {id(p): i for i, p in enumerate(train)}
    # The update must not write into its inputs: the step may run eagerly (the
    # discovery run of the dropout masks, a backend jit that falls back) and a
    # failed or repeated step must change nothing.
    rules_table = Functional(table) if "inplace" in table.capabilities else table

    def step(
        stepped: list[Any],
        rest: list[Any],
        other_arrays: list[Any],
        state_arrays: list[Any],
        coeffs: Any,
        batch: list[Any],
        masks: list[Any] | None = None,
    ) -> Any:
        parts = (stepped, rest)
        train_arrays = [parts[k][j] for k, j in sources]
        saved = [p._data for p in others]
        for p, a in zip(others, other_arrays):
            p._data = a
        try:
            fn = traced_call(net, train, loss_fn, tuple(batch), held, written)
            slots = [table.zeros_like(p._data) for p in held]
            # masks=None: the discovery run of the dropout masks, which set the feed.
            feed = _modes.MaskFeed(masks) if masks is not None else _modes.active_feed()
            with checks.collecting(batch) as found, _modes.feeding_masks(feed):
                try:
                    value, grads = table.value_and_grad(fn, list(train_arrays) + slots)
                finally:  # also when a kernel fails: the host checks explain it
                    messages[:] = [message for _, message in found]
                    host_checks[:] = found.host
        finally:
            for p, a in zip(others, saved):
                p._data = a
        grads, new_held = grads[:count], grads[count:]
        new_ws, new_states = [], []
        for row, ((_, p), s, static) in enumerate(zip(entries, state_arrays, statics)):
            c = Row(coeffs, row, names[row])
            i = position[id(p)]
            w, s = opt.rule(rules_table, train_arrays[i], grads[i], s, c, static)
            new_ws.append(w)
            new_states.append(s)
        # The new values first: a backend that donates the arrays of the first and
        # fourth arguments pairs them with the first outputs of their shapes.
        return new_ws, new_states, value, grads, new_held, [n for n, _ in found]

    return step


DONATED = (0, 3)
"""The arguments of the compiled step a ``donate`` backend may reuse: the arrays
of the parameters the optimizer updates, and the optimizer's state."""


def unshare(table: Any, stepped: list[Any], states: list[dict[str, Any]]) -> None:
    """Replace, in the call's lists, every array someone else also holds by a copy
    (see :mod:`unified.donation`): only the step's own arrays are given up."""
    for i in donation.shared_entries(stepped):
        stepped[i] = table.multiply(stepped[i], 1.0)
    flat = [(i, k) for i, arrays in enumerate(states) for k in arrays]
    values = [states[i][k] for i, k in flat]
    for j in donation.shared_entries(values):
        i, k = flat[j]
        states[i] = {**states[i], k: table.multiply(values[j], 1.0)}


class Row(Mapping[str, Any]):
    """The coefficients of one entry, read from the step's coefficient array when
    the rule asks for them: a coefficient the update does not use (a zero weight
    decay, a dampening without momentum) adds nothing to the compiled step."""

    def __init__(self, coeffs: Any, row: int, names: tuple[str, ...]) -> None:
        self._coeffs, self._row, self._names = coeffs, row, names
        self._read: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self._read.get(key)
        if value is None:
            value = self._read[key] = self._coeffs[self._row, self._names.index(key)]
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Functional:
    """A backend table whose ``axpby`` returns a new array instead of writing into
    ``y`` (for the pure step on an ``inplace`` backend); everything else delegates.
    ``y*b + x*a`` rounds as the in-place update does, so the numbers are the same."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def axpby(self, a: Any, x: Any, b: Any, y: Any) -> Any:
        t = self._table
        if not (type(b) is float and b == 1.0):
            y = t.multiply(y, b)
        if not (type(a) is float and a == 1.0):
            x = t.multiply(x, a)
        return t.add(y, x)
