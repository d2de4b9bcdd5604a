"""Differentiation on MXNet: ``value_and_grad`` through ``mx.autograd``, with
recycled gradient buffers (see the package docstring)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import mxnet as mx

from unified import hookimpl
from unified_mxnet import (
    Array,
    _as_scalar,
    _MXNetError,
    _nd,
    _np_on,
    _np_restore,
    _to_0d,
)
from unified_mxnet import jit as _jit

# ----------------------------------------------------------------------------------
# Differentiation
# ----------------------------------------------------------------------------------


class _GradBuffers:
    """Gradient buffers of earlier ``value_and_grad`` calls, reused once released.

    MXNet 1.9 does not pool CPU memory: a fresh gradient buffer of a few megabytes is
    mapped anew by the C allocator and page-faulted while backward writes it, about
    10% of the CPU time of a 784-512-512-10 MLP training step. Gluon never pays it,
    its gradient buffers live as long as the parameters. Here a buffer returned by
    an earlier call is reused only when this pool holds the sole reference to it
    (the caller dropped or replaced it), and it is then entirely overwritten
    (grad_req "write") or zero-filled, so no value crosses calls. The pool keeps at
    most two buffers per input of the latest call (the one the caller holds and a
    spare) and forgets the shapes that call did not use.

    A view shares its buffer without referencing the Python object, so one made by
    the ``reshape`` hook pins the buffer (it leaves the pool for good). Native views
    (``g.reshape``, ``g[i]``, ``g.detach()``) are not seen: a caller keeping one past
    the gradient array itself must copy it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[tuple[Any, ...], list[Array]] = {}
        self.ids: frozenset[int] = frozenset()  # of the pooled buffers

    def take(self, keys: list[tuple[Any, ...]]) -> list[Array | None]:
        """Return a released buffer for each key, or ``None`` where there is none."""
        out: list[Array | None] = []
        with self._lock:
            for key in keys:
                found = None
                held = self._free.get(key)
                if held:
                    for j in range(len(held)):
                        # References: the list slot and getrefcount's argument.
                        if sys.getrefcount(held[j]) == 2:
                            found = held.pop(j)
                            break
                out.append(found)
        return out

    def keep(self, keys: list[tuple[Any, ...]], grads: list[Array]) -> None:
        """Remember the buffers just returned; forget everything else but a spare."""
        fresh: dict[tuple[Any, ...], list[Array]] = {}
        for key, g in zip(keys, grads, strict=True):
            fresh.setdefault(key, []).append(g)
        with self._lock:
            for key, bufs in fresh.items():
                bufs.extend(self._free.get(key, ())[: len(bufs)])
            self._free = fresh
            self.ids = frozenset(id(g) for bufs in fresh.values() for g in bufs)

    def pin(self, buffer: Array) -> None:
        """Never reuse ``buffer`` (a view of it exists)."""
        with self._lock:
            for bufs in self._free.values():
                for j, g in enumerate(bufs):
                    if g is buffer:
                        del bufs[j]
                        self.ids = self.ids - {id(buffer)}
                        return


_grad_buffers = _GradBuffers()


def marked(arrays: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Fresh handles of ``arrays`` sharing their memory (no copy), marked for
    gradients (``"write"``): the autograd marks and the gradient buffers live on
    them, never on the caller's arrays. Returns the handles, their gradient
    buffers (released ones of earlier calls when there are) and the buffers' keys
    for :meth:`_GradBuffers.keep`."""
    leaves = [a.detach() for a in arrays]
    keys = [(leaf.shape, leaf.dtype, leaf.context) for leaf in leaves]
    grads = _grad_buffers.take(keys)
    for i, g in enumerate(grads):
        if g is None:
            shape, dtype, ctx = keys[i]
            grads[i] = _nd.empty(shape, ctx=ctx, dtype=dtype)
    if leaves:
        mx.autograd.mark_variables(leaves, grads, "write")
    return leaves, grads, keys


@hookimpl
def value_and_grad(
    fn: Callable[[list[Array]], Array], arrays: Sequence[Array]
) -> tuple[Array, list[Array]]:
    recorder = _jit.active.recorder
    if recorder is not None:  # inside a jit trace: record the forward apart
        prev = _np_on()
        try:
            return recorder.value_and_grad(fn, list(arrays))
        finally:
            _np_restore(prev)
    prev = _np_on()
    try:
        leaves, grads, keys = marked(arrays)
        with mx.autograd.record():
            out = fn(leaves)
        if out.size != 1:
            raise ValueError(
                f"value_and_grad needs fn to return a scalar, got shape {out.shape}"
            )
        try:
            out.backward()
        except _MXNetError as exc:
            # ``fn`` returned a constant: no input reaches the output.
            if "not in a computational graph" not in str(exc):
                raise
        for leaf, g in zip(leaves, grads, strict=True):
            if not leaf._fresh_grad:  # backward did not reach this input
                _nd.zeros_like(leaf, out=g)
        _grad_buffers.keep(keys, grads)
        value = out.detach()
        value = _to_0d(value) if value.ndim != 0 else _as_scalar(value)
        return value, grads
    finally:
        _np_restore(prev)
