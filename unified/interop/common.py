"""Shared helpers of the importers: put host arrays into a freshly built net."""

from __future__ import annotations

from typing import Any

import numpy as np

from unified import backend as _backend
from unified import modes as _modes
from unified.errors import CheckpointError
from unified.nets import Net


def materialize(net: Net, arrays: dict[str, np.ndarray], source: str) -> None:
    """Give every parameter of ``net`` its value from ``arrays`` (by structural
    name, the exact shape and dtype) on the active backend, without drawing any
    initial values. Every name must match both ways."""
    table = _backend.current_backend()
    listing = net._listing()
    missing = [n for n in listing if n not in arrays]
    extra = [n for n in arrays if n not in listing]
    if missing or extra:
        raise CheckpointError(
            f"internal naming mismatch converting {source}: unified names without a "
            f"source value {missing[:6]}, source names without a unified parameter "
            f"{extra[:6]}"
        )
    for name, p in listing.items():
        value = np.array(arrays[name], copy=True, order="C")  # never share memory
        p.name = name
        object.__setattr__(p, "_shape", tuple(int(d) for d in value.shape))
        p.dtype = value.dtype.name
        p._backend = table
        p._pending = None
        p._data = table.asarray(value, p.dtype)
    net._bind(table)
    _modes.record_names(net)


def rename(layer: Net, mapping: dict[str, str]) -> Net:
    """Register ``layer``'s entries under the source's names (PyTorch's ``gamma``
    -> ``weight``, Flax's ``weight`` -> ``kernel``); the attributes stay."""
    entries = {mapping.get(k, k): v for k, v in layer._entries.items()}
    object.__setattr__(layer, "_entries", entries)
    from unified import nets

    nets._bump()
    return layer


def mxnet() -> Any:
    """Import MXNet after ``unified_mxnet`` (which restores ``numpy.bool`` first)."""
    import importlib

    importlib.import_module("unified_mxnet")
    return importlib.import_module("mxnet")


def gluon_values(params: dict[str, Any]) -> dict[str, np.ndarray]:
    """NumPy copies of Gluon parameters, after every pending MXNet operation.

    ``NDArray.asnumpy()`` alone was measured to return, now and then, a large
    parameter whose deferred initialization (the first forward of a freshly
    initialized block) had not finished writing: inceptionv3's
    ``features.17.2.0.1.0.weight`` (384x448x3x3) differed from Gluon's own value
    in 1 of 3 conversions, in none of 5 after ``mx.nd.waitall()``.
    """
    mxnet().nd.waitall()
    return {n: p.data().asnumpy() for n, p in params.items()}


def host(value: Any) -> np.ndarray:
    """A NumPy copy of a native array of any framework (or anything array-like)."""
    for attr in ("asnumpy", "detach"):
        if hasattr(value, attr):
            value = getattr(value, attr)()
    if hasattr(value, "cpu"):
        value = value.cpu().numpy()
    return np.array(value)
