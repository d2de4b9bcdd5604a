"""Nested arguments and results of the MXNet ``jit``: flattening to a list of
arrays and a structure, and the transfer of host arrays."""

from __future__ import annotations

from typing import Any

import mxnet as mx
import numpy

import unified_mxnet
from unified_mxnet import _nd, _NDArray


class Refused(Exception):
    """Raised inside a trace for what the graphs cannot replay."""


def flatten(tree: Any, leaves: list[Any]) -> Any:
    """The structure of ``tree`` (arrays replaced by their index in ``leaves``).

    NumPy arrays (the ``Trainer``'s private host copies of a batch) are leaves too:
    :func:`transfer` makes them NDArrays.
    """
    if isinstance(tree, _NDArray | numpy.ndarray):
        leaves.append(tree)
        return (len(leaves) - 1,)
    if type(tree) is list or type(tree) is tuple:
        return (type(tree), tuple(flatten(t, leaves) for t in tree))
    if type(tree) is dict:
        return (dict, tuple((k, flatten(v, leaves)) for k, v in tree.items()))
    if tree is None or type(tree) in (int, float, bool, str):
        return ("leaf", tree)
    raise Refused(f"an argument of type {type(tree).__name__}")


_CPU = mx.cpu(0)


def transfer(leaves: list[Any]) -> None:
    """Replace host arrays in ``leaves`` by NDArrays of their dtype, on the context
    of the first NDArray (the device the step runs on)."""
    ctx = next((x.context for x in leaves if isinstance(x, _NDArray)), None)
    for i, x in enumerate(leaves):
        if isinstance(x, numpy.ndarray):
            if ctx is None or ctx == _CPU:
                leaves[i] = unified_mxnet.asarray(x, x.dtype.name)
            else:
                leaves[i] = _nd.array(x, ctx=ctx, dtype=x.dtype)


def unflatten(spec: Any, leaves: list[Any]) -> Any:
    if len(spec) == 1:
        return leaves[spec[0]]
    kind, body = spec
    if kind == "leaf":
        return body
    if kind is dict:
        return {k: unflatten(v, leaves) for k, v in body}
    return kind(unflatten(t, leaves) for t in body)
