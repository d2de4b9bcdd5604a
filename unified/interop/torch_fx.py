"""``torch.fx`` graphs as graph nodes: the operator table of ``from_torch``'s tracer.

``call_module`` nodes call the unified layer converted from that module (by its
path, so parameter names stay the ``state_dict`` keys); ``get_attr`` nodes read a
parameter or buffer; functions and methods map to the ops of
:data:`unified.interop.graph.OPS`. Anything else is reported with its place.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as TF
from torch import fx

from unified.interop.graph import ConversionError, GraphNet, Node

_BIN = {
    operator.add: "add",
    torch.add: "add",
    operator.iadd: "add",
    operator.sub: "subtract",
    torch.sub: "subtract",
    operator.mul: "multiply",
    torch.mul: "multiply",
    operator.truediv: "divide",
    torch.div: "divide",
}
_UN = {
    TF.relu: "relu",
    torch.relu: "relu",
    TF.relu6: "relu6",
    torch.sigmoid: "sigmoid",
    TF.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    TF.tanh: "tanh",
    TF.silu: "silu",
    TF.selu: "selu",
    TF.softplus: "softplus",
}
_METHOD_UN = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "contiguous": "identity",
    "clone": "identity",
}
_METHOD_BIN = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide"}


def _basic_index(key: Any) -> bool:
    """Whether ``key`` is an int, a slice of step 1 or a tuple of those."""
    keys = key if isinstance(key, tuple) else (key,)
    return all(
        isinstance(k, int)
        or (
            isinstance(k, slice)
            and k.step in (None, 1)
            and all(isinstance(v, (int, type(None))) for v in (k.start, k.stop))
        )
        for k in keys
    )


class _Builder:
    def __init__(self, net: GraphNet, n_inputs: int) -> None:
        self.net = net
        self.n_inputs = n_inputs
        self.nodes: list[Node] = []
        self.index: dict[str, int] = {}

    def emit(self, node: Node) -> int:
        self.nodes.append(node)
        return self.n_inputs + len(self.nodes) - 1

    def ref(self, arg: Any) -> int:
        if not isinstance(arg, fx.Node):
            raise ConversionError(f"expected a traced value, got {arg!r}")
        return self.index[arg.name]

    def binary(self, n: fx.Node, kind: str, a: Any, b: Any) -> int:
        if isinstance(a, fx.Node) and isinstance(b, fx.Node):
            return self.emit(Node(n.name, kind, [self.ref(a), self.ref(b)]))
        if isinstance(a, fx.Node) and isinstance(b, (int, float)):
            attrs = {"scalar": float(b), "reverse": False}
            return self.emit(Node(n.name, kind, [self.ref(a)], attrs))
        if isinstance(b, fx.Node) and isinstance(a, (int, float)):
            attrs = {"scalar": float(a), "reverse": True}
            return self.emit(Node(n.name, kind, [self.ref(b)], attrs))
        raise ConversionError(f"{kind} of {a!r} and {b!r}")

    def translate(self, n: fx.Node) -> int:
        f, args, kw = n.target, n.args, dict(n.kwargs)
        if n.op == "get_attr":
            return self.emit(Node(n.name, "layer", [], layer=str(f)))
        if n.op == "call_module":
            return self.module(n, str(f), args, kw)
        if n.op == "call_function":
            return self.function(n, f, args, kw)
        if n.op == "call_method":
            return self.method(n, str(f), args, kw)
        raise ConversionError(f"fx op {n.op}")

    def function(self, n: fx.Node, f: Any, args: Any, kw: dict[str, Any]) -> int:
        if f in _BIN and kw.get("alpha", 1) == 1:
            return self.binary(n, _BIN[f], args[0], args[1])
        if f in _UN:
            return self.emit(Node(n.name, _UN[f], [self.ref(args[0])]))
        if f is torch.cat:
            dim = kw.get("dim", args[1] if len(args) > 1 else 0)
            return self.emit(
                Node(n.name, "concat", [self.ref(a) for a in args[0]], {"axis": dim})
            )
        if f is torch.flatten:
            start = kw.get("start_dim", args[1] if len(args) > 1 else 0)
            end = kw.get("end_dim", args[2] if len(args) > 2 else -1)
            attrs = {"start": start, "end": end}
            return self.emit(Node(n.name, "flatten", [self.ref(args[0])], attrs))
        if f in (TF.adaptive_avg_pool2d, TF.adaptive_max_pool2d):
            size = kw.get("output_size", args[1] if len(args) > 1 else None)
            if size not in (1, (1, 1), [1, 1]):
                raise ConversionError(f"adaptive pooling to {size} (only to 1)")
            mode = "avg" if f is TF.adaptive_avg_pool2d else "max"
            return self.emit(
                Node(n.name, "global_pool", [self.ref(args[0])], {"mode": mode})
            )
        if f is torch.mean:
            dim = kw.get("dim", args[1] if len(args) > 1 else None)
            keep = kw.get("keepdim", args[2] if len(args) > 2 else False)
            attrs = {
                "axis": tuple(dim) if isinstance(dim, (list, tuple)) else dim,
                "keepdims": keep,
            }
            return self.emit(Node(n.name, "mean", [self.ref(args[0])], attrs))
        if f is TF.dropout:
            p = kw.get("p", args[1] if len(args) > 1 else 0.5)
            training = kw.get("training", args[2] if len(args) > 2 else True)
            if p == 0 or training is False:
                return self.emit(Node(n.name, "identity", [self.ref(args[0])]))
            raise ConversionError(
                "F.dropout (use nn.Dropout: its masks follow the mode)"
            )
        if f is operator.getitem and isinstance(args[0], fx.Node):
            if not _basic_index(args[1]):
                raise ConversionError(f"indexing with {args[1]!r}")
            return self.emit(
                Node(n.name, "getitem", [self.ref(args[0])], {"key": args[1]})
            )
        name = getattr(f, "__name__", str(f))
        raise ConversionError(f"function {name} is not supported by unified")

    def module(self, n: fx.Node, path: str, args: Any, kw: dict[str, Any]) -> int:
        """A call of a converted module; sequence layers keep PyTorch's calling
        convention (see :func:`unified.interop.graph.torch_call`)."""
        from unified import layers as L

        layer = self.net.sub(path)
        xs = [self.ref(a) for a in args]
        call = None
        if isinstance(layer, (L.LSTM, L.GRU, L.RNN)):
            call = "recurrent"
            if len(args) > 1 or any(v is not None for v in kw.values()):
                raise ConversionError("initial states (only zeros, hx=None)")
            kw = {}
        elif isinstance(layer, L.MultiHeadAttention):
            call = "attention"
        elif isinstance(layer, L.TransformerEncoderLayer):
            call = "encoder"
            if kw.pop("is_causal", False):
                raise ConversionError("is_causal=True (pass the causal src_mask)")
        elif kw:
            raise ConversionError(f"keyword arguments {sorted(kw)}")
        if call is None:
            return self.emit(Node(n.name, "layer", xs, layer=path))
        const = {k: v for k, v in kw.items() if not isinstance(v, fx.Node)}
        refs = [k for k, v in kw.items() if isinstance(v, fx.Node)]
        xs += [self.ref(kw[k]) for k in refs]
        attrs = {"call": call, "kw": const, "kw_inputs": refs}
        return self.emit(Node(n.name, "layer", xs, attrs, layer=path))

    def method(self, n: fx.Node, name: str, args: Any, kw: dict[str, Any]) -> int:
        if name in _METHOD_UN:
            return self.emit(Node(n.name, _METHOD_UN[name], [self.ref(args[0])]))
        if name in _METHOD_BIN:
            return self.binary(n, _METHOD_BIN[name], args[0], args[1])
        if name == "size" and len(args) == 2 and isinstance(args[1], int):
            return self.emit(
                Node(n.name, "size", [self.ref(args[0])], {"dim": args[1]})
            )
        if name in ("view", "reshape"):
            dims = (
                args[1]
                if len(args) == 2 and isinstance(args[1], (tuple, list))
                else args[1:]
            )
            xs = [self.ref(args[0])]
            shape: list[Any] = []
            for d in dims:
                if isinstance(d, fx.Node):
                    xs.append(self.ref(d))
                    shape.append({"ref": len(xs) - 1})
                else:
                    shape.append(int(d))
            return self.emit(Node(n.name, "view", xs, {"shape": shape}))
        if name == "flatten":
            start = kw.get("start_dim", args[1] if len(args) > 1 else 0)
            end = kw.get("end_dim", args[2] if len(args) > 2 else -1)
            attrs = {"start": start, "end": end}
            return self.emit(Node(n.name, "flatten", [self.ref(args[0])], attrs))
        if name == "mean":
            dim = kw.get("dim", args[1] if len(args) > 1 else None)
            keep = kw.get("keepdim", args[2] if len(args) > 2 else False)
            attrs = {
                "axis": tuple(dim) if isinstance(dim, (list, tuple)) else dim,
                "keepdims": keep,
            }
            return self.emit(Node(n.name, "mean", [self.ref(args[0])], attrs))
        raise ConversionError(f"method .{name}() is not supported by unified")


def trace_into(
    net: GraphNet, module: torch.nn.Module, problems: list[str], n_inputs: int | None
) -> None:
    """Trace ``module`` with ``torch.fx`` and store the graph as ``net``'s nodes."""
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as exc:  # noqa: BLE001 - any failure means "not traceable"
        problems.append(
            f"<root> ({type(module).__name__}): torch.fx cannot trace it: {exc}"
        )
        return
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    b = _Builder(net, len(placeholders))
    for i, n in enumerate(placeholders):
        b.index[n.name] = i
    outputs: list[int] = []
    for n in graph.nodes:
        if n.op == "placeholder":
            continue
        if n.op == "output":
            result = n.args[0]
            results = result if isinstance(result, (tuple, list)) else [result]
            try:
                outputs = [b.ref(r) for r in results]
            except (ConversionError, KeyError):
                problems.append("<root>: an output comes from an unsupported node")
            continue
        try:
            b.index[n.name] = b.translate(n)
        except (ConversionError, KeyError) as exc:
            where = n.meta.get("nn_module_stack")
            place = list(where)[-1] if where else "<root>"
            target = getattr(n.target, "__name__", n.target)
            problems.append(f"{place}: node {n.name!r} ({n.op} {target}): {exc}")
    object.__setattr__(net, "nodes", b.nodes)
    object.__setattr__(net, "n_inputs", len(placeholders))
    object.__setattr__(net, "outputs", outputs)
