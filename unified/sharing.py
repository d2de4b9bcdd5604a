"""Sharing, freezing and averaging parameters (SPEC 7).

Example::

    >>> import unified as U
    >>> a, b = U.Dense(4, in_units=3), U.Dense(4, in_units=3)
    >>> U.share(b, a)
    >>> b.weight is a.weight
    True
    >>> U.freeze(a, ".*bias"); a.bias.frozen
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unified.errors import ShapeError, StructureError
from unified.nets import Net
from unified.parameters import _compatible


def owner_of(net: Net, path: str) -> tuple[Net, str]:
    """Return the sub-net holding the parameter at structural ``path``, and its key."""
    *parents, leaf = path.split(".")
    owner = net
    for part in parents:
        child = owner._entries[part]
        assert isinstance(child, Net)
        owner = child
    return owner, leaf


def share(dst: Net, src: Net, select: str | list[str] | None = None) -> None:
    """Tie every parameter of ``dst`` to the same-named parameter of ``src``.

    Afterwards both nets use ``src``'s parameter objects: one value, gradients summed
    over uses, one optimizer state. Shapes must agree where both are known (``-1``
    matches anything), else :class:`~unified.ShapeError` lists every mismatch.
    ``select`` (a regular expression, or a list) ties only the names it matches;
    a pattern that matches none of ``dst``'s names raises ``ValueError``.
    """
    theirs = src._listing()
    mine = dict(dst.params().require(select, "share"))
    pairs = [(n, p, theirs[n]) for n, p in mine.items() if n in theirs]
    if not pairs:
        raise StructureError(
            f"share(dst, src): no parameter names in common (dst has {list(mine)}, src "
            f"has {list(theirs)}). Share between nets of the same structure, e.g. "
            "share(net[2], net[1])."
        )
    bad = [
        f"{n}: {p.shape} vs {q.shape}"
        for n, p, q in pairs
        if not _compatible(p.shape, q.shape)
    ]
    if bad:
        raise ShapeError(
            "cannot share parameters with incompatible shapes (dst vs src): "
            + "; ".join(bad)
            + ". Shapes must agree wherever both are known."
        )
    for _name, ours, theirs_p in pairs:
        if ours is theirs_p:
            continue
        if -1 in theirs_p._shape and theirs_p._data is None:
            theirs_p._shape = tuple(
                b if a == -1 else a for a, b in zip(theirs_p._shape, ours._shape)
            )
        for path, p in list(dst.uses()):
            if p is ours:
                owner, leaf = owner_of(dst, path)
                setattr(owner, leaf, theirs_p)


def _set_frozen(net: Net, select: str | list[str] | None, frozen: bool) -> None:
    action = "freeze" if frozen else "unfreeze"
    net.params().require(select, action).setattr("frozen", frozen)


def freeze(net: Net, select: str | list[str] | None = None) -> None:
    """Freeze the parameters of ``net`` whose names match ``select`` (all if None)."""
    _set_frozen(net, select, True)


def unfreeze(net: Net, select: str | list[str] | None = None) -> None:
    """Unfreeze the parameters of ``net`` whose names match ``select`` (all if None)."""
    _set_frozen(net, select, False)


def _check_same_structure(nets: Sequence[Net], labels: Sequence[str]) -> None:
    reference = nets[0]._listing()
    problems = []
    for label, net in zip(labels[1:], nets[1:]):
        other = net._listing()
        for name in reference.keys() - other.keys():
            problems.append(f"{label} lacks {name!r}")
        for name in other.keys() - reference.keys():
            problems.append(f"{label} has extra {name!r}")
        for name in reference.keys() & other.keys():
            a, b = reference[name], other[name]
            if a.shape != b.shape or a.dtype != b.dtype:
                problems.append(
                    f"{name!r}: {labels[0]} {a.shape} {a.dtype} vs {label} {b.shape} "
                    f"{b.dtype}"
                )
        for name, p in other.items():
            if p._data is None:
                problems.append(f"{label}: {name!r} is not initialized")
    for name, p in reference.items():
        if p._data is None:
            problems.append(f"{labels[0]}: {name!r} is not initialized")
    if problems:
        raise StructureError(
            f"cannot average: {len(problems)} mismatch(es): "
            + "; ".join(sorted(problems))
            + ". Average nets of one architecture, initialized, with the same ties."
        )


def average(
    nets: Sequence[Net], into: Net | None = None, weights: Sequence[float] | None = None
) -> Net:
    """Average same-named parameters of ``nets`` (which may live on different backends).

    ``weights`` are normalized to sum 1. A shared parameter is averaged once. The
    result is written into ``into`` (default: a copy of ``nets[0]`` on its backend)
    and returned. Mismatching names or shapes raise
    :class:`~unified.StructureError` listing every one.
    """
    if not nets:
        raise ValueError("average() needs at least one net")
    labels = [f"nets[{i}]" for i in range(len(nets))]
    targets = [*nets, into] if into is not None else list(nets)
    _check_same_structure(targets, [*labels, "into"][: len(targets)])
    if weights is None:
        weights = [1.0] * len(nets)
    if len(weights) != len(nets):
        raise ValueError(f"got {len(weights)} weights for {len(nets)} nets")
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or w.sum() == 0:
        raise ValueError(
            f"weights must be finite and not sum to 0, got {list(weights)}"
        )
    w = w / w.sum()
    if into is None:
        from unified.checkpoint import port

        first = nets[0]._backend
        into = port(nets[0], first.name if first is not None else "numpy")
    listings = [n._listing() for n in nets]
    values: dict[str, Any] = {}
    for name, p in into._listing().items():
        total = sum(
            wi * lst[name].numpy().astype(np.float64) for wi, lst in zip(w, listings)
        )
        values[name] = np.asarray(total).astype(p.dtype)
    for name, p in into._listing().items():
        p.set_data(values[name])
    return into
