"""Load MXNet Gluon parameters into a ``unified`` net, by structural name.

Gluon names parameters with process-wide counters (``dense3_weight``); this module
maps them by position in the network instead, so the result does not depend on what
else the process built. A Gluon ``Block`` is walked through its children and
registered parameters (``0.weight``, ``encoder.1.bias``, the names ``unified`` uses);
a file written by ``block.save_parameters(path)`` already stores those names.

Example::

    net = U.Sequential(U.Dense(64, activation="relu"), U.Dense(10))
    net.initialize()
    load_gluon(net, gluon_net)          # or load_gluon(net, "model.params")
    torch_net = U.port(net, "torch")
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import unified_mxnet  # noqa: F401  (restores numpy.bool before mxnet is imported)
from unified.errors import CheckpointError
from unified.nets import Net
from unified.parameters import _compatible


def gluon_parameters(block: Any, prefix: str = "") -> dict[str, Any]:
    """Return a Gluon block's parameters by structural name (``0.weight``, ...)."""
    found: dict[str, Any] = {}
    for name, param in block._reg_params.items():
        found[prefix + name] = param
    for name, child in block._children.items():
        found.update(gluon_parameters(child, f"{prefix}{name}."))
    return found


def _arrays(source: Any) -> dict[str, np.ndarray]:
    import mxnet as mx

    if isinstance(source, (str, os.PathLike)):
        loaded = mx.nd.load(os.fspath(source))
        if not isinstance(loaded, dict):
            raise CheckpointError(
                f"{os.fspath(source)!r} holds a list of arrays, not named Gluon "
                "parameters; save them with block.save_parameters(path)."
            )
        return {k: v.asnumpy() for k, v in loaded.items()}
    return {k: p.data().asnumpy() for k, p in gluon_parameters(source).items()}


def load_gluon(net: Net, source: Any) -> None:
    """Copy Gluon parameters (a ``Block`` or a ``save_parameters`` file) into ``net``.

    Every name and shape is checked first; on any mismatch one
    :class:`~unified.CheckpointError` lists them all and ``net`` is unchanged.
    Unknown dims of a deferred ``net`` are filled from the Gluon shapes.
    """
    arrays = _arrays(source)
    listing = net._listing()
    problems = [
        f"missing in Gluon parameters: {n!r}" for n in listing if n not in arrays
    ]
    problems += [f"not in the net: {n!r}" for n in arrays if n not in listing]
    problems += [
        f"{n!r}: Gluon shape {arrays[n].shape}, net shape {p.shape}"
        for n, p in listing.items()
        if n in arrays and not _compatible(p.shape, arrays[n].shape)
    ]
    if problems:
        raise CheckpointError(
            f"cannot load Gluon parameters into {type(net).__name__}: "
            f"{len(problems)} problem(s); the net was not changed:\n  "
            + "\n  ".join(problems)
        )
    for name, p in listing.items():
        p.set_data(arrays[name])
