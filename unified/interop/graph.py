"""A traced graph as a unified net: ``GraphNet`` (SPEC 14).

A custom ``hybrid_forward`` (Gluon) or ``forward`` (PyTorch) has no structure to
convert layer by layer; its trace (Gluon's symbol graph, ``torch.fx``) does. A
``GraphNet`` keeps the source's module tree as its children, so parameter names are
the source's structural names, and evaluates a list of nodes written in
``unified.ops``: each node reads earlier values, and either calls one of the
children (``"layer"``) or applies an op of :data:`OPS`.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> from unified.interop.graph import GraphNet, Node
    >>> net = GraphNet(
    ...     {"fc": U.Dense(2, in_units=3)},
    ...     [Node("fc", "layer", [0], layer="fc"), Node("out", "relu", [1])],
    ...     inputs=1, outputs=[2],
    ... )
    >>> net.initialize()
    >>> U.to_numpy(net(np.ones((4, 3), "float32"))).shape
    (4, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unified import functional as F
from unified import ops
from unified.errors import UnifiedError
from unified.nets import Net
from unified.parameters import Parameter


class ConversionError(UnifiedError, ValueError):
    """A native model uses something unified cannot reproduce exactly."""


@dataclass
class Node:
    """One step of a graph: ``op`` applied to the values ``inputs`` (indices into
    the values computed so far: the graph inputs first, then one per node).

    ``layer`` is the structural path of the child a ``"layer"`` node calls;
    ``attrs`` holds the op's options; ``name`` is the source's node name (errors).
    """

    name: str
    op: str
    inputs: list[int]
    attrs: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None


class Holder(Net):
    """A module of the source's tree whose computation lives in its parent's graph;
    it only holds children and parameters under the source's names."""

    def forward(self, *args: Any) -> Any:
        raise TypeError(
            "this sub-net only holds parameters: its computation is part of the "
            "traced graph of the net it belongs to; call that net instead"
        )


class Identity(Net):
    """Return the input unchanged (Gluon's ``contrib.nn.Identity``,
    ``torch.nn.Identity``)."""

    def forward(self, x: Any) -> Any:
        return x


class Concurrent(Net):
    """Run every child on the same input and concatenate the outputs along ``axis``
    (Gluon's ``HybridConcurrent``); children are named ``0``, ``1``, ..."""

    def __init__(self, *layers: Net, axis: int = -1) -> None:
        super().__init__()
        self.axis = int(axis)
        for i, layer in enumerate(layers):
            attach(self, str(i), layer)

    def forward(self, x: Any) -> Any:
        return ops.concatenate([c(x) for _, c in self.children()], self.axis)


def attach(net: Net, name: str, value: Net | Parameter) -> None:
    """Register ``value`` under ``name`` (any string, e.g. ``"0"``) on ``net``."""
    net._register(name, value)
    object.__setattr__(net, name, value)


class GraphNet(Net):
    """Evaluate ``nodes`` over the children ``tree`` (see the module docstring).

    Arguments:
        tree: the children, in the source's order, by the source's names.
        nodes: the steps, in an order where every input comes first.
        inputs: the number of graph inputs.
        outputs: the indices of the returned values (one index: a single output).
        params: parameters held by this net itself (the source module's own).
    """

    nodes: list[Node]
    n_inputs: int
    outputs: list[int]

    def __init__(
        self,
        tree: dict[str, Net],
        nodes: Sequence[Node],
        inputs: int,
        outputs: Sequence[int],
        params: dict[str, Parameter] | None = None,
    ) -> None:
        super().__init__()
        for name, p in (params or {}).items():
            attach(self, name, p)
        for name, child in tree.items():
            attach(self, name, child)
        object.__setattr__(self, "nodes", list(nodes))
        object.__setattr__(self, "n_inputs", int(inputs))
        object.__setattr__(self, "outputs", list(outputs))

    def sub(self, path: str) -> Any:
        """Return the child or parameter at the dotted ``path``."""
        value: Any = self
        for part in path.split("."):
            value = value._entries[part]
        return value

    def forward(self, *args: Any) -> Any:
        if len(args) != self.n_inputs:
            raise TypeError(
                f"{type(self).__name__} takes {self.n_inputs} input(s), got {len(args)}"
            )
        values: list[Any] = list(args)
        last = self._last_use()
        for k, node in enumerate(self.nodes):
            xs = [values[i] for i in node.inputs]
            for i in node.inputs:
                if last[i] == k:
                    values[i] = None
            if node.op == "layer":
                assert node.layer is not None
                target = self.sub(node.layer)
                if isinstance(target, Parameter):
                    values.append(target.data())
                elif "call" in node.attrs:
                    values.append(torch_call(target, xs, node.attrs))
                elif node.attrs.get("bare"):
                    values.append(bare(target, xs[0]))
                else:
                    values.append(target(*xs))
            else:
                values.append(OPS[node.op](xs, node.attrs))
        out = [values[i] for i in self.outputs]
        return out[0] if len(out) == 1 else tuple(out)

    def _last_use(self) -> list[int]:
        """For each value, the index of the last node reading it (``len(nodes)``
        for the outputs and unread values): ``forward`` drops a value from its list
        once its last reader has it, so intermediates are freed as in eager code
        (a few list operations per node; a held full-size intermediate costs more)."""
        nodes = self.nodes
        last = [len(nodes)] * (self.n_inputs + len(nodes))
        for k, node in enumerate(nodes):
            for i in node.inputs:
                last[i] = k
        for i in self.outputs:
            last[i] = len(nodes)
        return last

    def _describe(self) -> str:
        return ""


