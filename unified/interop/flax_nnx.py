"""``from_flax`` for Flax NNX modules (SPEC 14); the Linen converter's layers,
graph walk and naming (:mod:`unified.interop.flax_import`) with NNX's own state.

An NNX module holds its variables: ``U.from_flax(model, x)`` (or
``U.from_flax(model, None, x)``). Names are the module's graph paths joined with
dots: ``layers.0.kernel`` in an ``nnx.Sequential``, ``conv1.kernel``,
``bn.mean``/``bn.var`` (``BatchStat``, state parameters), ``linear.bias``. Only
``nnx.Param`` and ``nnx.BatchStat`` variables are parameters (random-number
streams are not). The known layers' ``__call__`` are replaced by placeholders
for the duration of one ``jax.make_jaxpr`` trace and restored afterwards; another
Flax module is listed with its path in the one ``ConversionError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unified.interop import flax_import as F
from unified.nets import Net


def from_nnx(model: Any, *example_inputs: Any) -> Net:
    """Convert the NNX ``model`` by tracing it once on ``example_inputs``."""
    import jax
    from flax import nnx

    if not example_inputs:
        raise TypeError(
            "from_flax needs example inputs: the module is traced once on them"
        )
    paths: dict[int, str] = {}
    flat: dict[str, tuple[bool, np.ndarray]] = {}
    classes: set[type] = set()
    for path, node in nnx.iter_graph(model):
        name = ".".join(str(p) for p in path)
        if isinstance(node, (nnx.Param, nnx.BatchStat)):
            flat[name] = (isinstance(node, nnx.Param), np.asarray(node.value))
        elif isinstance(node, nnx.Module):
            paths.setdefault(id(node), name)
            builtin = type(node).__module__.startswith("flax.")
            if builtin and not isinstance(node, nnx.Sequential):
                classes.add(type(node))
    layers: dict[str, F._Layer] = {}
    problems: list[str] = []

    def patched(cls: type, original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            path = paths.get(id(self), "?")
            x = args[0]
            params = {
                k: getattr(self, k).value
                for k in ("kernel", "bias", "scale", "embedding")
                if isinstance(getattr(self, k, None), nnx.Param)
            }
            found = F._leaf(self, tuple(x.shape), {"params": params})
            if found is None:
                found = "not supported by unified"
            if isinstance(found, str):
                problems.append(f"{path} ({cls.__name__}): {found}")
                try:  # a stand-in of the output's shape: nothing of it is traced
                    out = jax.eval_shape(lambda *a: original(self, *a, **kwargs), *args)
                    return F._leaf_primitive().bind(
                        x, path="?", shape=tuple(out.shape), dtype=out.dtype
                    )
                except Exception:  # noqa: BLE001 - the module is reported already
                    return original(self, *args, **kwargs)
            layers.setdefault(path, found)
            dtype = x.dtype if F._kind(self) != "embed" else np.dtype("float32")
            return F._leaf_primitive().bind(
                x, path=path, shape=tuple(found.shape), dtype=dtype
            )

        return call

    inputs = [np.asarray(x) for x in example_inputs]
    saved = {cls: cls.__dict__.get("__call__") for cls in classes}
    try:
        for cls in classes:
            setattr(cls, "__call__", patched(cls, cls.__call__))  # noqa: B010
        closed = jax.make_jaxpr(lambda *xs: model(*xs))(*inputs)
    finally:
        for cls, original in saved.items():
            if original is None:
                delattr(cls, "__call__")
            else:
                setattr(cls, "__call__", original)  # noqa: B010
    graph = F.Walk(len(inputs), layers)
    outputs = graph.walk(closed.jaxpr, list(range(len(inputs))))
    F.check(type(model).__name__, problems + graph.problems, outputs)
    return F.build(type(model).__name__, layers, graph, outputs, flat)
