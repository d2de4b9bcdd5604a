"""The NumPy backend's ``jit``: one traced, planned program per input signature.

:func:`jit` wraps a pure function; :class:`Compiled` flattens each call's arguments
into a *signature* (the nesting, every array's shape, dtype and strides, the values
of the non-array leaves), traces the function on :class:`~unified_numpy.trace.Tracer`
stand-ins the first time it sees one (:mod:`unified_numpy.trace`), plans the
program's memory (:mod:`unified_numpy.plan`) and replays it on later calls. A
function that cannot be traced runs eagerly for that signature.

Donation. ``jit(fn, donate)`` takes the positions of the arguments whose arrays the
caller gives up, as ``jax.jit``'s ``donate_argnums`` (the capability ``donate``).
The program may then write its results into those arrays once it no longer needs
their values (``Trainer``'s step donates the parameters and the optimizer state,
so the update happens in place, as the eager NumPy optimizers do). The trace itself
writes into nothing (:meth:`Compiled.trace` traces without replaying), and a call
whose donated arrays share memory with another argument runs the program that
writes into no argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unified_numpy import trace as _trace
from unified_numpy.plan import generate
from unified_numpy.trace import TraceError, Tracer, _Recorder, _values, log


def _flatten(obj: Any, leaves: list[Any], sig: list[Any]) -> None:
    """Append ``obj``'s arrays to ``leaves`` and its structure to ``sig``."""
    t = type(obj)
    if t is list or t is tuple:
        sig.append((t, len(obj)))
        for o in obj:
            if type(o) is np.ndarray:  # inline: the common leaf
                leaves.append(o)
                sig.append(o.shape)
                sig.append(o.dtype)
                sig.append(o.strides)
            else:
                _flatten(o, leaves, sig)
    elif t is np.ndarray:
        leaves.append(obj)
        sig.append(obj.shape)
        sig.append(obj.dtype)
        sig.append(obj.strides)  # memory layout picks some kernels (flags)
    elif t is dict:
        sig.append(tuple(obj))
        for o in obj.values():
            _flatten(o, leaves, sig)
    elif isinstance(obj, np.generic):
        leaves.append(obj)
        sig.append((np.generic, obj.dtype))
    elif obj is None or t in (int, float, bool, str):
        sig.append((t, obj))
    else:
        raise TraceError(f"an argument of type {t.__name__} cannot be traced")


def _signature(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[Any]]:
    """The key of ``args``' signature (nesting, shapes, dtypes, strides, non-array
    values) and their arrays in order; :class:`TraceError` for an argument that
    cannot be traced."""
    leaves: list[Any] = []
    sig: list[Any] = []
    _flatten(args, leaves, sig)
    return tuple(sig), leaves


def _rebuild(obj: Any, leaves: Any) -> Any:
    """``obj``'s structure with its arrays taken in order from iterator ``leaves``."""
    t = type(obj)
    if t is np.ndarray or isinstance(obj, np.generic):
        return next(leaves)
    if t is list or t is tuple:
        return t(_rebuild(o, leaves) for o in obj)
    if t is dict:
        return {k: _rebuild(v, leaves) for k, v in obj.items()}
    return obj


def _fresh(obj: Any, rec: _Recorder) -> Any:
    """``obj`` with every untraced array among the results replaced by a recorded
    copy, so that no two calls share an output array."""
    t = type(obj)
    if t is np.ndarray:
        return rec.call(np.array, (obj,), {})
    if t is list or t is tuple:
        return t(_fresh(o, rec) for o in obj)
    if t is dict:
        return {k: _fresh(v, rec) for k, v in obj.items()}
    return obj


class _Program:
    """The generated replay function of one signature (planned by :mod:`.plan`).

    :attr:`run` may write into the arguments at :attr:`donated` (leaf positions);
    :attr:`safe` writes into no argument (the same as :attr:`run` when nothing is
    donated). :meth:`Compiled.__call__` picks :attr:`run` only when no donated
    array shares memory with another argument.
    """

    def __init__(
        self,
        rec: _Recorder,
        inputs: list[Tracer],
        result: Any,
        donated: tuple[int, ...] = (),
    ) -> None:
        reads: list[int] = []
        returned = rec.render(result, reads)
        params = [t.slot for t in inputs]
        const_roots = frozenset(
            id(v if v.base is None else v.base)
            for v in rec.consts.values()
            if type(v) is np.ndarray
        )
        self._build = (rec.lines, rec.slots, params, returned, reads, const_roots)
        self._consts = rec.consts
        self.donated = donated
        self.run, self.source, self.kernels, self.rewrites = self._compile(
            frozenset(params[i] for i in donated)
        )
        self._safe: Callable[..., Any] | None = None if donated else self.run

    def _compile(
        self, give: frozenset[int]
    ) -> tuple[Callable[..., Any], str, int, int]:
        lines, slots, params, returned, reads, const_roots = self._build
        source, kernels, rewrites = generate(
            lines, slots, params, returned, reads, give, const_roots
        )
        scope = dict(self._consts)
        exec(compile(source, "<unified_numpy jit program>", "exec"), scope)  # noqa: S102
        return scope["program"], source, kernels, rewrites

    def safe(self, *leaves: Any) -> Any:
        """Run the program that writes into no argument (built on first use)."""
        if self._safe is None:
            self._safe = self._compile(frozenset())[0]
        return self._safe(*leaves)