def bare(layer: Any, x: Any) -> Any:
    """A ``Dense``/``Conv`` layer without its fused activation (a graph applies the
    activation as a node of its own)."""
    from unified.layers.conv import _Conv
    from unified.layers.dense import Dense

    if not isinstance(layer, (Dense, _Conv)) or layer.activation is None:
        return layer(x)  # nothing fused (BatchNorm, pooling, ...): call it as is
    saved = layer.activation
    object.__setattr__(layer, "activation", None)
    try:
        return layer(x)
    finally:
        object.__setattr__(layer, "activation", saved)


def torch_call(layer: Any, xs: list[Any], attrs: dict[str, Any]) -> Any:
    """Call a sequence layer as PyTorch calls its module (``attrs["call"]``):
    a recurrent layer returns ``(output, h_n)`` or ``(output, (h_n, c_n))`` from
    zero initial states, attention ``(output, weights)`` (``need_weights``
    defaults to ``True``), a transformer layer its output. ``attrs["kw"]`` holds
    constant keyword arguments, ``attrs["kw_inputs"]`` the names of the keyword
    arguments that are the last inputs."""
    names = list(attrs.get("kw_inputs", []))
    positional = xs[: len(xs) - len(names)]
    kw = dict(attrs.get("kw", {}))
    kw.update(zip(names, xs[len(positional) :]))
    if attrs["call"] == "recurrent":
        x = positional[0]
        batch = int(x.shape[1 if layer.layout == "TNC" else 0])
        out, new = layer(x, layer.begin_state(batch))
        return (out, tuple(new)) if layer.n_states == 2 else (out, new[0])
    if attrs["call"] == "attention":
        kw.setdefault("need_weights", True)
        result = layer(*positional, **kw)
        return result if isinstance(result, tuple) else (result, None)
    return layer(*positional, **kw)


def _getitem(xs: list[Any], a: dict[str, Any]) -> Any:
    """``value[key]``: an item of a tuple output, or basic indexing of an array
    with integers and slices of step 1 (``out[:, -1]``)."""
    x, key = xs[0], a["key"]
    if isinstance(x, (tuple, list)):
        return x[key]
    key = key if isinstance(key, tuple) else (key,)
    drop = []
    for axis, k in enumerate(key):
        size = int(x.shape[axis])
        if isinstance(k, int):
            i = k % size
            x = ops.slice_axis(x, axis, i, i + 1)
            drop.append(axis)
        else:
            start, stop, _ = k.indices(size)
            if (start, stop) != (0, size):
                x = ops.slice_axis(x, axis, start, stop)
    shape = [int(d) for i, d in enumerate(x.shape) if i not in drop]
    return ops.reshape(x, tuple(shape)) if drop else x


def _reshape(xs: list[Any], a: dict[str, Any]) -> Any:
    x = xs[0]
    shape = [int(d) for d in x.shape]
    target = []
    for i, d in enumerate(a["shape"]):
        target.append(shape[i] if d == 0 else d)  # MXNet's 0: copy the dim
    return ops.reshape(x, tuple(target))


def _flatten(xs: list[Any], a: dict[str, Any]) -> Any:
    x = xs[0]
    start = a.get("start", 1)
    shape = [int(d) for d in x.shape]
    end = a.get("end", -1) % len(shape)
    merged = math.prod(shape[start : end + 1])
    return ops.reshape(x, (*shape[:start], merged, *shape[end + 1 :]))


def _pool(xs: list[Any], a: dict[str, Any]) -> Any:
    return ops.pool(
        xs[0],
        a["mode"],
        a["kernel"],
        a["stride"],
        a["padding"],
        a["ceil_mode"],
        a["count_include_pad"],
    )


