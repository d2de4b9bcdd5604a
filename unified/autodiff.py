"""``value_and_grad``: the neutral, functional gradient API (SPEC 5).

The core gathers the trainable parameters' arrays, the backend differentiates a pure
function of them (the parameters are rebound to the backend's traced arrays while the
loss runs), and the gradients are written back to ``p.grad()``.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> net = U.Dense(1, in_units=2)
    >>> net.initialize(U.init.Ones())
    >>> x = np.ones((3, 2), "float32")
    >>> loss, grads = U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(net, x)
    >>> float(loss), U.to_numpy(net.weight.grad()).tolist()
    (6.0, [[3.0, 3.0]])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unified import backend as _backend
from unified import data as _data
from unified import modes as _modes
from unified.errors import NothingToDifferentiateError, StructureError
from unified.nets import Net
from unified.parameters import Parameter

LossFn = Callable[..., Any]


def trainable(net: Net) -> tuple[list[str], list[Parameter]]:
    """Return the names and parameters of ``net`` that are differentiated."""
    listing = net._listing()
    names = [n for n, p in listing.items() if not p.frozen and p.trainable]
    if not names:
        raise NothingToDifferentiateError(
            f"nothing to differentiate: all {len(listing)} parameter(s) of "
            f"{type(net).__name__} are frozen (or it has none). Unfreeze some with "
            "unified.unfreeze(net, pattern) or p.frozen = False."
        )
    return names, [listing[n] for n in names]


def convert_batch(net: Net, args: tuple[Any, ...], owner: str) -> tuple[Any, ...]:
    """Convert the batch arguments once, before ``loss_fn`` sees them (SPEC 10)."""
    if not isinstance(net, Net):
        raise TypeError(
            f"{owner}: the first argument must be the unified.Net to differentiate, "
            f"got {type(net).__name__}. Call it as f(net, *batch)."
        )
    table = net._backend or _backend.current_backend()
    return _data.convert_call(table, args, net, f"{owner} (batch argument)")


def states(net: Net) -> list[Parameter]:
    """Return the state parameters (``trainable=False``) of ``net`` that hold
    values."""
    return [
        p for p in net._listing().values() if not p.trainable and p._data is not None
    ]


def ensure_materialized(net: Net, loss_fn: LossFn, args: tuple[Any, ...]) -> None:
    """Run ``loss_fn`` once, outside differentiation, if some shape is still
    deferred."""
    params = net._listing().values()
    if any(p._data is None for p in params):
        with _modes.shape_only():  # inference mode: no state writes, no masks
            loss_fn(net, *args)
        for p in params:
            p.data()  # raises the precise error if still missing


def backend_of(net: Net, params: list[Parameter]) -> Any:
    """Return the one backend every parameter lives on."""
    tables = {id(p._backend): p._backend for p in params}
    if len(tables) != 1:
        names = sorted({_where(t) for t in tables.values()})
        raise StructureError(
            f"the parameters of {type(net).__name__} live on several backends or "
            f"devices ({names}); a gradient needs them on one. Use "
            "unified.port(net, backend) to move it to a backend, net.to(device) to "
            "a device."
        )
    return next(iter(tables.values()))


def _where(table: Any) -> str:
    """``"torch"`` on a backend's default device, ``"torch on cuda:1"`` elsewhere."""
    if table is None:
        return "uninitialized"
    device = table.__dict__.get("device")
    return table.name if device is None else f"{table.name} on {device}"


def check_scalar(loss: Any, loss_fn: LossFn) -> Any:
    """Return ``loss`` as a 0-d array if it holds one value (a shape ``(1,)`` loss is
    reshaped, since a backend's ``value_and_grad`` needs a 0-d value); raise the same
    error on every backend otherwise."""
    shape = tuple(getattr(loss, "shape", ()))
    if any(d != 1 for d in shape):
        name = getattr(loss_fn, "__name__", "loss_fn")
        raise ValueError(
            f"{name} must return a scalar loss, got an array of shape {shape}. Reduce "
            "it, e.g. with unified.ops.mean(...) or a loss with reduction='mean'."
        )
    if shape:
        table: Any = _backend._active
        return table.reshape(loss, ())
    return loss


