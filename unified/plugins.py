"""Backend discovery: entry points, a pluggy manager, and one lookup table per backend.

Backends are found through the ``unified.backends`` entry-point group; the built-in
NumPy, PyTorch, JAX and MXNet adapters use it exactly like a third-party package.
Discovery reads entry-point metadata only; a backend's module (and its framework) is
imported when that backend is first selected or listed with :func:`backends`.

Example::

    >>> from unified import plugins
    >>> plugins.get_table("numpy").info.name
    'numpy'
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from unified import hookspecs
from unified.errors import BackendNotAvailableError, BackendPluginError

log = logging.getLogger("unified")

ENTRY_POINT_GROUP = "unified.backends"
hookimpl = pluggy.HookimplMarker("unified")

BUILTIN_EXTRAS: dict[str, str] = {
    "numpy": "unified",
    "torch": "unified[torch]",
    "jax": "unified[jax]",
    "mxnet": "unified[mxnet]",
}
"""The pip requirement that installs each built-in backend."""


@dataclass(frozen=True)
class BackendInfo:
    """What a backend says about itself (returned by its ``backend_info`` hook).

    Example::

        >>> BackendInfo(  # doctest: +NORMALIZE_WHITESPACE
        ...     name="numpy", framework="numpy", version="1.26.4"
        ... )
        BackendInfo(name='numpy', framework='numpy', version='1.26.4',
                    capabilities=frozenset())
    """

    name: str
    framework: str
    version: str
    capabilities: frozenset[str] = field(default_factory=frozenset)


class BackendTable:
    """Every hook of one backend, looked up once: ``table.matmul(a, b)`` is a plain
    call.

    Attributes are the hook names of :mod:`unified.hookspecs`; ``info`` is the
    backend's :class:`BackendInfo` and ``capabilities`` adds one entry per optional
    hook the backend implements. ``device`` names the device its ``asarray`` and
    ``zeros`` create arrays on (a non-default device has a table of its own, see
    :mod:`unified.placement`).
    """

    info: BackendInfo
    name: str
    capabilities: frozenset[str]

    def __init__(self, impls: dict[str, Callable[..., Any]]) -> None:
        self.__dict__.update(impls)
        info = impls["backend_info"]()
        optional = {h for h in hookspecs.OPTIONAL_HOOKS if h in impls}
        self.info = info
        self.name = info.name
        self.capabilities = frozenset(info.capabilities) | optional

    def __getattr__(self, name: str) -> Any:
        # Only reached for hooks this backend lacks (the optional ones), and for
        # ``device`` on a backend's own table (a placed table stores its own).
        if name == "device":
            from unified.placement import device_of_table

            return device_of_table(self)
        raise AttributeError(
            f"backend {self.__dict__.get('name')!r} does not implement {name!r}"
        )

    def __repr__(self) -> str:
        where = self.__dict__.get("device")
        on = f" on {where}" if where is not None else ""
        return (
            f"<BackendTable {self.name}{on} ({self.info.framework} "
            f"{self.info.version})>"
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> BackendTable:
        return self  # a table is shared, never copied


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("unified")
    pm.add_hookspecs(hookspecs)
    return pm


class Registry:
    """Discovers backends from entry points and builds their tables on demand."""

    def __init__(self) -> None:
        self.pm = _new_manager()
        self._eps: dict[str, metadata.EntryPoint] | None = None
        self._tables: dict[str, BackendTable] = {}
        self._failed: dict[str, str] = {}

    # -- discovery -------------------------------------------------------------
    def entry_points(self) -> dict[str, metadata.EntryPoint]:
        """Map each backend name to its entry point; reject duplicated names."""
        if self._eps is None:
            found: dict[str, metadata.EntryPoint] = {}
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in found and found[ep.name].value != ep.value:
                    first, second = _dist_name(found[ep.name]), _dist_name(ep)
                    raise BackendPluginError(
                        f"two plugins register the backend name {ep.name!r}: "
                        f"{first} ({found[ep.name].value}) and {second} ({ep.value}). "
                        "Backend names must be unique; uninstall one of the packages "
                        "or rename its entry point."
                    )
                found[ep.name] = ep
            self._eps = found
        return self._eps

    def names(self) -> list[str]:
        """Return every registered backend name, usable or not."""
        return sorted(self.entry_points())

    def register(self, name: str, plugin: object) -> BackendTable:
        """Register ``plugin`` as backend ``name`` directly (used by tests and
        tools)."""
        if name in self._tables:
            raise BackendPluginError(
                f"a backend named {name!r} is already registered; choose another name"
            )
        self.pm.register(plugin, name=f"unified-backend-{name}")
        table = self._build_table(name, plugin)
        self._tables[name] = table
        return table

    # -- loading ---------------------------------------------------------------
    def get(self, name: str) -> BackendTable:
        """Return the table of backend ``name``, loading it on first use."""
        table = self._tables.get(name)
        if table is not None:
            return table
        eps = self.entry_points()
        if name not in eps:
            raise BackendNotAvailableError(self._unknown_message(name))
        if name in self._failed:
            raise BackendNotAvailableError(self._failed[name])
        try:
            plugin = eps[name].load()
        except Exception as exc:  # a broken plugin must not break the others
            msg = (
                f"backend {name!r} is installed but failed to import: "
                f"{type(exc).__name__}: {exc}. "
                f"Reinstall it with: pip install '{self._extra(name)}'."
            )
            self._failed[name] = msg
            log.warning(msg)
            raise BackendNotAvailableError(msg) from exc
        return self.register(name, plugin)

    def usable(self) -> dict[str, BackendTable]:
        """Load every registered backend; return the ones that load (others are
        logged)."""
        out = {}
        for name in self.names():
            try:
                out[name] = self.get(name)
            except (BackendNotAvailableError, BackendPluginError) as exc:
                log.warning("unified: backend %r is unusable: %s", name, exc)
        return out

    def failures(self) -> dict[str, str]:
        """Return the backends that failed to load, with their error messages."""
        return dict(self._failed)

    def _build_table(self, name: str, plugin: object) -> BackendTable:
        impls: dict[str, Callable[..., Any]] = {}
        for caller in self.pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    impls[caller.name] = impl.function
        required = [
            h for h in hookspecs.hook_names() if h not in hookspecs.OPTIONAL_HOOKS
        ]
        missing = [h for h in required if h not in impls]
        if missing:
            self.pm.unregister(plugin)
            raise BackendPluginError(
                f"backend {name!r} ({_plugin_origin(plugin)}) is incomplete: it lacks "
                f"{len(missing)} required hook(s): {', '.join(missing)}. "
                "Implement each with @unified.hookimpl; unified/hookspecs/ documents "
                "them."
            )
        table = BackendTable(impls)
        if table.name != name:
            self.pm.unregister(plugin)
            raise BackendPluginError(
                f"backend registered as {name!r} reports the name {table.name!r} "
                "from backend_info(); make the entry-point name and "
                "BackendInfo.name agree."
            )
        return table

    def _extra(self, name: str) -> str:
        return BUILTIN_EXTRAS.get(name, f"the package that provides backend {name!r}")

    def _unknown_message(self, name: str) -> str:
        available = ", ".join(self.names()) or "none"
        hints = "; ".join(f"{n}: pip install '{e}'" for n, e in BUILTIN_EXTRAS.items())
        return (
            f"unknown backend {name!r}. Registered backends: {available}. "
            f"Built-in backends and how to install them: {hints}."
        )


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"package {dist.name!r}" if dist is not None else "an unknown package"


def _plugin_origin(plugin: object) -> str:
    return getattr(plugin, "__name__", type(plugin).__name__)


registry = Registry()
"""The process-wide registry used by :func:`unified.set_backend` and friends."""


def get_table(name: str) -> BackendTable:
    """Return the lookup table of backend ``name`` (loading it if needed)."""
    return registry.get(name)
