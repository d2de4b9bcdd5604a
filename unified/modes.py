"""Training and inference modes, state updates and forward randomness (SPEC 12).

Mode follows the call: the forward inside ``value_and_grad`` and ``Trainer.step`` runs
in training mode, a plain call in inference mode. ``net.train()`` / ``net.eval()`` pin
a mode for a net and its children (until ``net.train(None)``), and
``with unified.training(flag):`` sets it for a block of code. Precedence, resolved by
:func:`is_training` for one layer: the layer's pin > ``unified.training(...)`` > the
call's default.

Pins are written on every sub-net when ``train()``/``eval()`` is called (children
added later do not inherit them), so resolving a mode on the hot path reads one
attribute and at most two module globals. The state is process-global, not
per-thread, like the rest of the library's active-backend state.

State parameters (``Parameter(..., trainable=False)``, e.g. BatchNorm's running
statistics) are written by layers through :func:`write_state`. Outside any
differentiated forward the write happens at once. Inside ``value_and_grad`` and the
compiled JAX step (a *differentiated forward*) writes are collected instead, and
:func:`attach` makes each collected value the gradient of a zero "slot" input
(``loss + sum(slot * value)`` adds exactly zero to the loss and nothing to the other
gradients): the value leaves the trace as an ordinary, detached output of the
backend's ``value_and_grad``, on every backend and inside ``jax.jit`` alike, and the
caller writes it back after the call. (A non-finite state value would turn the loss
into NaN, as it would the statistics themselves.)

Example::

    >>> import unified as U
    >>> net = U.Sequential(U.Dense(2), U.Dropout(0.5))
    >>> U.modes.is_training(net[1])
    False
    >>> with U.training(True):
    ...     U.modes.is_training(net[1])
    True
    >>> _ = net.eval()
    >>> with U.training(True):
    ...     U.modes.is_training(net[1])
    False
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from unified import init as _init

if TYPE_CHECKING:
    from unified.nets import Net
    from unified.parameters import Parameter

__all__ = ["is_training", "signature", "training"]

_default = False
"""The call's default: ``True`` while a differentiated forward runs."""
_scoped: bool | None = None
"""The mode set by ``with unified.training(...)``, ``None`` outside any block."""
_shape_only = False
"""``True`` while a forward runs only to infer shapes: inference mode, no writes."""
_pending: dict[int, tuple[Parameter, Any]] | None = None
"""State writes collected during a differentiated forward, by parameter id."""


def is_training(net: Net) -> bool:
    """Return whether ``net`` runs in training mode now (pin > block > default)."""
    if _shape_only:
        return False
    mode = net._mode
    if mode is not None:
        return mode
    if _scoped is not None:
        return _scoped
    return _default


@contextmanager
def training(mode: bool | None = True) -> Iterator[None]:
    """Run the block in training (``True``) or inference (``False``) mode.

    Nets pinned with ``net.train()`` / ``net.eval()`` keep their pinned mode;
    ``None`` restores the call's default inside the block.

    Example::

        >>> import unified as U
        >>> with U.training(False):
        ...     pass  # forwards here run in inference mode, even inside value_and_grad
    """
    global _scoped
    if mode is not None and not isinstance(mode, (bool, np.bool_)):
        raise TypeError(f"training(mode) takes True, False or None, got {mode!r}")
    previous, _scoped = _scoped, None if mode is None else bool(mode)
    try:
        yield
    finally:
        _scoped = previous


@contextmanager
def shape_only() -> Iterator[None]:
    """Run the block in inference mode without state writes (shape inference)."""
    global _shape_only
    previous, _shape_only = _shape_only, True
    try:
        yield
    finally:
        _shape_only = previous


def pin(net: Net, mode: bool | None) -> None:
    """Pin ``mode`` (``None`` unpins) on ``net`` and every sub-net it holds now."""
    if mode is not None and not isinstance(mode, (bool, np.bool_)):
        raise TypeError(f"train(mode) takes True, False or None, got {mode!r}")
    value = None if mode is None else bool(mode)
    for sub in net._nets():
        object.__setattr__(sub, "_mode", value)