def traced_call(
    net: Net,
    params: list[Parameter],
    loss_fn: LossFn,
    args: tuple[Any, ...],
    states: list[Parameter] | None = None,
    written: list[bool] | None = None,
) -> Callable[[list[Any]], Any]:
    """Return ``fn(arrays)`` evaluating the loss with ``params`` rebound to
    ``arrays``, as a differentiated forward (training mode by default).

    With ``states``, ``arrays`` ends with one zero slot per state parameter: the
    gradient of a slot is the value its layer wrote (see :mod:`unified.modes`), and
    ``written`` is refilled with which states were written.
    """
    count = len(params)

    def fn(arrays: list[Any]) -> Any:
        saved = [p._data for p in params]
        for p, a in zip(params, arrays):
            p._data = a
        try:
            loss, writes = _modes.differentiated(loss_fn, net, args)
            loss = check_scalar(loss, loss_fn)
        finally:
            for p, a in zip(params, saved):
                p._data = a
        if states:
            table: Any = _backend._active
            loss, flags = _modes.attach(table, loss, writes, states, arrays[count:])
            if written is not None:
                written[:] = flags
        return loss

    return fn


def gradient_step(
    net: Net,
    loss_fn: LossFn,
    args: tuple[Any, ...],
    names: list[str],
    params: list[Parameter],
    table: Any,
    held: list[Parameter],
    others: list[Parameter],
    accumulate: bool = False,
    check: Callable[[], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The body of :func:`value_and_grad` once the structure is known: the
    trainable ``params`` (named ``names``) on backend ``table``, the state
    parameters ``held`` (with values) and the parameters that get no gradient,
    ``others`` (frozen or state). A :class:`~unified.Trainer` keeps these between
    steps instead of finding them again; its ``check`` runs after the backward and
    before anything is written (and raises to stop the step)."""
    written: list[bool] = []
    previous = _backend._active
    _backend.activate(table)
    try:
        fn = traced_call(net, params, loss_fn, args, held, written)
        arrays = [p._data for p in params]
        arrays += [table.zeros_like(p._data) for p in held]
        value, grads = table.value_and_grad(fn, arrays)
    finally:
        if previous is not None:
            _backend.activate(previous)
    if check is not None:
        check()
    if held:
        _modes.apply_writes(table, held, written, grads[len(params) :])
        grads = grads[: len(params)]
    for p, g in zip(params, grads):
        p._grad = table.add(p._grad, g) if accumulate and p._grad is not None else g
    for p in others:
        p._grad = None  # a stale gradient must not resurface after unfreezing
    return value, dict(zip(names, grads))


def value_and_grad(
    loss_fn: LossFn, accumulate: bool = False
) -> Callable[..., tuple[Any, dict[str, Any]]]:
    """Return ``f(net, *args) -> (loss, grads)`` for ``loss_fn(net, *args) -> scalar``.

    After a call, ``p.grad()`` holds this call's gradient for every trainable
    parameter (zeros where the loss did not reach it); with ``accumulate=True``
    gradients add up until ``net.zero_grad()``. A shared parameter receives the sum
    over its uses. Frozen parameters are not differentiated. ``grads`` maps each
    trainable parameter's name to its gradient (native arrays).
    """

    def wrapped(net: Net, *args: Any) -> tuple[Any, dict[str, Any]]:
        args = convert_batch(net, args, "value_and_grad")
        ensure_materialized(net, loss_fn, args)
        names, params = trainable(net)
        table = backend_of(net, params)
        others = [p for p in net._listing().values() if p.frozen or not p.trainable]
        return gradient_step(
            net, loss_fn, args, names, params, table, states(net), others, accumulate
        )

    wrapped.__doc__ = f"value_and_grad of {getattr(loss_fn, '__name__', 'loss_fn')}"
    return wrapped
