"""Update graphs of the MXNet ``jit`` with their coefficients as scalar attributes.

The ``Trainer``'s compiled step reads its coefficients (learning rates, momentum
factors, bias corrections) from a small array, element by element: in the update
graph each is a 0-d array, and multiplying a parameter-sized array by it is a
``broadcast_mul``, about 3x slower than the eager step's ``_mul_scalar`` (MXNet's
broadcast kernel is not vectorized; on a 512x784 float32 array 0.47 ms against
0.15 ms). :class:`Specializer` rewrites the graph for the coefficient values of a
call: every broadcast operator between an array and a coefficient becomes the
matching scalar operator with the value as its ``scalar`` attribute, and the 0-d
arithmetic between coefficients (``-lr``) is done on the host in the same dtype.
The products are the same: the scalar operators compute in the array's dtype with
the attribute cast to it, which is exactly the coefficient (its ``repr`` as a
double is exact), and IEEE arithmetic on the host rounds as MXNet's 0-d kernels.

A graph is built per distinct set of values (plain SGD has two: the first step's
momentum factor is 0); a program whose values keep changing (Adam's bias
corrections) stops specializing after :data:`LIMIT` of them and keeps the generic
graph.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import mxnet as mx
import numpy

LIMIT = 8
"""Specialized graphs kept per program before falling back to the generic one."""

# broadcast operator -> scalar operator, coefficient on the right / on the left
_SCALAR_OPS = {
    "broadcast_mul": ("_mul_scalar", "_mul_scalar"),
    "broadcast_add": ("_plus_scalar", "_plus_scalar"),
    "broadcast_sub": ("_minus_scalar", "_rminus_scalar"),
    "broadcast_div": ("_div_scalar", "_rdiv_scalar"),
}
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "broadcast_mul": lambda a, b: a * b,
    "broadcast_add": lambda a, b: a + b,
    "broadcast_sub": lambda a, b: a - b,
    "broadcast_div": lambda a, b: a / b,
}
_WITH_SCALAR: dict[str, Callable[[Any, Any], Any]] = {
    "_mul_scalar": lambda v, s: v * s,
    "_plus_scalar": lambda v, s: v + s,
    "_minus_scalar": lambda v, s: v - s,
    "_rminus_scalar": lambda v, s: s - v,
    "_div_scalar": lambda v, s: v / s,
    "_rdiv_scalar": lambda v, s: s / v,
}
_ZERO_D = ("[]", "()")


def _is_0d_reshape(node: dict[str, Any]) -> bool:
    attrs = node.get("attrs", {})
    if node["op"] == "_np_reshape":
        return attrs.get("newshape") in _ZERO_D
    return node["op"] == "Reshape" and attrs.get("shape") in _ZERO_D


class Specializer:
    """Rewrites of one update graph (JSON) for the values of its table inputs."""

    def __init__(self, graph: dict[str, Any], tables: list[str]) -> None:
        self.graph = graph
        nodes = graph["nodes"]
        index = {
            nodes[i]["name"]: i for i in range(len(nodes)) if nodes[i]["op"] == "null"
        }
        self.tables = [t for t in tables if t in index]
        # (node, output) of each SliceChannel output -> (table, flat index)
        self.raw: dict[tuple[int, int], tuple[str, int]] = {}
        for i, node in enumerate(nodes):
            if node["op"] != "SliceChannel" or len(node["inputs"]) != 1:
                continue
            src = nodes[node["inputs"][0][0]]
            if src["op"] != "Reshape" or len(src["inputs"]) != 1:
                continue
            var = nodes[src["inputs"][0][0]]
            if var["op"] == "null" and var["name"] in self.tables:
                count = int(node.get("attrs", {}).get("num_outputs", "0"))
                for k in range(count):
                    self.raw[(i, k)] = (var["name"], k)

    @property
    def useful(self) -> bool:
        """Whether the graph reads any table element."""
        return bool(self.raw)

    def build(self, values: dict[str, numpy.ndarray]) -> Any:
        """The graph with the coefficients ``values`` (table name -> host array)
        baked in, as a symbol."""
        graph = json.loads(json.dumps(self.graph))
        nodes = graph["nodes"]
        known: dict[tuple[int, int], Any] = {}  # 0-d coefficient values
        for i, node in enumerate(nodes):
            ins = [(e[0], e[1]) for e in node["inputs"]]
            op = node["op"]
            if _is_0d_reshape(node) and len(ins) == 1 and ins[0] in self.raw:
                name, k = self.raw[ins[0]]
                known[(i, 0)] = values[name].reshape(-1)[k]
            elif _is_0d_reshape(node) or op == "_copy":
                if len(ins) == 1 and ins[0] in known:
                    known[(i, 0)] = known[ins[0]]
            elif op == "negative" and len(ins) == 1 and ins[0] in known:
                known[(i, 0)] = -known[ins[0]]
            elif op in _WITH_SCALAR and len(ins) == 1 and ins[0] in known:
                v = known[ins[0]]
                s = type(v)(float(node["attrs"]["scalar"]))
                known[(i, 0)] = _WITH_SCALAR[op](v, s)
            elif op in _SCALAR_OPS and len(ins) == 2:
                a, b = (known.get(e) for e in ins)
                if a is not None and b is not None:
                    known[(i, 0)] = _BINARY[op](a, b)
                elif a is not None or b is not None:
                    right = b is not None
                    value = b if right else a
                    node["op"] = _SCALAR_OPS[op][0 if right else 1]
                    node["inputs"] = [node["inputs"][0 if right else 1]]
                    node["attrs"] = {"scalar": repr(float(value))}
        return mx.sym.load_json(json.dumps(graph))
