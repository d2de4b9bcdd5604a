"""Devices: where a backend creates arrays, and moving a net there (``net.to``).

A device is chosen with the backend (``unified.set_backend("torch", device="cuda:0")``,
``use_backend(..., device=...)``, or ``$UNIFIED_DEVICE`` when no device is given)
or per net with :meth:`unified.Net.to`. Spellings: ``"cpu"``, ``"cpu:1"``,
``"cuda:0"``, ``"gpu:0"`` on every backend, plus the frameworks' own objects
(``jax.devices()`` entries, MXNet contexts such as ``mx.cpu(1)``, ``torch.device``).
``"cpu"`` means ``"cpu:0"``; ``"cuda"`` and ``"gpu"`` name the same kind.

Design: the backend's own table (:class:`unified.plugins.BackendTable`) is the
default device's, untouched, so the default path pays nothing. Any other device
gets a *placed* table, built once per ``(backend, device)``: a copy whose
``asarray`` and ``zeros`` end on that device (host data is transferred once, by the
backend's ``to_device`` hook); every other hook follows its inputs. Parameters,
nets and the conversion point of SPEC 10 already keep the table they were made
with, so initial values, dropout masks, batches and optimizer state land on the
net's device without any per-op device lookup.

Example::

    >>> import unified as U
    >>> U.devices("numpy")
    ['cpu']
    >>> with U.use_backend("numpy", device="cpu"):
    ...     U.current_backend().device
    'cpu'
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from unified.errors import DeviceNotAvailableError

if TYPE_CHECKING:
    from unified.nets import Net
    from unified.plugins import BackendTable

ENV = "UNIFIED_DEVICE"
"""The environment variable naming the device used when none is given."""

_KIND_ALIASES = {"cuda": "gpu"}
_SPELLING = re.compile(r"^([a-z_]+)(?::(\d+))?$")
_PLACED: dict[tuple[str, str], BackendTable] = {}
_LISTED: dict[str, list[str]] = {}


def key(spelling: Any) -> tuple[str, int]:
    """Return ``(kind, index)`` for a device spelling; ``"cpu"`` is ``("cpu", 0)``.

    Accepts strings and, by their attributes (no framework is imported), JAX
    devices (``platform``, ``id``), MXNet contexts (``device_type``,
    ``device_id``) and ``torch.device`` (``type``, ``index``).

    Example::

        >>> key("cuda:1"), key("gpu:1"), key("CPU")
        (('gpu', 1), ('gpu', 1), ('cpu', 0))
    """
    if isinstance(spelling, str):
        found = _SPELLING.match(spelling.strip().lower())
        if found is None:
            raise DeviceNotAvailableError(
                f"cannot read the device {spelling!r}: write 'cpu', 'cpu:1', "
                "'cuda:0' or 'gpu:0' (kind, then an optional ':index'), or pass the "
                "framework's device object."
            )
        kind, index = found.group(1), int(found.group(2) or 0)
    elif hasattr(spelling, "platform") and hasattr(spelling, "id"):  # jax.Device
        kind, index = str(spelling.platform), int(spelling.id)
    elif hasattr(spelling, "device_type") and hasattr(spelling, "device_id"):
        kind, index = str(spelling.device_type), int(spelling.device_id)  # mx.Context
    elif hasattr(spelling, "type") and hasattr(spelling, "index"):  # torch.device
        kind, index = str(spelling.type), int(spelling.index or 0)
    else:
        raise TypeError(
            f"a device is a string such as 'cpu' or 'cuda:0' or a framework's "
            f"device object, got {type(spelling).__name__} {spelling!r}"
        )
    return _KIND_ALIASES.get(kind, kind), index


def available(table: BackendTable) -> list[str]:
    """The names of the devices of ``table``'s backend, its default first.

    A backend without the optional ``devices`` hook (NumPy) has ``["cpu"]``.
    """
    found = _LISTED.get(table.name)
    if found is None:
        found = list(table.devices()) if "devices" in table.capabilities else ["cpu"]
        _LISTED[table.name] = found
    return found


def resolve(table: BackendTable, device: Any) -> str:
    """Return the name ``table``'s backend gives ``device``, or raise.

    :raises DeviceNotAvailableError: (a ``ValueError``) naming the devices that
        exist when the backend has no such device.
    """
    names = available(table)
    wanted = key(device)
    for name in names:
        if key(name) == wanted:
            return name
    shown = device if isinstance(device, str) else f"{device} ({type(device).__name__})"
    raise DeviceNotAvailableError(
        f"device {shown!r} is not available on backend {table.name}; available: "
        f"{', '.join(names)}. Choose one of these (unified.set_backend"
        f"({table.name!r}, device={names[0]!r}) or net.to({names[0]!r})), unset "
        f"${ENV} if it names another machine's device, or install a build of "
        f"{table.info.framework} that supports the device."
    )


def base_of(table: BackendTable) -> BackendTable:
    """The backend's own table (its default device's) behind ``table``."""
    base: BackendTable = table.__dict__.get("base", table)
    return base


def placed(table: BackendTable, device: Any) -> BackendTable:
    """Return the table of ``table``'s backend that creates arrays on ``device``.

    ``device=None`` and the default device give the backend's own table; any other
    device a placed copy, built once and reused (so ``unified.ops`` and the
    compiled-step caches keyed on tables stay warm).
    """
    base = base_of(table)
    if device is None:
        return base
    name = resolve(base, device)
    if name == available(base)[0]:
        return base
    found = _PLACED.get((base.name, name))
    if found is None:
        found = _PLACED[(base.name, name)] = _make_placed(base, name)
    return found


def _make_placed(base: BackendTable, name: str) -> BackendTable:
    """A copy of ``base`` whose ``asarray`` and ``zeros`` end on device ``name``."""
    from unified.plugins import BackendTable

    move: Callable[[Any, str], Any] = base.to_device
    is_array, asarray, zeros = base.is_array, base.asarray, base.zeros

    def placed_asarray(x: Any, dtype: str) -> Any:
        if is_array(x) and not isinstance(x, np.ndarray):
            return move(asarray(x, dtype), name)
        try:
            host = np.asarray(x, dtype=dtype)
        except TypeError:  # a dtype NumPy lacks (bfloat16): the backend casts
            host = np.asarray(x)
        return asarray(move(host, name), dtype)  # one host-to-device transfer

    def placed_zeros(shape: tuple[int, ...], dtype: str) -> Any:
        return move(zeros(shape, dtype), name)

    table = BackendTable.__new__(BackendTable)
    table.__dict__.update(base.__dict__)
    table.__dict__.update(
        asarray=placed_asarray, zeros=placed_zeros, device=name, base=base
    )
    return table


def device_of_table(table: BackendTable) -> str:
    """The name of the device ``table`` creates arrays on."""
    name: str | None = table.__dict__.get("device")
    return name if name is not None else available(table)[0]


def to_device(table: BackendTable, x: Any, device: str) -> Any:
    """Return native array ``x`` on ``device`` (a name of ``table``'s backend)."""
    if x is None or "to_device" not in table.capabilities:
        return x
    return table.to_device(x, device)


# -- moving nets ------------------------------------------------------------------

_OPTIMIZERS: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every live optimizer, so that ``net.to`` moves the state they hold."""


def track_optimizer(optimizer: Any) -> None:
    """Remember ``optimizer`` (weakly) so :func:`move_net` moves its state."""
    _OPTIMIZERS.add(optimizer)


def move_net(net: Net, device: Any) -> Net:
    """Move ``net``'s parameters, state, gradients and optimizer state to ``device``.

    Later arrays (deferred parameters, batches, dropout masks, optimizer state)
    are created there too, because the net and its parameters keep the placed
    table. Returns ``net``.
    """
    from unified import backend as _backend
    from unified import nets

    current = net._backend or _backend.current_backend()
    target = placed(current, device)
    name = device_of_table(target)
    params = list(net._listing().values())
    moved = {id(p) for p in params}
    for p in params:
        if p._backend is not None and base_of(p._backend) is not base_of(target):
            raise ValueError(
                f"parameter {p.name!r} lives on backend {p._backend.name}, not "
                f"{target.name}: net.to moves between devices of one backend; use "
                "unified.port(net, backend) to change backends."
            )
        p._data = to_device(target, p._data, name)
        p._grad = to_device(target, p._grad, name)
        p._backend = target
    for optimizer in list(_OPTIMIZERS):
        for group in optimizer.param_groups:
            for p in group["params"]:
                state = optimizer.state.get(id(p)) if id(p) in moved else None
                if state is not None:
                    state["arrays"] = {
                        k: to_device(target, v, name)
                        for k, v in state["arrays"].items()
                    }
    net._bind(target)
    nets._bump()  # compiled steps and cached plans see the new tables
    return net


def devices(backend: str | None = None) -> list[str]:
    """List the device names of ``backend`` (the active one by default).

    Example::

        >>> import unified as U
        >>> U.devices("numpy")
        ['cpu']
    """
    from unified import backend as _backend
    from unified.plugins import registry

    table = _backend.current_backend() if backend is None else registry.get(backend)
    return list(available(table))