def signature(nets: Sequence[Net]) -> tuple[Any, ...]:
    """What a compiled step's trace depends on: the block's mode and every pin."""
    return (_scoped, tuple(n._mode for n in nets))


def record_names(net: Net, prefix: str = "") -> None:
    """Record each sub-net's structural name (``""`` for ``net``), first use wins."""
    seen: set[int] = set()
    stack: list[tuple[str, Net]] = [(prefix, net)]
    while stack:
        name, sub = stack.pop(0)
        if id(sub) in seen:
            continue
        seen.add(id(sub))
        object.__setattr__(sub, "_path", name)
        stack[:0] = [(f"{name}.{k}" if name else k, c) for k, c in sub.children()]


# -- state parameters -----------------------------------------------------------------
def read_state(p: Parameter) -> Any:
    """The current value of state ``p``, including a write pending in this forward."""
    if _pending is not None:
        hit = _pending.get(id(p))
        if hit is not None:
            return hit[1]
    return p.data()


def write_state(p: Parameter, value: Any) -> None:
    """Set state ``p`` to ``value`` (at once, or after the differentiated forward)."""
    if _shape_only:
        return
    if _pending is not None:
        _pending[id(p)] = (p, value)
        return
    table: Any = p._backend
    p._data = table.assign(p._data, value)


def differentiated(
    loss_fn: Callable[..., Any], net: Net, args: tuple[Any, ...]
) -> tuple[Any, dict[int, tuple[Parameter, Any]]]:
    """Run ``loss_fn(net, *args)`` as a differentiated forward (training default).

    :returns: ``(loss, writes)``: the state writes collected, by parameter id.
    """
    global _default, _pending
    saved = _default, _pending
    _default, _pending = True, {}
    try:
        out = loss_fn(net, *args)
        return out, _pending
    finally:
        _default, _pending = saved


def attach(
    table: Any,
    loss: Any,
    writes: dict[int, tuple[Parameter, Any]],
    states: Sequence[Parameter],
    slots: Sequence[Any],
) -> tuple[Any, list[bool]]:
    """Route the collected state writes out as the gradients of zero ``slots``.

    :returns: ``(loss + sum(slot * value) for each write, written)``, ``written[i]``
        saying whether ``states[i]`` was written (its slot's gradient is its value).
    """
    written = []
    for p, slot in zip(states, slots):
        hit = writes.get(id(p))
        written.append(hit is not None)
        if hit is not None:
            loss = table.add(loss, table.sum(table.multiply(slot, hit[1]), None, False))
    return loss, written


def apply_writes(
    table: Any, states: Sequence[Parameter], written: Sequence[bool], values: list[Any]
) -> None:
    """Write back the state values a differentiated forward produced."""
    for p, flag, value in zip(states, written, values):
        if flag:
            p._data = table.assign(p._data, value)


# -- forward randomness ---------------------------------------------------------------
def host_generator(name: str, call: int) -> np.random.Generator:
    """The stream of forward number ``call`` of the layer named ``name``:
    ``Philox(SeedSequence([seed, 1, crc32(name), call]))``."""
    sequence = np.random.SeedSequence(
        [_init.get_seed(), 1, zlib.crc32(name.encode("utf-8")), call]
    )
    return np.random.Generator(np.random.Philox(sequence))


def host_mask(
    generator: np.random.Generator, shape: tuple[int, ...], rate: float, dtype: str
) -> np.ndarray:
    """The inverted-dropout mask of SPEC 12, drawn on the host: ``1 / (1 - rate)``
    where ``generator.random(shape) >= rate``, else 0, of ``dtype``."""
    u = generator.random(shape)
    scale = np.array(1.0 / (1.0 - rate), dtype=dtype)
    return np.where(u >= rate, scale, np.zeros((), dtype))