def _exclusive(leaves: list[Any], donated: tuple[int, ...]) -> bool:
    """Whether no donated leaf shares memory with another leaf (so the program may
    write into it). Half a microsecond for a small net when no two leaves share.

    A read-only donated array is not checked for: the program's write into it
    raises, as writing the update into it (``assign``, the eager ``axpby``) would.
    """
    if len({id(a) if a.base is None else id(a.base) for a in leaves}) == len(leaves):
        return True
    roots = [id(a) if a.base is None else id(a.base) for a in leaves]
    mine = {roots[i] for i in donated}
    return len(mine) == len(donated) and sum(r in mine for r in roots) == len(mine)


class Compiled:
    """What :func:`jit` returns: one traced program per input signature."""

    def __init__(self, fn: Callable[..., Any], donate: Sequence[int] = ()) -> None:
        self.fn = fn
        self.donate = tuple(donate)
        self.programs: dict[tuple[Any, ...], _Program | None] = {}

    def trace(self, *args: Any) -> None:
        """Trace (and plan) the program for ``args`` now, if it is not yet; write
        into none of them. The next call with their signature replays it."""
        try:
            key, leaves = _signature(args)
        except TraceError:
            return  # such a call runs eagerly
        if key not in self.programs:
            self._trace(key, args, leaves)

    def __call__(self, *args: Any) -> Any:
        if _trace._active is not None:  # inside another trace: inline
            return self.fn(*args)
        try:
            key, leaves = _signature(args)
        except TraceError as why:
            log.debug("unified_numpy jit: running eagerly: %s", why)
            return self.fn(*args)
        program = self.programs.get(key, False)
        if program is None:
            return self.fn(*args)
        if program is not False:
            if program.donated and not _exclusive(leaves, program.donated):  # type: ignore[union-attr]
                return program.safe(*leaves)  # type: ignore[union-attr]
            return program.run(*leaves)  # type: ignore[union-attr]
        return self._trace(key, args, leaves)

    def _trace(self, key: tuple[Any, ...], args: Any, leaves: list[Any]) -> Any:
        rec = _Recorder()
        inputs = [Tracer(leaf, rec) for leaf in leaves]
        rec.inputs.update(t.slot for t in inputs)
        _trace._active = rec
        try:
            result = _fresh(self.fn(*_rebuild(args, iter(inputs))), rec)
            donated = _donated(args, self.donate, leaves)
            program = _Program(rec, inputs, result, donated)
        except Exception as why:  # noqa: BLE001 - any failure: run the step eagerly
            _trace._active = None
            out = self.fn(*args)  # a genuine error of the function raises here
            self.programs[key] = None
            log.debug(
                "unified_numpy jit: cannot trace %s, running it eagerly: %s: %s",
                getattr(self.fn, "__name__", self.fn),
                type(why).__name__,
                why,
            )
            return out
        finally:
            _trace._active = None
            rec.values.clear()  # the trace's arrays: nothing needs their ids now
        self.programs[key] = program
        return _values(result)


def _donated(
    args: tuple[Any, ...], argnums: tuple[int, ...], leaves: list[Any]
) -> tuple[int, ...]:
    """The positions among ``leaves`` of the ndarrays of arguments ``argnums``."""
    positions: list[int] = []
    start = 0
    for i, arg in enumerate(args):
        mine: list[Any] = []
        _flatten(arg, mine, [])
        if i in argnums:
            positions.extend(
                start + j for j, a in enumerate(mine) if type(a) is np.ndarray
            )
        start += len(mine)
    assert start == len(leaves)
    return tuple(positions)


def jit(fn: Callable[..., Any], donate: Sequence[int] = ()) -> Compiled:
    """Return ``fn`` traced once per input signature and replayed, writing into the
    arrays of the arguments at positions ``donate`` (see the module docstring)."""
    return Compiled(fn, donate)
