"""MXNet symbol nodes as graph nodes: the operator table of ``from_gluon``'s tracer.

Every supported MXNet operator maps to one or more :class:`~unified.interop.graph.Node`
steps; parameters feed in by structural name, and layers with state (``BatchNorm``)
or randomness (``Dropout``) are called as the unified child converted from the
Gluon block that created the node. Anything else raises ``ConversionError`` with the
reason, which the tracer collects for its one error listing every place.
"""

from __future__ import annotations

from typing import Any

from unified import layers as L
from unified.interop.graph import ConversionError, GraphNet, Node

_SCALAR = {
    "_plus_scalar": ("add", False),
    "_minus_scalar": ("subtract", False),
    "_rminus_scalar": ("subtract", True),
    "_mul_scalar": ("multiply", False),
    "_div_scalar": ("divide", False),
    "_rdiv_scalar": ("divide", True),
}
_BINARY = {
    "elemwise_add": "add",
    "_Plus": "add",
    "_plus": "add",
    "_add": "add",
    "broadcast_add": "add",
    "broadcast_plus": "add",
    "elemwise_sub": "subtract",
    "_Minus": "subtract",
    "_minus": "subtract",
    "_sub": "subtract",
    "broadcast_sub": "subtract",
    "broadcast_minus": "subtract",
    "elemwise_mul": "multiply",
    "_Mul": "multiply",
    "_mul": "multiply",
    "broadcast_mul": "multiply",
    "elemwise_div": "divide",
    "_Div": "divide",
    "_div": "divide",
    "broadcast_div": "divide",
}
_UNARY = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "_copy": "identity",
    "identity": "identity",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
}
_ACT = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softrelu": "softplus"}


def _lit(value: Any) -> Any:
    from unified.interop.gluon import _lit as lit

    return lit(value)


