"""The memory plan of a traced program (:mod:`unified_numpy.trace`).

A trace records one :class:`Line` per NumPy kernel and one :class:`Slot` per array
it produced. :func:`generate` turns them into the source of the replay function,
planned once per trace so that a replay holds no more memory than it must:

* **Dead lines** (results no output needs, and that write into nothing) are dropped.
* **Each value dies at its last use**: after the line that last reads (or writes)
  ``v7``, the program says ``del v7``, so NumPy frees the array there instead of at
  the end of the step, as a hand-written step lets its activations go once the
  backward has used them.
* **Results are written into an operand that dies at that line** (``out=``): an
  elementwise ufunc call with one result and no keyword arguments whose result has
  the shape and dtype of one of its array operands ``a``, when ``a`` is no longer
  needed (no later line reads or writes ``a`` or any array sharing its memory, and
  it is not returned), becomes ``ufunc(a, b, out=a)``. Only arrays the program owns
  qualify: a fresh kernel result (not a view, not a constant), or an argument the
  caller *donated* (gave up, see ``donate_argnums`` in :mod:`unified_numpy.replay`).
  An elementwise ufunc computes each element from the same operands with the same
  inner loop whether or not it writes into one of them, so the numbers are bitwise
  those of the unplanned program.

Memory sharing is decided on the arrays of the trace: every slot has a *root* (the
array owning its memory: itself, or its ``base``), and a write into ``a`` needs
every slot of ``a``'s root dead. A replay with the same signature (shapes, dtypes,
strides) makes the same views, so the plan holds for every replay; donated
arguments are checked for sharing memory on each call (see the trace module).
"""

from __future__ import annotations

from typing import Any

import numpy as np

END = 1 << 62
"""The "line" at which returned values and caller-held arguments are last used."""


class Slot:
    """What the plan needs of one traced array: shape, dtype and memory."""

    __slots__ = ("shape", "dtype", "root", "fresh")

    def __init__(self, value: Any) -> None:
        self.shape = getattr(value, "shape", ())
        self.dtype = getattr(value, "dtype", None)
        base = getattr(value, "base", None)
        self.root = id(value) if base is None else id(base)
        # Owns its memory: an array the program may write into once it is dead.
        self.fresh = type(value) is np.ndarray and base is None


class Line:
    """One recorded kernel call.

    :param target: the assignment before the call (``"v7 = "``, or ``""``).
    :param call: the call's source, ``"k3(v5, c2)"``.
    :param reads: the slots the call reads.
    :param writes: the slots it defines or writes into.
    :param mutates: whether it writes into an existing array (never dropped).
    :param operands: for an elementwise ufunc call that could write into one of
        its operands (one array result, positional operands, no keywords): each
        operand's slot, ``None`` for a non-traced one; else ``None``.
    """

    __slots__ = ("target", "call", "reads", "writes", "mutates", "operands")

    def __init__(
        self,
        target: str,
        call: str,
        reads: tuple[int, ...],
        writes: tuple[int, ...],
        mutates: bool,
        operands: tuple[int | None, ...] | None = None,
    ) -> None:
        self.target = target
        self.call = call
        self.reads = reads
        self.writes = writes
        self.mutates = mutates
        self.operands = operands


def generate(
    lines: list[Line],
    slots: list[Slot],
    params: list[int],
    returned: str,
    returned_reads: list[int],
    donated: frozenset[int] = frozenset(),
    const_roots: frozenset[int] = frozenset(),
) -> tuple[str, int, int]:
    """The source of ``program(v0, v1, ...)`` replaying ``lines`` with the plan.

    :param params: the argument slots, in order.
    :param returned: the source of the returned value.
    :param returned_reads: the slots it reads.
    :param donated: the argument slots the program may write into once dead.
    :param const_roots: the roots of arrays baked in as constants (never written).
    :returns: the source, the number of kernel lines and of ``out=`` rewrites.
    """
    kept = _live_lines(lines, returned_reads)
    last: dict[int, int] = {}
    group_last: dict[int, int] = {}
    for i, line in enumerate(kept):
        for s in line.reads + line.writes:
            last[s] = i
            group_last[slots[s].root] = i
    for s in returned_reads:
        last[s] = END
        group_last[slots[s].root] = END
    for s in params:
        if s not in donated:  # the caller keeps it: nothing sharing it is written
            group_last[slots[s].root] = END
    for root in const_roots:
        group_last[root] = END
    outs = {
        i: s
        for i, line in enumerate(kept)
        if (s := _target(i, line, slots, group_last, donated)) is not None
    }
    params_set = set(params)
    dead: dict[int, list[int]] = {}
    for s, i in last.items():
        if i != END and s not in params_set:
            dead.setdefault(i, []).append(s)
    body = []
    for i, line in enumerate(kept):
        call = line.call
        if i in outs:
            call = f"{call[:-1]}, out=v{outs[i]})"
        body.append(f"    {line.target}{call}\n")
        if i in dead:
            body.append("    del " + ", ".join(f"v{s}" for s in sorted(dead[i])) + "\n")
    head = ", ".join(f"v{s}" for s in params)
    source = f"def program({head}):\n{''.join(body)}    return {returned}\n"
    return source, len(kept), len(outs)


def _live_lines(lines: list[Line], returned_reads: list[int]) -> list[Line]:
    """The lines an output needs, and every line that writes into an array."""
    live = set(returned_reads)
    kept = []
    for line in reversed(lines):
        if line.mutates or live.intersection(line.writes):
            kept.append(line)
            live.update(line.reads)
            if line.mutates:  # the written array must exist, with its history
                live.update(line.writes)
    kept.reverse()
    return kept


def _target(
    i: int,
    line: Line,
    slots: list[Slot],
    group_last: dict[int, int],
    donated: frozenset[int],
) -> int | None:
    """The operand line ``i`` may write its result into, or ``None``.

    Donated arguments first (the caller's array then holds the result, and the
    temporary it would have needed is never allocated), then dying fresh results.
    """
    if line.operands is None or line.mutates:
        return None
    result = slots[line.writes[0]]
    if not result.fresh:
        return None
    candidates = [s for s in line.operands if s is not None]
    candidates.sort(key=lambda s: s not in donated)
    for s in candidates:
        slot = slots[s]
        if not (slot.fresh or s in donated):
            continue
        if slot.shape != result.shape or slot.dtype != result.dtype:
            continue
        if group_last.get(slot.root) != i:
            continue
        # Another operand viewing the same memory differently: leave it alone.
        if any(
            o != s and o is not None and slots[o].root == slot.root
            for o in line.operands
        ):
            continue
        return s
    return None
