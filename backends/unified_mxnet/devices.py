"""Devices of the MXNet backend: contexts, named ``"cpu:i"`` and ``"gpu:i"``.

MXNet's CPU contexts are logical: ``mx.cpu(1)`` is a context of its own (arrays
carry it, ``as_in_context`` copies between contexts) running on the same
processors as ``mx.cpu(0)``, the default. One CPU context is listed per CPU core
(at least two), then one GPU context per visible GPU. ``to_device`` is
``as_in_context`` (the array itself when it is already there); host data is
copied once, straight into an array of the target context. The other hooks create
their constants on their inputs' context.
"""

from __future__ import annotations

import os
from typing import Any

import mxnet as mx
import numpy

from unified import hookimpl
from unified_mxnet import Array, _nd, _np_on, _np_restore

_CONTEXTS: dict[str, Any] = {}


def _context(name: str) -> Any:
    found = _CONTEXTS.get(name)
    if found is None:
        kind, _, index = name.partition(":")
        found = _CONTEXTS[name] = mx.Context(kind, int(index or 0))
    return found


def _gpu_count() -> int:
    try:
        return int(mx.context.num_gpus())
    except Exception:  # a CPU-only build may refuse to count
        return 0


@hookimpl
def devices() -> list[str]:
    cpus = max(2, os.cpu_count() or 1)
    return [f"cpu:{i}" for i in range(cpus)] + [f"gpu:{i}" for i in range(_gpu_count())]


@hookimpl
def to_device(x: Any, device: str) -> Array:
    ctx = _context(device)
    prev = _np_on()
    try:
        if isinstance(x, numpy.ndarray):
            return _nd.array(x, ctx=ctx, dtype=x.dtype)
        return x.as_in_context(ctx)
    finally:
        _np_restore(prev)


@hookimpl
def device_of(x: Array) -> str:
    ctx = x.context
    return f"{ctx.device_type}:{ctx.device_id}"
