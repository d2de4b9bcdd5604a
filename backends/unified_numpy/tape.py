"""A small reverse-mode autodiff tape over NumPy arrays.

In the spirit of micrograd's engine, but every value is an ``np.ndarray``:

* :class:`Node` wraps one array produced inside :func:`value_and_grad`. It keeps its
  ``value``, the ``parents`` it was computed from (only those that are Nodes) and a
  ``backward`` closure that maps the gradient of the node to one gradient per parent.
* The ops in :mod:`unified_numpy.ops` build Nodes with :func:`record` whenever one of
  their inputs is a Node; with plain arrays they never touch this module.
* :func:`value_and_grad` wraps the inputs in leaf Nodes, calls the function, and walks
  the Nodes it recorded backwards in reverse creation order (a Node is created after
  its parents, so no sorting is needed), summing the gradients of a node that is
  used several times.

The graph lives only as long as one :func:`value_and_grad` call: leaves are created
afresh each time and nothing is stored on the input arrays, so no state leaks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unified_numpy.trace import Tracer, asarray

Backward = Callable[[Any], Sequence[Any]]


def _no_parents(g: Any) -> tuple[()]:
    return ()


class Node:
    """One array on the tape: its value, the Nodes it came from, and how to go back.

    ``backward(g)`` receives the gradient of the final scalar with respect to this
    node (same shape as ``value``) and returns one gradient per entry of
    ``parents``, each of that parent's shape.
    """

    __slots__ = ("value", "parents", "backward")

    # Make NumPy hand binary operators with an ndarray on the left to our reflected
    # methods (``array * node`` -> ``node.__rmul__``) instead of building an object
    # array of Nodes.
    __array_ufunc__ = None

    def __init__(
        self,
        value: np.ndarray,
        parents: tuple[Node, ...] = (),
        backward: Backward = _no_parents,
    ) -> None:
        self.value = value
        self.parents = parents
        self.backward = backward

    # -- array-like attributes -------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        value = self.value
        return value.shape if type(value) is np.ndarray else np.shape(value)

    @property
    def dtype(self) -> np.dtype:
        value = self.value
        dtype = getattr(value, "dtype", None)
        return np.asarray(value).dtype if dtype is None else dtype

    @property
    def ndim(self) -> int:
        return np.ndim(self.value)

    @property
    def size(self) -> int:
        return np.size(self.value)

    @property
    def T(self) -> Node:
        return _ops.transpose(self)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"Node({self.value!r})"

    # -- host reads of the value (not differentiated, as torch's ``float(t)``) --
    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    # -- operators: each routes through the op function of the same name --------
    def __add__(self, other: Any) -> Node:
        return _ops.add(self, other)

    def __radd__(self, other: Any) -> Node:
        return _ops.add(other, self)

    def __sub__(self, other: Any) -> Node:
        return _ops.subtract(self, other)

    def __rsub__(self, other: Any) -> Node:
        return _ops.subtract(other, self)

    def __mul__(self, other: Any) -> Node:
        return _ops.multiply(self, other)

    def __rmul__(self, other: Any) -> Node:
        return _ops.multiply(other, self)

    def __truediv__(self, other: Any) -> Node:
        return _ops.divide(self, other)

    def __rtruediv__(self, other: Any) -> Node:
        return _ops.divide(other, self)

    def __matmul__(self, other: Any) -> Node:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Node:
        return _ops.matmul(other, self)

    def __pow__(self, exponent: float) -> Node:
        return _ops.power(self, exponent)

    def __neg__(self) -> Node:
        return _ops.negative(self)

    def __pos__(self) -> Node:
        return self

    def __abs__(self) -> Node:
        return _ops.abs(self)

    def __getitem__(self, key: Any) -> Node:
        return _ops.getitem(self, key)

    # -- comparisons: plain boolean arrays (constants, off the tape) -------------
    def __gt__(self, other: Any) -> Any:
        return _shape_ops.greater(self, other)

    def __lt__(self, other: Any) -> Any:
        return _shape_ops.less(self, other)

    def __ge__(self, other: Any) -> Any:
        return np.logical_not(_shape_ops.less(self, other))

    def __le__(self, other: Any) -> Any:
        return np.logical_not(_shape_ops.greater(self, other))

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return _shape_ops.equal(self, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return np.logical_not(_shape_ops.equal(self, other))

    # Nodes stay hashable by identity despite the elementwise ``==``.
    __hash__ = object.__hash__


def record(value: Any, inputs: Sequence[Any], grad_fns: Sequence[Backward]) -> Node:
    """Return a Node for ``value`` computed from ``inputs``.

    :param value: the op's result (a NumPy array or scalar).
    :param inputs: the op's differentiable operands, Nodes or constants.
    :param grad_fns: for each input, a function from the output gradient to the
        input's gradient. Only the ones whose input is a Node are kept and called.
    """
    parents: list[Node] = []
    fns: list[Callable[[Any], Any]] = []
    for x, fn in zip(inputs, grad_fns, strict=True):
        if type(x) is Node:
            parents.append(x)
            fns.append(fn)
    if len(fns) == 1:
        (only,) = fns
        node = Node(value, tuple(parents), lambda g: (only(g),))
    else:
        node = Node(value, tuple(parents), lambda g: tuple(fn(g) for fn in fns))
    _created.append(node)
    return node


_IDLE: list[Node] = []
_created: list[Node] = _IDLE
"""The Nodes recorded by the running :func:`value_and_grad`, in creation order
(``_IDLE`` outside any call).

