"""Checkpoints (safetensors, no pickle) and porting nets between backends (SPEC 8).

A checkpoint stores every parameter once, under its structural name, as a float
array, plus metadata: the format version, the backend of origin, the tie table
(each repeated use of a shared parameter and the name it is stored under) and,
optionally, optimizer state. Saving writes a temporary file and renames it, so a
failed save leaves the previous file intact; loading validates everything before
assigning anything, so a failed load leaves the net unchanged.

Example::

    >>> import os, tempfile
    >>> import unified as U
    >>> net = U.Sequential(U.Dense(3, in_units=2)); net.initialize()
    >>> path = os.path.join(tempfile.mkdtemp(), "net.safetensors")
    >>> net.save(path)
    >>> copy = U.Sequential(U.Dense(3)); copy.initialize(); copy.load(path)
    >>> bool((copy[0].weight.numpy() == net[0].weight.numpy()).all())
    True
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from typing import Any

import numpy as np

from unified.errors import CheckpointError
from unified.nets import Net
from unified.parameters import Parameter, _compatible
from unified.plugins import registry
from unified.sharing import owner_of

FORMAT = "unified.checkpoint"
FORMAT_VERSION = "1"
_OPT_PREFIX = "__optimizer__/"


def save(net: Net, path: str | os.PathLike[str], optimizer: Any = None) -> None:
    """Write ``net``'s parameters (and ``optimizer``'s state) to ``path`` atomically."""
    from safetensors.numpy import save_file

    listing = net._listing()
    missing = [n for n, p in listing.items() if p._data is None]
    if missing:
        raise CheckpointError(
            f"cannot save: {len(missing)} parameter(s) hold no values yet "
            f"({', '.join(missing)}). Initialize the net and run a forward pass (or "
            "net.infer_shape) first."
        )
    tensors = {name: np.ascontiguousarray(p.numpy()) for name, p in listing.items()}
    table = next(iter(listing.values()))._backend if listing else None
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backend": table.name if table is not None else "none",
        "ties": json.dumps(net.ties()),
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        host: dict[str, Any] = {"param_groups": state["param_groups"], "steps": {}}
        for name, entry in state["state"].items():
            host["steps"][name] = entry["step"]
            for key, value in entry.items():
                if key != "step":
                    tensors[f"{_OPT_PREFIX}{name}/{key}"] = np.ascontiguousarray(value)
        metadata["optimizer"] = json.dumps(host, default=_json_default)
        metadata["optimizer_class"] = type(optimizer).__name__
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".unified-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {value!r} in checkpoint metadata")


def read(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return the arrays and metadata of a checkpoint, or raise ``CheckpointError``."""
    from safetensors import safe_open

    target = os.fspath(path)
    if not os.path.exists(target):
        raise CheckpointError(f"no checkpoint at {target!r}: the file does not exist")
    try:
        with safe_open(target, framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:
        raise CheckpointError(
            f"{target!r} is not a readable safetensors checkpoint: {exc}. "
            "Checkpoints are written by net.save(path)."
        ) from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{target!r} is a safetensors file but not a unified checkpoint (metadata "
            f"format={metadata.get('format')!r}); write it with net.save(path)."
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{target!r} has checkpoint format version "
            f"{metadata.get('format_version')!r}; this unified reads version "
            f"{FORMAT_VERSION}. Upgrade unified."
        )
    return arrays, metadata


def load(
    net: Net, path: str | os.PathLike[str], strict: bool = True, optimizer: Any = None
) -> None:
    """Load a checkpoint into ``net``, re-tying shared parameters.

    Every name, shape and dtype is checked first; on any problem one
    :class:`~unified.CheckpointError` lists them all and nothing is changed. With
    ``strict=False`` names present on only one side are skipped (shapes and dtypes
    of common names are still checked).
    """
    arrays, metadata = read(path)
    params = {k: v for k, v in arrays.items() if not k.startswith(_OPT_PREFIX)}
    ties: dict[str, str] = json.loads(metadata.get("ties", "{}"))
    uses = dict(net.uses())
    problems = []
    for alias, canonical in ties.items():
        if alias in uses and canonical in uses and uses[alias] is not uses[canonical]:
            problems.extend(_tie_problems(alias, canonical, uses))
    listing = net._listing()
    wanted = {n: p for n, p in listing.items() if n not in ties}
    if strict:
        problems += [f"missing in checkpoint: {n!r}" for n in wanted if n not in params]
        problems += [
            f"unexpected in checkpoint: {n!r}"
            + (f" (the net ties it to {net.ties()[n]!r})" if n in net.ties() else "")
            for n in params
            if n not in wanted
        ]
    for name, value in params.items():
        p = wanted.get(name)
        if p is None:
            continue
        if not _compatible(p.shape, value.shape):
            problems.append(
                f"{name!r}: shape {value.shape} in checkpoint, {p.shape} in net"
            )
        if value.dtype.name != p.dtype:
            problems.append(
                f"{name!r}: dtype {value.dtype.name} in checkpoint, {p.dtype} in net"
            )
    opt_state = None
    if optimizer is not None:
        opt_state = _optimizer_state(metadata, arrays)
        if opt_state is None:
            problems.append(
                "the checkpoint holds no optimizer state; save it with "
                "net.save(path, optimizer=opt), or load without optimizer="
            )
        elif metadata.get("optimizer_class") != type(optimizer).__name__:
            problems.append(
                f"optimizer state was saved by {metadata.get('optimizer_class')}, "
                f"not {type(optimizer).__name__}"
            )
        else:
            problems += optimizer.check_state_dict(opt_state)
    if problems:
        raise CheckpointError(
            f"cannot load {os.fspath(path)!r} into {type(net).__name__}: "
            f"{len(problems)} problem(s); the net was not changed:\n  "
            + "\n  ".join(problems)
            + "\nLoad a checkpoint saved from the same architecture (strict=False "
            "skips names found on one side only)."
        )
    orphans = []
    for alias, canonical in ties.items():
        if alias in uses and canonical in uses and uses[alias] is not uses[canonical]:
            orphans.append(uses[alias])
            _retie(net, alias, uses[canonical])
    for name, value in params.items():
        if name in wanted:
            wanted[name].set_data(value)
    if optimizer is not None and opt_state is not None:
        optimizer.forget(orphans)
        optimizer.load_state_dict(opt_state)


def _optimizer_state(
    metadata: dict[str, str], arrays: dict[str, np.ndarray]
) -> dict[str, Any] | None:
    if "optimizer" not in metadata:
        return None
    host = json.loads(metadata["optimizer"])
    state = {
        name: {
            "step": step,
            **{
                k.rsplit("/", 1)[1]: v
                for k, v in arrays.items()
                if k.startswith(f"{_OPT_PREFIX}{name}/")
            },
        }
        for name, step in host["steps"].items()
    }
    return {"state": state, "param_groups": host["param_groups"]}


def _tie_problems(alias: str, canonical: str, uses: dict[str, Parameter]) -> list[str]:
    a, c = uses[alias], uses[canonical]
    if not _compatible(a.shape, c.shape):
        return [
            f"tie {alias!r} -> {canonical!r}: shapes {a.shape} and {c.shape} differ"
        ]
    flags = ("frozen", "lr_mult", "wd_mult")
    differ = [f for f in flags if getattr(a, f) != getattr(c, f)]
    if differ:
        return [
            f"tie {alias!r} -> {canonical!r}: the net's two parameters differ in "
            f"{', '.join(differ)}; make them agree before loading (one tied "
            "parameter has one setting)"
        ]
    return []


def _retie(net: Net, alias: str, target: Parameter) -> None:
    owner, leaf = owner_of(net, alias)
    setattr(owner, leaf, target)


def port(net: Net, backend: str) -> Net:
    """Return an equivalent net on ``backend``: same values, ties and frozen flags.

    The structure is deep-copied (a shared parameter stays shared); values move
    through NumPy, so they are bit-identical. Deferred parameters stay deferred with
    the same recorded initializer, so they draw the same values later.

    Example::

        >>> import unified as U
        >>> net = U.Dense(2, in_units=3); net.initialize()
        >>> twin = U.port(net, "numpy")
        >>> bool((twin.weight.numpy() == net.weight.numpy()).all())
        True
    """
    table = registry.get(backend)
    originals = list(net._listing().values())
    twin = copy.deepcopy(net)
    for p, q in zip(originals, twin._listing().values()):
        if p._data is not None:
            q._backend = table
            q._data = table.asarray(p.numpy(), p.dtype)
        elif p._pending is not None:
            q._backend = table
    if any(p._backend is not None for p in originals) or net._backend is not None:
        twin._bind(table)
    return twin


__all__ = ["load", "port", "read", "save"]