class GraphBuilder:
    """Translate the nodes of a symbol JSON into ``net``'s graph nodes."""

    def __init__(
        self,
        net: GraphNet,
        names: dict[str, str],
        prefixes: dict[str, str],
        inputs: list[str],
    ) -> None:
        self.net, self.names, self.prefixes, self.inputs = net, names, prefixes, inputs
        self.nodes: list[Node] = []
        self.index: dict[tuple[int, int], int] = {}
        self.params: dict[int, str] = {}

    def place(self, node_name: str) -> str:
        """The structural path of the block a symbol node was created in."""
        best = None
        for prefix in self.prefixes:
            if node_name.startswith(prefix) and (
                best is None or len(prefix) > len(best)
            ):
                best = prefix
        return (self.prefixes.get(best, "") if best is not None else "") or "<root>"

    def emit(self, node: Node) -> int:
        """Append ``node``; return the index of its value."""
        self.nodes.append(node)
        return len(self.inputs) + len(self.nodes) - 1

    def value(self, ref: list[int]) -> int:
        """The value index of an input reference (a parameter gets a fetch node)."""
        key = (ref[0], ref[1])
        if key not in self.index:
            if ref[0] not in self.params:
                raise ConversionError(f"input {ref[0]} comes from an unsupported node")
            name = self.params[ref[0]]
            self.index[key] = self.emit(Node(name, "layer", [], layer=name))
        return self.index[key]

    def build(self, graph: dict[str, Any], path: str, problems: list[str]) -> None:
        for nid, raw in enumerate(graph["nodes"]):
            if raw["op"] == "null":
                name = raw["name"]
                if name in self.inputs:
                    self.index[(nid, 0)] = self.inputs.index(name)
                elif name in self.names:
                    self.params[nid] = self.names[name]
                else:
                    problems.append(f"{path or '<root>'}: unknown variable {name!r}")
                continue
            try:
                self.index[(nid, 0)] = self.translate(raw)
            except ConversionError as exc:
                where = self.place(raw["name"])
                if path:
                    where = path if where == "<root>" else f"{path}.{where}"
                problems.append(
                    f"{where}: node {raw['name']!r} (op {raw['op']}): {exc}"
                )
        outputs = [self.index.get((h[0], h[1]), 0) for h in graph["heads"]]
        object.__setattr__(self.net, "nodes", self.nodes)
        object.__setattr__(self.net, "n_inputs", len(self.inputs))
        object.__setattr__(self.net, "outputs", outputs)

    # -- one operator ------------------------------------------------------------
    def owner(self, raw: dict[str, Any], param_input: int, cls: type) -> str:
        """The path of the unified ``cls`` layer whose parameter feeds input
        ``param_input`` of ``raw``."""
        ref = raw["inputs"][param_input]
        name = self.params.get(ref[0])
        if name is None:
            raise ConversionError("its parameters are computed, not variables")
        path = name.rsplit(".", 1)[0] if "." in name else ""
        target = self.net.sub(path) if path else self.net
        if not isinstance(target, cls):
            raise ConversionError(
                f"{cls.__name__} parameters of a block that is not a Gluon "
                f"{cls.__name__} ({name!r})"
            )
        return path

    def translate(self, raw: dict[str, Any]) -> int:
        op = raw["op"]
        a = {k: _lit(v) for k, v in raw.get("attrs", {}).items()}
        name = raw["name"]
        inputs = raw["inputs"]
        if op in ("Convolution", "Deconvolution"):
            return self._conv(raw, a, op == "Deconvolution")
        if op == "FullyConnected":
            x = self.value(inputs[0])
            if a.get("flatten", True):
                x = self.emit(Node(name + "/flatten", "flatten", [x]))
            args = [x] + [self.value(r) for r in inputs[1:]]
            return self.emit(Node(name, "linear", args))
        if op == "BatchNorm":
            path = self.owner(raw, 1, L.BatchNorm)
            return self.emit(Node(name, "layer", [self.value(inputs[0])], layer=path))
        if op == "Embedding":
            path = self.owner(raw, 1, L.Embedding)
            return self.emit(Node(name, "layer", [self.value(inputs[0])], layer=path))
        if op == "Dropout":
            return self._dropout(raw, a)
        if op == "Activation":
            kind = _ACT.get(a["act_type"])
            if kind is None:
                raise ConversionError(f"act_type {a['act_type']!r}")
            return self.emit(Node(name, kind, [self.value(inputs[0])]))
        if op == "LeakyReLU":
            return self._leaky(raw, a)
        if op == "Pooling":
            from unified.interop.gluon import pool_config

            cfg = pool_config(a)
            if isinstance(cfg, str):
                raise ConversionError(cfg)
            kind = cfg.pop("op")
            return self.emit(Node(name, kind, [self.value(inputs[0])], cfg))
        if op in _BINARY:
            xs = [self.value(r) for r in inputs]
            return self.emit(Node(name, _BINARY[op], xs))
        if op in _SCALAR:
            kind, reverse = _SCALAR[op]
            attrs = {"scalar": float(a["scalar"]), "reverse": reverse}
            return self.emit(Node(name, kind, [self.value(inputs[0])], attrs))
        if op in _UNARY:
            attrs = {"axis": int(a.get("axis", -1))} if "softmax" in op else {}
            if "softmax" in op and a.get("temperature") not in (None, "None", 1, 1.0):
                raise ConversionError("softmax with a temperature")
            return self.emit(Node(name, _UNARY[op], [self.value(inputs[0])], attrs))
        if op in ("Concat", "concat"):
            xs = [self.value(r) for r in inputs]
            return self.emit(Node(name, "concat", xs, {"axis": int(a.get("dim", 1))}))
        if op in ("Flatten", "flatten"):
            return self.emit(Node(name, "flatten", [self.value(inputs[0])]))
        if op == "clip":
            attrs = {"lo": float(a["a_min"]), "hi": float(a["a_max"])}
            return self.emit(Node(name, "clip", [self.value(inputs[0])], attrs))
        if op in ("Reshape", "reshape"):
            shape = tuple(a.get("shape", ()))
            if a.get("reverse") or any(d < -1 for d in shape):
                raise ConversionError(f"reshape to {shape} (only 0, -1 and sizes)")
            return self.emit(
                Node(name, "reshape", [self.value(inputs[0])], {"shape": shape})
            )
        if op == "transpose":
            axes = tuple(a.get("axes", ())) or None
            return self.emit(
                Node(name, "transpose", [self.value(inputs[0])], {"axes": axes})
            )
        if op == "mean":
            if a.get("exclude"):
                raise ConversionError("mean with exclude=True")
            options: dict[str, Any] = {
                "axis": a.get("axis"),
                "keepdims": bool(a.get("keepdims", False)),
            }
            return self.emit(Node(name, "mean", [self.value(inputs[0])], options))
        raise ConversionError("operator not supported by unified")

    def _conv(self, raw: dict[str, Any], a: dict[str, Any], transpose: bool) -> int:
        from unified.interop.gluon import _tuple

        if a.get("layout") not in (None, "None", "NCW", "NCHW"):
            raise ConversionError(f"layout {a.get('layout')!r} (only channels-first)")
        kernel = tuple(a["kernel"])
        n = len(kernel)
        if n not in (1, 2) or (transpose and n != 2):
            raise ConversionError(f"{n}-D {'de' if transpose else ''}convolution")
        attrs: dict[str, Any] = {
            "stride": _tuple(a.get("stride"), n, 1),
            "padding": _tuple(a.get("pad"), n, 0),
            "dilation": _tuple(a.get("dilate"), n, 1),
            "groups": int(a.get("num_group", 1)),
        }
        if transpose:
            if a.get("target_shape") not in (None, "None", (), (0, 0)):
                raise ConversionError("Deconvolution with target_shape")
            attrs["output_padding"] = _tuple(a.get("adj"), n, 0)
        xs = [self.value(r) for r in raw["inputs"]]
        kind = "conv_transpose" if transpose else "conv"
        return self.emit(Node(raw["name"], kind, xs, attrs))

    def _dropout(self, raw: dict[str, Any], a: dict[str, Any]) -> int:
        x = self.value(raw["inputs"][0])
        if a.get("axes") not in (None, (), "None"):
            raise ConversionError(f"Dropout with axes {a.get('axes')}")
        name = raw["name"]
        if name.endswith("fwd"):
            path = self.prefixes.get(name[: -len("fwd")])
            if path:
                target = self.net.sub(path)
                if isinstance(target, L.Dropout):
                    return self.emit(Node(name, "layer", [x], layer=path))
        if float(a.get("p", 0.5)) == 0.0:
            return self.emit(Node(name, "identity", [x]))
        raise ConversionError("F.Dropout outside a gluon.nn.Dropout block")

    def _leaky(self, raw: dict[str, Any], a: dict[str, Any]) -> int:
        x = self.value(raw["inputs"][0])
        kind = a.get("act_type", "leaky")
        name = raw["name"]
        if kind == "leaky":
            attrs = {"alpha": float(a.get("slope", 0.25))}
            return self.emit(Node(name, "leaky_relu", [x], attrs))
        if kind == "elu":
            return self.emit(
                Node(name, "elu", [x], {"alpha": float(a.get("slope", 0.25))})
            )
        if kind in ("selu", "gelu"):
            return self.emit(Node(name, kind, [x]))
        raise ConversionError(f"LeakyReLU act_type {kind!r} (no unified layer)")