A Node is created after its parents, so this list is already a topological order:
the backward pass walks it in reverse instead of sorting the graph."""


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` over the axes that broadcasting added or stretched to get ``shape``."""
    gshape = np.shape(g)
    if gshape == shape:
        return g
    extra = len(gshape) - len(shape)
    if extra > 0:
        g = np.sum(g, axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and np.shape(g)[i] != 1)
    if stretched:
        g = np.sum(g, axis=stretched, keepdims=True)
    return g


def _own_array(g: Any, like: np.ndarray, taken: set[int]) -> np.ndarray:
    """Return ``g`` as a writable array of ``like``'s shape and dtype owned by nobody
    else (not a view, not another input's gradient)."""
    out = asarray(g, dtype=like.dtype)
    if out.shape != like.shape:  # a gradient rule returned the wrong shape
        raise RuntimeError(
            f"unified_numpy tape: gradient of shape {out.shape} for an input of shape "
            f"{like.shape}; this is a bug in a gradient rule"
        )
    if type(out) is Tracer:  # jit: copy when the eager step would, and arguments
        flags = getattr(out.value, "flags", None)
        if (
            flags is None
            or not (flags.owndata and flags.writeable)
            or id(out) in taken
            or out.slot in out.rec.inputs  # an argument's array at trace time
        ):
            out = asarray(out.copy())
        taken.add(id(out))
        return out  # type: ignore[no-any-return]
    if not (out.flags.owndata and out.flags.writeable) or id(out) in taken:
        out = out.copy()
    taken.add(id(out))
    return out


def value_and_grad(
    fn: Callable[[list[Any]], Any], arrays: Sequence[Any]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Evaluate ``fn(arrays)`` and the gradient of its scalar result for each array.

    :returns: ``(value, grads)``: the value as a 0-d array and one gradient per
        input with its shape and dtype (zeros when ``fn`` did not use the input).
    :raises ValueError: when ``fn`` does not return a single-element result.
    """
    if any(type(a) is Node for a in arrays):
        raise TypeError(
            "value_and_grad of the numpy backend cannot be nested: the tape does not "
            "differentiate its own gradients"
        )
    global _created
    leaves = [Node(asarray(a)) for a in arrays]
    outer, _created = _created, []
    try:
        out = fn(leaves)
    finally:
        # A value_and_grad called inside another one's fn: its Nodes (created after
        # the outer ones so far) join the outer tape, which may reach them too.
        created, _created = _created, outer
        if outer is _IDLE:
            _IDLE.clear()
        else:
            outer.extend(created)
    out_value = asarray(out.value if type(out) is Node else out)
    if out_value.size != 1:
        raise ValueError(
            "value_and_grad: fn must return a scalar (0-d) array, got shape "
            f"{out_value.shape}; reduce it, e.g. with sum or mean"
        )
    if type(out_value) is Tracer:
        value = out_value.copy().reshape(())
    else:
        value = np.array(out_value).reshape(())  # a fresh 0-d array
    grads: dict[int, Any] = {}
    if type(out) is Node:
        grads[id(out)] = np.ones_like(out_value)
        for node in reversed(created):
            g = grads.get(id(node))
            if g is None or not node.parents:
                continue  # unreachable from the output, or a leaf: keep its sum
            del grads[id(node)]  # intermediate gradients are freed as we go
            for parent, pg in zip(node.parents, node.backward(g), strict=True):
                key = id(parent)
                prev = grads.get(key)
                grads[key] = pg if prev is None else prev + pg
    taken: set[int] = set()
    results = []
    for leaf in leaves:
        g = grads.get(id(leaf))
        if g is None:
            results.append(np.zeros_like(leaf.value))
        else:
            results.append(_own_array(g, leaf.value, taken))
    return value, results


# Node's operators call the op functions, and ops.py builds on Node: import it last,
# once Node exists, whichever of the two modules is imported first.
from unified_numpy import ops as _ops  # noqa: E402
from unified_numpy import shape_ops as _shape_ops  # noqa: E402
