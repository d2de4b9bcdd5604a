"""Devices of the JAX backend: every ``jax.devices()`` entry, named ``platform:id``.

The default platform's devices come first (``jax.devices()[0]`` is the default
device), then the CPU's when the default platform is an accelerator.
``to_device`` is ``jax.device_put``: host data is transferred once, and the result
is *committed* to the device, so every computation on it (a compiled step too)
runs there and returns arrays there. Uncommitted constants (``jnp.asarray`` inside
a hook) follow committed inputs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax

from unified import hookimpl
from unified.hookspecs import Array

_BY_NAME: dict[str, Any] = {}


def _name(device: Any) -> str:
    return f"{device.platform}:{device.id}"


def _all() -> list[Any]:
    found = list(jax.devices())
    if found and found[0].platform != "cpu":
        with contextlib.suppress(RuntimeError):  # no CPU backend in this jaxlib
            found += list(jax.devices("cpu"))
    return found


@hookimpl
def devices() -> list[str]:
    return [_name(d) for d in _all()]


@hookimpl
def to_device(x: Any, device: str) -> Array:
    target = _BY_NAME.get(device)
    if target is None:
        _BY_NAME.update((_name(d), d) for d in _all())
        target = _BY_NAME[device]
    return jax.device_put(x, target)


@hookimpl
def device_of(x: Array) -> str:
    return _name(next(iter(x.devices())))
