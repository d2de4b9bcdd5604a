"""Interop with native models (SPEC 14): import from Gluon, PyTorch and Flax, export to
PyTorch, Gluon and JAX, and load native checkpoints into unified nets.

Each framework is imported inside the functions that need it, so importing
``unified`` imports none.
"""

from __future__ import annotations

from typing import Any

from unified.interop.graph import ConversionError, GraphNet
from unified.nets import Net


def from_gluon(source: Any, *example_inputs: Any) -> Net:
    """See :func:`unified.interop.gluon.from_gluon`."""
    from unified.interop.gluon import from_gluon as convert

    return convert(source, *example_inputs)


def from_torch(module: Any, *example_inputs: Any) -> Net:
    """See :func:`unified.interop.torch_import.from_torch`."""
    from unified.interop.torch_import import from_torch as convert

    return convert(module, *example_inputs)


def from_flax(module: Any, variables: Any, *example_inputs: Any, **kwargs: Any) -> Net:
    """See :func:`unified.interop.flax_import.from_flax`."""
    from unified.interop.flax_import import from_flax as convert

    return convert(module, variables, *example_inputs, **kwargs)


def load_native(net: Net, source: Any) -> None:
    """See :func:`unified.interop.native.load_native`."""
    from unified.interop.native import load_native as load

    load(net, source)


__all__ = [
    "ConversionError",
    "GraphNet",
    "from_flax",
    "from_gluon",
    "from_torch",
    "load_native",
]
