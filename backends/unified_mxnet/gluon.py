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
    # the same as unified.load_native(net, gluon_net)
    torch_net = U.port(net, "torch")
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import unified_mxnet  # noqa: F401  (restores numpy.bool before mxnet is imported)
from unified.errors import CheckpointError
from unified.interop.native import load_native
from unified.nets import Net


def gluon_parameters(block: Any, prefix: str = "") -> dict[str, Any]:
    """Return a Gluon block's parameters by structural name (``0.weight``, ...)."""
    found: dict[str, Any] = {}
    for name, param in block._reg_params.items():
        found[prefix + name] = param
    for name, child in block._children.items():
        found.update(gluon_parameters(child, f"{prefix}{name}."))
    return found


def load_gluon(net: Net, source: Any) -> None:
    """Copy Gluon parameters (a ``Block`` or a ``save_parameters`` file) into ``net``.

    The Gluon case of :func:`unified.load_native` (kept under this name): matched by
    name, or by structure when the names differ. Every name and shape is checked
    first; on any mismatch one :class:`~unified.CheckpointError` lists them all and
    ``net`` is unchanged. Unknown dims of a deferred ``net`` are filled from the
    Gluon shapes.
    """
    if not isinstance(source, (str, os.PathLike)) and not hasattr(
        source, "_collect_params_with_prefix"
    ):
        raise CheckpointError(
            f"load_gluon takes a Gluon Block or a .params path, got "
            f"{type(source).__name__}"
        )
    if isinstance(source, (str, os.PathLike)) and not os.fspath(source).endswith(
        ".params"
    ):
        arrays = _read_params(os.fspath(source))
        from unified.interop.native import plan

        for name, value in plan(net, arrays, "Gluon .params file").items():
            net._listing()[name].set_data(value)
        return
    load_native(net, source)


def _read_params(path: str) -> dict[str, np.ndarray]:
    import mxnet as mx

    loaded = mx.nd.load(path)
    if not isinstance(loaded, dict):
        raise CheckpointError(
            f"{path!r} holds a list of arrays, not named Gluon parameters; save them "
            "with block.save_parameters(path)."
        )
    return {k: v.asnumpy() for k, v in loaded.items()}
