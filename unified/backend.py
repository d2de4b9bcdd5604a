"""Choosing the active backend: ``set_backend``, ``use_backend``, ``UNIFIED_BACKEND``.

Each takes an optional device (``UNIFIED_DEVICE`` when none is given); see
:mod:`unified.placement`.

The active backend is the one new parameters are created on and the one
``unified.ops`` dispatches to. A net keeps the backend it was initialized on, and
calling it activates that backend for the duration of the call.

Example::

    >>> import unified as U
    >>> with U.use_backend("numpy"):
    ...     U.current_backend().name
    'numpy'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from unified import data as _data
from unified import hookspecs
from unified import placement as _placement
from unified.plugins import BackendTable, registry

DEFAULT_BACKEND = "numpy"
_active: BackendTable | None = None


def current_backend() -> BackendTable:
    """Return the active backend's table, selecting the default on first use.

    The default is ``$UNIFIED_BACKEND`` when set, else ``"numpy"``.
    """
    if _active is None:
        return set_backend(os.environ.get("UNIFIED_BACKEND") or DEFAULT_BACKEND)
    return _active


def activate(table: BackendTable) -> None:
    """Make ``table`` the active backend (no lookup: the table is already built)."""
    global _active
    if table is _active:
        return
    _active = table
    from unified import ops

    vars(ops).update(_user_ops(table))


_USER_OPS: dict[int, dict[str, Callable[..., Any]]] = {}


def _user_ops(table: BackendTable) -> dict[str, Callable[..., Any]]:
    """The ``unified.ops`` functions of ``table``, built once per backend."""
    found = _USER_OPS.get(id(table))
    if found is None:
        found = _USER_OPS[id(table)] = {
            name: _accepting_host_data(table, getattr(table, name))
            for name in hookspecs.MATH_HOOKS
        }
    return found


def _accepting_host_data(
    table: BackendTable, hook: Callable[..., Any]
) -> Callable[..., Any]:
    """Wrap ``hook`` so that it also takes NumPy data (SPEC 10).

    Native arrays go straight through (the cost is one Python call). Only when the
    backend rejects a call is its host data converted (see
    :func:`unified.data.convert_op_args`) and the call made again; an error with
    nothing to convert is raised as it was.
    """

    def op(*args: Any, **kwargs: Any) -> Any:
        try:
            return hook(*args, **kwargs)
        except Exception:
            converted = _data.convert_op_args(table, args)
            if converted is None:
                raise
        return hook(*converted, **kwargs)

    op.__name__ = op.__qualname__ = getattr(hook, "__name__", "op")
    op.__doc__ = hook.__doc__
    op.__wrapped__ = hook  # type: ignore[attr-defined]
    return op


def set_backend(name: str, device: Any = None) -> BackendTable:
    """Select backend ``name`` (on ``device``) for everything that follows; return
    its table.

    :param device: where new parameters and converted data go: ``"cpu"``,
        ``"cuda:0"``, ``"gpu:1"`` or the framework's device object (see
        :mod:`unified.placement`). ``None`` takes ``$UNIFIED_DEVICE`` when set, else
        the framework's default device.

    Raises :class:`~unified.BackendNotAvailableError` for an unknown or broken
    backend, listing the available ones and the pip extra of each built-in, and
    :class:`~unified.DeviceNotAvailableError` for a device the backend does not
    have, listing those it has.
    """
    table = registry.get(name)
    if device is None:
        device = os.environ.get(_placement.ENV) or None
    if device is not None:
        table = _placement.placed(table, device)
    activate(table)
    return table


@contextmanager
def use_backend(name: str, device: Any = None) -> Iterator[BackendTable]:
    """Select backend ``name`` (on ``device``, as :func:`set_backend`) inside a
    ``with`` block; restore the previous selection after."""
    previous = _active
    table = set_backend(name, device)
    try:
        yield table
    finally:
        if previous is not None:
            activate(previous)


def backends() -> list[str]:
    """List the installed backends that load (importing each one's framework)."""
    return sorted(registry.usable())