def next_call(net: Net) -> int:
    """Return and advance ``net``'s count of training forwards since ``seed``."""
    epoch, count = net.__dict__.get("_calls", (-1, 0))
    if epoch != _init.seed_calls():
        count = 0
    object.__setattr__(net, "_calls", (_init.seed_calls(), count + 1))
    return count


class MaskFeed:
    """Host-drawn masks for a compiled step (the masks are inputs of the function).

    On the discovery run (``supplied is None``) each request is recorded as
    ``(layer, shape, rate, dtype, count)`` and answered with ones; on the compiled
    run the supplied (traced) masks are handed out in the same order.
    """

    def __init__(self, supplied: list[Any] | None = None) -> None:
        self.supplied = supplied
        self.requests: list[tuple[Net, tuple[int, ...], float, str, int]] = []
        self.position = 0


_feed: MaskFeed | None = None


@contextmanager
def feeding_masks(feed: MaskFeed) -> Iterator[MaskFeed]:
    """Route the dropout masks of the forwards in this block through ``feed``."""
    global _feed
    previous, _feed = _feed, feed
    try:
        yield feed
    finally:
        _feed = previous


def active_feed() -> MaskFeed:
    """The feed set by :func:`feeding_masks` (a compiled step's discovery run)."""
    if _feed is None:
        raise RuntimeError("no mask feed is active: call inside feeding_masks()")
    return _feed


_replica = (0, 1)
"""``(rank, processes)`` of a data-parallel world over processes (set by
:mod:`unified.distributed`): each process draws the masks of the whole batch (axis 0
times ``processes``) and keeps its own rows, so that with equal local batches the
replicas' masks are those of one process on the concatenated batch."""


def set_replica(rank: int, processes: int) -> None:
    """Set :data:`_replica` (``(0, 1)``: one process)."""
    global _replica
    _replica = (int(rank), int(processes))


def _draw(
    net: Net, shape: tuple[int, ...], rate: float, dtype: str, count: int, table: Any
) -> list[Any]:
    """``count`` masks of ``net``'s next training forward, in order, from one
    stream (``host_generator(net's name, its call count)``)."""
    generator = host_generator(net._path, next_call(net))
    rank, processes = _replica
    if processes == 1 or not shape:
        return [
            table.asarray(host_mask(generator, shape, rate, dtype), dtype)
            for _ in range(count)
        ]
    whole = (shape[0] * processes, *shape[1:])
    rows = slice(rank * shape[0], (rank + 1) * shape[0])
    return [
        table.asarray(host_mask(generator, whole, rate, dtype)[rows], dtype)
        for _ in range(count)
    ]


def dropout_masks(
    net: Net,
    shape: tuple[int, ...],
    rate: float,
    dtype: str,
    table: Any,
    count: int = 1,
) -> list[Any]:
    """The native masks of ``net``'s next training forward (see :class:`MaskFeed`):
    drawn now, recorded (discovery run) or taken from a compiled step's inputs."""
    feed = _feed
    if feed is None:
        return _draw(net, shape, rate, dtype, count, table)
    if feed.supplied is None:
        feed.requests.append((net, shape, rate, dtype, count))
        return [table.asarray(np.ones(shape, dtype), dtype)] * count
    start, feed.position = feed.position, feed.position + count
    return feed.supplied[start : feed.position]


def dropout_mask(
    net: Net, shape: tuple[int, ...], rate: float, dtype: str, table: Any
) -> Any:
    """The one mask of ``net``'s next training forward (``Dropout``)."""
    return dropout_masks(net, shape, rate, dtype, table)[0]


def draw_masks(
    requests: Sequence[tuple[Net, tuple[int, ...], float, str, int]], table: Any
) -> list[Any]:
    """Draw the masks of one compiled step on the host, advancing each layer's
    count exactly as the eager forwards would."""
    masks: list[Any] = []
    for net, shape, rate, dtype, count in requests:
        masks += _draw(net, shape, rate, dtype, count, table)
    return masks
