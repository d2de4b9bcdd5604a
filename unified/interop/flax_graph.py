"""The jaxpr walk of ``from_flax`` (SPEC 14): a traced Flax call, its known layers
already replaced by placeholders (``unified_flax_layer``), into the nodes of a
:class:`~unified.interop.graph.GraphNet`.

Nested calls (``jit``, ``custom_jvp_call``, ...) are inlined; host constants
(literals, a window size) stay Python floats; every primitive without a unified
op is listed with its place (the caller raises one ``ConversionError``), a
stand-in value letting the walk go on so that all of them are found.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unified.interop.graph import Node

CHANNELS_FIRST = {1: (0, 2, 1), 2: (0, 3, 1, 2)}
"""Flax's channels-last layout to unified's channels-first, per spatial rank."""
CHANNELS_LAST = {1: (0, 2, 1), 2: (0, 2, 3, 1)}
"""And back."""


class Walk:
    """Walk a jaxpr into graph nodes (inlining nested calls)."""

    def __init__(self, n_inputs: int, layers: dict[str, Any]) -> None:
        """``layers``: the converted layers by path (``flax_import._Layer``: the
        unified layer, and the ``pre``/``post`` nodes around its call)."""
        self.nodes: list[Node] = []
        self.n_inputs = n_inputs
        self.layers = layers
        self.env: dict[Any, int] = {}
        self.scalars: dict[Any, float] = {}
        self.sum_pools: dict[Any, tuple[int, float]] = {}
        self.problems: list[str] = []

    def emit(self, name: str, op: str, inputs: list[Any], **attrs: Any) -> int:
        layer = attrs.pop("layer", None)
        self.nodes.append(Node(name, op, inputs, attrs, layer))
        return self.n_inputs + len(self.nodes) - 1

    def read(self, var: Any) -> Any:
        """The node index of ``var``, or its value if it is a host constant."""
        if hasattr(var, "val"):  # a literal
            return float(np.asarray(var.val))
        if var in self.scalars:
            return self.scalars[var]
        if var in self.sum_pools:  # a sum of a window used as a sum: avg * count
            index, count = self.sum_pools.pop(var)
            self.env[var] = self.emit("sum_pool", "multiply", [index], scalar=count)
        if var not in self.env:  # a closed-over array: a variable read outside
            self.problems.append(  # a known layer, or a constant
                f"an array of shape {tuple(var.aval.shape)} read outside a known "
                "layer (a parameter or a constant)"
            )
            self.env[var] = 0
        return self.env[var]

    def walk(self, jaxpr: Any, args: list[Any]) -> list[Any]:
        inner = dict(zip(jaxpr.invars, args))
        for var, index in inner.items():
            self.bind(var, index)
        for eqn in jaxpr.eqns:
            self.equation(eqn)
        return [self.read(v) for v in jaxpr.outvars]

    def bind(self, var: Any, value: Any) -> None:
        if isinstance(value, float):
            self.scalars[var] = value
        else:
            self.env[var] = value

    def equation(self, eqn: Any) -> None:
        prim = eqn.primitive.name
        p = eqn.params
        out = eqn.outvars[0]
        where = f"{prim} -> {tuple(out.aval.shape)}"
        nested = p.get("jaxpr") or p.get("call_jaxpr") or p.get("fun_jaxpr")
        if nested is not None and prim in (
            "pjit",
            "jit",
            "closed_call",
            "custom_jvp_call",
            "custom_vjp_call",
            "custom_vjp_call_jaxpr",
        ):
            inner = getattr(nested, "jaxpr", nested)
            consts = getattr(nested, "consts", [])
            if consts:
                self.problems.append(f"{where}: a call closing over constants")
                for var in eqn.outvars:
                    self.env[var] = 0
                return
            n = len(inner.invars)
            results = self.walk(inner, [self.read(v) for v in eqn.invars[:n]])
            for var, value in zip(eqn.outvars, results):
                self.bind(var, value)
            return
        if prim == "unified_flax_layer":
            if eqn.params["path"] == "?":  # an unsupported module (listed)
                self.env[out] = 0
                return
            self.layer(eqn)
            return
        ins = eqn.invars
        if prim == "convert_element_type":
            if (
                hasattr(ins[0], "val")
                or ins[0] in self.scalars
                or ins[0].aval.dtype == p["new_dtype"]
            ):
                self.bind(out, self.read(ins[0]))
                return
            self.problems.append(f"{where}: a dtype conversion")
            self.env[out] = 0
            return
        if all(hasattr(v, "val") or v in self.scalars for v in ins) and prim in (
            "add",
            "sub",
            "mul",
            "div",
        ):  # host arithmetic on constants (e.g. a window size)
            a, b = (float(self.read(v)) for v in ins)
            ops = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}
            self.scalars[out] = ops[prim]
            return
        handler = getattr(self, "p_" + prim, None)
        result = None
        if handler is None:
            self.problems.append(f"{where}: primitive {prim!r} has no unified op")
        else:
            result = handler(eqn, where)
        for var in eqn.outvars:  # after a problem: a stand-in, to list them all
            if var not in self.scalars:
                self.env[var] = 0 if result is None else result

    def layer(self, eqn: Any) -> None:
        path = eqn.params["path"]
        conv = self.layers[path]
        index = self.read(eqn.invars[0])
        for op, attrs in conv.pre:
            index = self.emit(f"{path}:{op}", op, [index], **attrs)
        index = self.emit(path, "layer", [index], layer=path)
        for op, attrs in conv.post:
            index = self.emit(f"{path}:{op}", op, [index], **attrs)
        self.env[eqn.outvars[0]] = index

    # -- glue primitives -------------------------------------------------------

    def _binary(self, eqn: Any, op: str) -> int:
        a, b = (self.read(v) for v in eqn.invars)
        if isinstance(b, float):
            return self.emit(op, op, [a], scalar=b)
        if isinstance(a, float):
            return self.emit(op, op, [b], scalar=a, reverse=True)
        return self.emit(op, op, [a, b])

    def p_add(self, eqn: Any, where: str) -> int:
        return self._binary(eqn, "add")

    def p_sub(self, eqn: Any, where: str) -> int:
        return self._binary(eqn, "subtract")

    def p_mul(self, eqn: Any, where: str) -> int:
        return self._binary(eqn, "multiply")

    def p_div(self, eqn: Any, where: str) -> int:
        a, b = eqn.invars
        if a in self.sum_pools and isinstance(self.read(b), float):
            index, count = self.sum_pools[a]
            if float(self.read(b)) == count:  # Flax's avg_pool: sum / window size
                return index
        return self._binary(eqn, "divide")

    def p_max(self, eqn: Any, where: str) -> int | None:
        a, b = (self.read(v) for v in eqn.invars)
        if isinstance(b, float) and b == 0.0 and not isinstance(a, float):
            return self.emit("relu", "relu", [a])
        if isinstance(a, float) and a == 0.0 and not isinstance(b, float):
            return self.emit("relu", "relu", [b])
        return self._binary(eqn, "maximum")

    def p_min(self, eqn: Any, where: str) -> int:
        return self._binary(eqn, "minimum")

    def p_gt(self, eqn: Any, where: str) -> int:
        return self._binary(eqn, "greater")

    def p_lt(self, eqn: Any, where: str) -> int:
        return self._binary(eqn, "less")

    def p_select_n(self, eqn: Any, where: str) -> int | None:
        if len(eqn.invars) != 3 or eqn.invars[0].aval.dtype != np.bool_:
            self.problems.append(f"{where}: a select of other than two cases")
            return None
        pred, no, yes = (self.read(v) for v in eqn.invars)
        cases = {"yes": yes, "no": no}
        consts = {k: v for k, v in cases.items() if isinstance(v, float)}
        arrays = [v for k, v in cases.items() if k not in consts]
        return self.emit("select", "where", [pred, *arrays], **consts)

    def p_expm1(self, eqn: Any, where: str) -> int:
        e = self._unary(eqn, "exp")
        return self.emit("expm1", "subtract", [e], scalar=1.0)

    def p_logistic(self, eqn: Any, where: str) -> int:
        return self.emit("sigmoid", "sigmoid", [self.read(eqn.invars[0])])

    def p_tanh(self, eqn: Any, where: str) -> int:
        return self.emit("tanh", "tanh", [self.read(eqn.invars[0])])

    def _unary(self, eqn: Any, fn: str) -> int:
        return self.emit(fn, "unary", [self.read(eqn.invars[0])], fn=fn)

    def p_exp(self, eqn: Any, where: str) -> int:
        return self._unary(eqn, "exp")

    def p_log(self, eqn: Any, where: str) -> int:
        return self._unary(eqn, "log")

    def p_sqrt(self, eqn: Any, where: str) -> int:
        return self._unary(eqn, "sqrt")

    def p_neg(self, eqn: Any, where: str) -> int:
        return self._unary(eqn, "negative")

    def p_abs(self, eqn: Any, where: str) -> int:
        return self._unary(eqn, "abs")

    def p_integer_pow(self, eqn: Any, where: str) -> int | None:
        y = int(eqn.params["y"])
        if y < 1:
            self.problems.append(f"{where}: integer power {y}")
            return None
        x = self.read(eqn.invars[0])
        out = x
        for _ in range(y - 1):
            out = self.emit("pow", "multiply", [out, x])
        return out

    def p_reshape(self, eqn: Any, where: str) -> int:
        x = eqn.invars[0]
        shape = list(eqn.params["new_sizes"])
        old = tuple(x.aval.shape)
        if shape and old and shape[0] == old[0]:
            shape[0] = 0  # keep the batch dimension whatever its size
        return self.emit("reshape", "reshape", [self.read(x)], shape=tuple(shape))

    def p_broadcast_in_dim(self, eqn: Any, where: str) -> int | None:
        """A broadcast as a reshape to ones in the new axes; the binary op that
        reads it broadcasts (the values are equal)."""
        x = eqn.invars[0]
        if hasattr(x, "val") or x in self.scalars:  # a constant stays a scalar
            self.scalars[eqn.outvars[0]] = float(self.read(x))
            return None
        old = tuple(x.aval.shape)
        dims = tuple(eqn.params["broadcast_dimensions"])
        shape = [1] * len(eqn.params["shape"])
        for j, i in enumerate(dims):
            shape[i] = old[j]
        if dims and dims[0] == 0 and old:
            shape[0] = 0  # keep the batch dimension whatever its size
        return self.emit("broadcast", "reshape", [self.read(x)], shape=tuple(shape))

    def p_transpose(self, eqn: Any, where: str) -> int:
        axes = tuple(eqn.params["permutation"])
        return self.emit(
            "transpose", "transpose", [self.read(eqn.invars[0])], axes=axes
        )

    def p_concatenate(self, eqn: Any, where: str) -> int:
        xs = [self.read(v) for v in eqn.invars]
        return self.emit("concat", "concat", xs, axis=int(eqn.params["dimension"]))

    def p_reduce_sum(self, eqn: Any, where: str) -> int:
        axes = tuple(eqn.params["axes"])
        return self.emit(
            "sum", "reduce", [self.read(eqn.invars[0])], fn="sum", axes=axes
        )

    def p_reduce_max(self, eqn: Any, where: str) -> int:
        axes = tuple(eqn.params["axes"])
        return self.emit(
            "max", "reduce", [self.read(eqn.invars[0])], fn="max", axes=axes
        )

    def _window(self, eqn: Any, where: str, mode: str) -> int | None:
        p = eqn.params
        dims, strides = p["window_dimensions"], p["window_strides"]
        pads = p["padding"]
        nd = len(dims) - 2
        if (
            nd not in (1, 2)
            or dims[0] != 1
            or dims[-1] != 1
            or strides[0] != 1
            or strides[-1] != 1
            or set(p["base_dilation"]) != {1}
            or set(p["window_dilation"]) != {1}
            or tuple(pads[0]) != (0, 0)
            or tuple(pads[-1]) != (0, 0)
            or any(lo != hi for lo, hi in pads[1:-1])
        ):
            self.problems.append(f"{where}: a window other than a channels-last pool")
            return None
        x = self.emit(
            "pool:in", "transpose", [self.read(eqn.invars[0])], axes=CHANNELS_FIRST[nd]
        )
        y = self.emit(
            "pool",
            "pool",
            [x],
            mode=mode,
            kernel=tuple(dims[1:-1]),
            stride=tuple(strides[1:-1]),
            padding=tuple(lo for lo, _ in pads[1:-1]),
            ceil_mode=False,
            count_include_pad=True,
        )
        return self.emit("pool:out", "transpose", [y], axes=CHANNELS_LAST[nd])

    def p_reduce_window_max(self, eqn: Any, where: str) -> int | None:
        return self._window(eqn, where, "max")

    def p_reduce_window_sum(self, eqn: Any, where: str) -> None:
        index = self._window(eqn, where, "avg")
        if index is not None:
            count = float(math.prod(eqn.params["window_dimensions"]))
            self.sum_pools[eqn.outvars[0]] = (index, count)
        return None
