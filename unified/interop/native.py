"""``load_native``: native checkpoints into an existing unified net (SPEC 14).

Sources: a PyTorch ``state_dict`` (or any name -> array mapping), a ``.pt``/``.pth``
file (read with ``torch.load(weights_only=True)``: no pickle code runs), a
``.safetensors`` file, a Gluon ``.params`` file written by ``save_parameters``, the
prefix of a ``HybridBlock.export`` pair (its global names), a Gluon ``Block`` or a
``torch.nn.Module``.

Matching: when the source's names are exactly the net's names, by name. Otherwise
by structure: the source's arrays in order (PyTorch's ``num_batches_tracked``
counters dropped) against the net's parameters in order (parameter-free layers have
none, so they are skipped on both sides), shapes compared one by one; a source
array of the transposed shape of a 2-D parameter (a Flax/Keras ``(in, out)``
kernel) is transposed. Every problem is listed in one ``CheckpointError`` and the
net is left unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from unified.errors import CheckpointError
from unified.interop.common import host
from unified.nets import Net
from unified.parameters import _compatible


def read_native(source: Any) -> tuple[dict[str, np.ndarray], str]:
    """The source's arrays by name, in order, and a word naming the source."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        from unified.interop.gluon_export import export_arrays, export_files

        files = export_files(path)
        if files is not None:
            return export_arrays(*files), "Gluon export"
        if not os.path.exists(path):
            raise CheckpointError(f"no such checkpoint file: {path!r}")
        if path.endswith(".safetensors"):
            from safetensors.numpy import load_file

            return _structural_order(_mapping(load_file(path))), "safetensors file"
        if path.endswith(".params"):
            return _gluon_file(path), "Gluon .params file"
        if path.endswith((".pt", ".pth", ".bin")):
            import torch

            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any refusal is the same story
                raise CheckpointError(
                    f"{path!r} is not a weights-only PyTorch file ({exc}); unified "
                    "reads .pt files only with weights_only=True (no pickle code): "
                    "save a state_dict with torch.save(model.state_dict(), path)"
                ) from None
            if not isinstance(loaded, dict):
                raise CheckpointError(
                    f"{path!r} holds no state_dict (a dict of tensors)"
                )
            return _mapping(loaded), "PyTorch state_dict"
        raise CheckpointError(
            f"unknown checkpoint type {path!r}: expected .pt/.pth, .safetensors or "
            "a Gluon .params file"
        )
    kind = type(source).__module__.split(".")[0]
    if kind == "mxnet":
        from unified.interop.common import gluon_values

        return gluon_values(source._collect_params_with_prefix()), "Gluon block"
    if kind == "torch" or hasattr(source, "state_dict"):
        return _mapping(source.state_dict()), "PyTorch module"
    if isinstance(source, dict):
        return _mapping(source), "state_dict"
    raise TypeError(
        f"load_native takes a state_dict, a .pt/.safetensors/.params path, a Gluon "
        f"block or a torch module, got {type(source).__name__}"
    )


_RANK = {"weight": 0, "gamma": 0, "bias": 1, "beta": 1, "running_mean": 2}
_RANK["running_var"] = 3


def _structural_order(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Restore registration order for a file that stores names sorted
    (safetensors): layers in natural order (``2`` before ``10``), and inside a layer
    weight/gamma, bias/beta, running_mean, running_var, then the rest."""

    def key(name: str) -> tuple[Any, ...]:
        *parents, leaf = name.split(".")
        path = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parents)
        return (path, _RANK.get(leaf, 9), leaf)

    return {k: d[k] for k in sorted(d, key=key)}


def _mapping(d: dict[str, Any]) -> dict[str, np.ndarray]:
    return {
        k: host(v) for k, v in d.items() if not str(k).endswith("num_batches_tracked")
    }


def _gluon_file(path: str) -> dict[str, np.ndarray]:
    from unified.interop.common import mxnet

    mx = mxnet()

    loaded = mx.nd.load(path)
    if not isinstance(loaded, dict):
        raise CheckpointError(
            f"{path!r} holds a list of arrays, not named Gluon parameters; save "
            "them with block.save_parameters(path)"
        )
    if any(k.startswith(("arg:", "aux:")) for k in loaded):
        raise CheckpointError(
            f"{path!r} was written by HybridBlock.export (global names, arguments "
            "and auxiliary states apart): convert the export with "
            "unified.from_gluon(prefix) or load a save_parameters file"
        )
    return {k: v.asnumpy() for k, v in loaded.items()}


def plan(net: Net, arrays: dict[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """Map each of ``net``'s parameter names to its value, or raise listing every
    mismatch."""
    listing = net._listing()
    problems: list[str] = []
    matched: dict[str, np.ndarray] = {}
    if set(arrays) == set(listing):
        pairs = [(n, n, arrays[n]) for n in listing]
    else:
        names, values = list(arrays), list(arrays.values())
        if len(values) != len(listing):
            problems.append(
                f"the {what} has {len(values)} arrays, the net {len(listing)} "
                "parameters"
            )
        pairs = [
            (n, names[i], values[i]) for i, n in enumerate(listing) if i < len(values)
        ]
        missing = list(listing)[len(values) :]
        problems += [f"{n!r}: nothing left in the {what}" for n in missing]
        problems += [
            f"{k!r}: no parameter left in the net" for k in names[len(listing) :]
        ]
    for name, src, value in pairs:
        p = listing[name]
        if _compatible(p.shape, value.shape):
            matched[name] = value
        elif value.ndim == 2 and _compatible(p.shape, value.T.shape):
            matched[name] = np.ascontiguousarray(value.T)
        else:
            problems.append(
                f"{name!r} (shape {p.shape}) <- {src!r} (shape {tuple(value.shape)})"
            )
    if problems:
        raise CheckpointError(
            f"cannot load the {what} into {type(net).__name__}: {len(problems)} "
            "problem(s); the net was not changed:\n  " + "\n  ".join(problems)
        )
    return matched


def load_native(net: Net, source: Any) -> None:
    """Load ``source`` into ``net`` (see the module docstring)."""
    arrays, what = read_native(source)
    for name, value in plan(net, arrays, what).items():
        net._listing()[name].set_data(value)