def _global_pool(xs: list[Any], a: dict[str, Any]) -> Any:
    x = xs[0]
    axes = tuple(range(2, len(x.shape)))
    reduce = ops.mean if a["mode"] == "avg" else ops.max
    return reduce(x, axes, a.get("keepdims", True))


def _binary(name: str) -> Callable[[list[Any], dict[str, Any]], Any]:
    def apply(xs: list[Any], a: dict[str, Any]) -> Any:
        fn = getattr(ops, name)  # resolved per call: ops dispatch to the backend
        if "scalar" in a:
            s = a["scalar"]
            return fn(s, xs[0]) if a.get("reverse") else fn(xs[0], s)
        return fn(xs[0], xs[1])

    return apply


def _where(xs: list[Any], a: dict[str, Any]) -> Any:
    """``where(cond, yes, no)``; a case given in ``attrs`` is a constant."""
    rest = iter(xs[1:])
    yes = a["yes"] if "yes" in a else next(rest)
    no = a["no"] if "no" in a else next(rest)
    return _op("where")(xs[0], yes, no)


def _op(name: str) -> Callable[..., Any]:
    """The op ``name`` of the active backend (looked up per call)."""
    fn: Callable[..., Any] = getattr(ops, name)
    return fn


def _unary(fn: Callable[[Any], Any]) -> Callable[[list[Any], dict[str, Any]], Any]:
    return lambda xs, a: fn(xs[0])


OPS: dict[str, Any] = {
    "identity": lambda xs, a: xs[0],
    "getitem": _getitem,
    "relu": _unary(F.relu),
    "sigmoid": _unary(F.sigmoid),
    "tanh": _unary(F.tanh),
    "softplus": _unary(F.softplus),
    "silu": _unary(F.silu),
    "selu": _unary(F.selu),
    "relu6": _unary(F.relu6),
    "gelu": lambda xs, a: F.gelu(xs[0], a.get("approximate", "none")),
    "leaky_relu": lambda xs, a: F.leaky_relu(xs[0], a.get("alpha", 0.01)),
    "elu": lambda xs, a: F.elu(xs[0], a.get("alpha", 1.0)),
    "softmax": lambda xs, a: F.softmax(xs[0], a.get("axis", -1)),
    "log_softmax": lambda xs, a: F.log_softmax(xs[0], a.get("axis", -1)),
    "clip": lambda xs, a: _op("clip")(xs[0], a.get("lo"), a.get("hi")),
    "add": _binary("add"),
    "subtract": _binary("subtract"),
    "multiply": _binary("multiply"),
    "divide": _binary("divide"),
    "maximum": _binary("maximum"),
    "greater": _binary("greater"),
    "less": _binary("less"),
    "where": _where,
    "minimum": _binary("minimum"),
    "unary": lambda xs, a: _op(a["fn"])(xs[0]),
    "reduce": lambda xs, a: _op(a["fn"])(xs[0], a["axes"], a.get("keepdims", False)),
    "pad": lambda xs, a: _op("pad")(xs[0], a["width"], a.get("value", 0.0)),
    "concat": lambda xs, a: _op("concatenate")(list(xs), a.get("axis", 1)),
    "flatten": _flatten,
    "reshape": _reshape,
    "transpose": lambda xs, a: _op("transpose")(xs[0], a.get("axes")),
    "mean": lambda xs, a: _op("mean")(xs[0], a.get("axis"), a.get("keepdims", False)),
    "pool": _pool,
    "size": lambda xs, a: int(xs[0].shape[a["dim"]]),
    "view": lambda xs, a: _op("reshape")(
        xs[0],
        tuple(xs[d["ref"]] if isinstance(d, dict) else d for d in a["shape"]),
    ),
    "global_pool": _global_pool,
    "linear": lambda xs, a: _op("linear")(xs[0], xs[1], xs[2] if len(xs) > 2 else None),
    "conv": lambda xs, a: _op("conv")(
        xs[0],
        xs[1],
        xs[2] if len(xs) > 2 else None,
        a["stride"],
        a["padding"],
        a["dilation"],
        a["groups"],
    ),
    "conv_transpose": lambda xs, a: _op("conv_transpose")(
        xs[0],
        xs[1],
        xs[2] if len(xs) > 2 else None,
        a["stride"],
        a["padding"],
        a["output_padding"],
        a["dilation"],
        a["groups"],
    ),
}
"""The ops a graph node may name besides ``"layer"``: ``fn(inputs, attrs)``."""
