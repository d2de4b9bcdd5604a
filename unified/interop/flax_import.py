"""``from_flax``: a Flax Linen module and its variables as a unified net (SPEC 14).

A Linen module has no structure until it is called (``@nn.compact`` creates its
sub-modules inside ``__call__``), so the converter calls it once on the example
inputs under ``jax.make_jaxpr``, with ``nn.intercept_methods`` replacing every
known layer's ``__call__`` by an opaque placeholder. The trace is then a short
program of glue primitives (activations, pooling windows, reshapes, residual adds,
means) between the layers; each becomes a node of a
:class:`~unified.interop.graph.GraphNet` whose children are the converted layers at
Flax's module paths. NNX modules go through the same layers and graph walk
(:mod:`unified.interop.flax_nnx`).

Names and layouts (decided here, documented in docs/porting.md):

* Parameter names are Flax's variable paths joined with dots, the collection left
  out: ``Dense_0.kernel``, ``Dense_0.bias``, ``Conv_0.kernel``, ``BatchNorm_0.scale``,
  ``BatchNorm_0.bias``, ``BatchNorm_0.mean``, ``BatchNorm_0.var`` (``batch_stats``),
  ``LayerNorm_0.scale``, ``Embed_0.embedding``; inside ``nn.Sequential`` the
  modules are ``layers_0``, ``layers_1``, ... as Flax names them.
* Values are held in unified's layouts: a Dense ``kernel`` is stored transposed,
  ``(out, in)``; a Conv ``kernel`` goes from Flax's ``(*window, in, out)`` to
  ``(out, in, *window)``. Everything else keeps its shape.
* Flax computes channels-last (``NHWC``): the converted net takes and returns the
  same arrays as the Flax module; a convolution or pooling window transposes to
  unified's channels-first kernels and back inside the graph.
* ``BatchNorm`` keeps Flax's convention: ``running = momentum * running + (1 -
  momentum) * batch`` with the *biased* batch variance, and Flax's epsilon.
  ``use_running_average``/``deterministic`` are mode switches in Flax; the
  converted net follows unified's modes instead (training inside
  ``value_and_grad``/``Trainer``, inference in a plain call).

Anything else (another module, a primitive without a unified op) is listed, with
its place, in one ``ConversionError``; nothing partial is returned. Flax and JAX
are imported here only.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from unified import layers as L
from unified.interop import common
from unified.interop.flax_graph import CHANNELS_FIRST, CHANNELS_LAST, Walk
from unified.interop.graph import ConversionError, GraphNet, Holder, attach
from unified.nets import Net
from unified.parameters import Parameter


@functools.cache
def _leaf_primitive() -> Any:
    """The placeholder primitive of a converted layer in the trace (made on
    first use, so that importing this module imports neither flax nor JAX)."""
    import jax
    from jax.extend.core import Primitive

    prim = Primitive("unified_flax_layer")
    prim.def_abstract_eval(
        lambda x, *, path, shape, dtype: jax.core.ShapedArray(shape, dtype)
    )
    return prim


class _Layer:
    """A converted Flax layer: the unified layer, the names of its variables
    (Flax's name -> unified entry), how to bring each value into unified's layout,
    and the nodes it expands to (around the layer call)."""

    def __init__(self, layer: Net, names: dict[str, str], shape: tuple[int, ...]):
        self.layer = layer
        self.names = names
        self.shape = shape
        self.pre: list[tuple[str, dict[str, Any]]] = []
        self.post: list[tuple[str, dict[str, Any]]] = []
        self.layouts: dict[str, tuple[int, ...]] = {}


def _pair_padding(
    padding: Any, shape: tuple[int, ...], window: tuple[int, ...], strides, dilation
) -> list[tuple[int, int]] | str:
    """Flax's ``padding`` as one ``(lo, hi)`` pair per spatial dimension."""
    spatial = shape[1:-1]
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return [(0, 0)] * len(spatial)
        if padding.upper() != "SAME":
            return f"padding {padding!r}"
        pads = []
        for size, k, s, d in zip(spatial, window, strides, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return pads
    if isinstance(padding, int):
        return [(padding, padding)] * len(spatial)
    pairs = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    return [(int(a), int(b)) for a, b in pairs]


def _conv(m: Any, shape: tuple[int, ...], kernel: tuple[int, ...]) -> _Layer | str:
    nd = len(kernel) - 2
    if nd not in (1, 2) or len(shape) != nd + 2:
        return f"a {nd}-D convolution on a {len(shape)}-D input (only 1-D and 2-D)"
    if m.input_dilation not in (None, 1) and set(m.input_dilation) != {1}:
        return "input_dilation"
    if getattr(m, "mask", None) is not None:
        return "a kernel mask"
    window = tuple(kernel[:nd])
    strides = _tuple(m.strides, nd)
    dilation = _tuple(m.kernel_dilation, nd)
    pads = _pair_padding(m.padding, shape, window, strides, dilation)
    if isinstance(pads, str):
        return pads
    groups = int(m.feature_group_count)
    out_ch = int(kernel[-1])
    cls: Any = L.Conv1D if nd == 1 else L.Conv2D
    symmetric = all(a == b for a, b in pads)
    layer = cls(
        out_ch,
        window,
        strides=strides,
        padding=tuple(a for a, _ in pads) if symmetric else 0,
        dilation=dilation,
        groups=groups,
        use_bias=m.use_bias,
        in_channels=int(shape[-1]),
    )
    spatial_out = []
    for size, (lo, hi), k, s, d in zip(shape[1:-1], pads, window, strides, dilation):
        spatial_out.append((size + lo + hi - (k - 1) * d - 1) // s + 1)
    out = _Layer(
        common.rename(layer, {"weight": "kernel"}),
        {"kernel": "kernel", "bias": "bias"},
        (shape[0], *spatial_out, out_ch),
    )
    out.pre.append(("transpose", {"axes": CHANNELS_FIRST[nd]}))
    if not symmetric:
        out.pre.append(("pad", {"width": [(0, 0), (0, 0), *pads]}))
    out.post.append(("transpose", {"axes": CHANNELS_LAST[nd]}))
    out.layouts["kernel"] = (nd + 1, nd, *range(nd))
    return out


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    if value is None:
        return (1,) * n
    if isinstance(value, int):
        return (value,) * n
    return tuple(int(v) for v in value)


def _kind(m: Any) -> str | None:
    """Which known layer ``m`` is (Linen or NNX), or ``None``."""
    from flax import linen as fnn
    from flax import nnx

    kinds = {
        fnn.Dense: "dense",
        nnx.Linear: "dense",
        fnn.Conv: "conv",
        nnx.Conv: "conv",
        fnn.BatchNorm: "batch_norm",
        nnx.BatchNorm: "batch_norm",
        fnn.LayerNorm: "layer_norm",
        nnx.LayerNorm: "layer_norm",
        fnn.Dropout: "dropout",
        nnx.Dropout: "dropout",
        fnn.Embed: "embed",
        nnx.Embed: "embed",
    }
    return kinds.get(type(m))


def _leaf(
    m: Any, shape: tuple[int, ...], variables: dict[str, Any]
) -> _Layer | str | None:
    """The converted layer of a known Flax module called on an input of ``shape``;
    a reason string if unified cannot reproduce it; ``None`` if it is not a
    known layer."""
    import jax

    params = variables.get("params", {})
    kind = _kind(m)
    stored = {np.dtype(v.dtype) for v in params.values() if hasattr(v, "dtype")}
    computes = getattr(m, "dtype", None)
    if computes is not None and {np.dtype(computes)} != stored and stored:
        return f"computation dtype {np.dtype(computes).name} with parameters {stored}"
    if kind == "dense":
        general = getattr(m, "dot_general", None)
        if general not in (None, jax.lax.dot_general) or getattr(
            m, "dot_general_cls", None
        ):
            return "a custom dot_general"
        features = int(getattr(m, "features", None) or m.out_features)
        layer = L.Dense(features, in_units=int(shape[-1]), use_bias=m.use_bias)
        out = _Layer(
            common.rename(layer, {"weight": "kernel"}),
            {"kernel": "kernel", "bias": "bias"},
            (*shape[:-1], features),
        )
        out.layouts["kernel"] = (1, 0)
        return out
    if kind == "conv":
        return _conv(m, shape, tuple(params["kernel"].shape))
    if kind == "batch_norm":
        if m.axis not in (-1, len(shape) - 1) or getattr(m, "axis_name", None):
            return f"BatchNorm over axis {m.axis} / axis_name {m.axis_name!r}"
        bn = L.BatchNorm(
            axis=-1,
            momentum=float(m.momentum),
            epsilon=float(m.epsilon),
            center=m.use_bias,
            scale=m.use_scale,
            unbiased_running_var=False,
            in_channels=int(shape[-1]),
        )
        names = {"gamma": "scale", "beta": "bias"}
        names.update({"running_mean": "mean", "running_var": "var"})
        return _Layer(common.rename(bn, names), {v: v for v in names.values()}, shape)
    if kind == "layer_norm":
        if m.reduction_axes not in (-1, (-1,), len(shape) - 1):
            return f"LayerNorm over axes {m.reduction_axes} (only the last)"
        if m.feature_axes not in (-1, (-1,)):
            return f"LayerNorm with feature axes {m.feature_axes}"
        ln = L.LayerNorm(
            epsilon=float(m.epsilon),
            center=m.use_bias,
            scale=m.use_scale,
            in_channels=int(shape[-1]),
        )
        names = {"gamma": "scale", "beta": "bias"}
        return _Layer(common.rename(ln, names), {v: v for v in names.values()}, shape)
    if kind == "dropout":
        if m.broadcast_dims:
            return "Dropout with broadcast_dims"
        return _Layer(L.Dropout(float(m.rate)), {}, shape)
    if kind == "embed":
        emb = L.Embedding(int(m.num_embeddings), int(m.features))
        return _Layer(
            common.rename(emb, {"weight": "embedding"}),
            {"embedding": "embedding"},
            (*shape, int(m.features)),
        )
    return None


def _flat(tree: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """``{path: leaf}`` of a nested mapping of arrays."""
    out: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        path = (*prefix, str(key))
        if hasattr(value, "items"):
            out.update(_flat(value, path))
        else:
            out[path] = value
    return out


class _Tracer:
    """Trace the module once; collect the layers met and the problems found."""

    def __init__(self, module: Any, variables: Any) -> None:
        self.module = module
        self.variables = variables
        self.layers: dict[str, _Layer] = {}
        self.problems: list[str] = []

    def intercept(self, next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        import jax
        from flax import linen as fnn

        m = context.module
        if context.method_name != "__call__" or isinstance(m, fnn.Sequential):
            return next_fun(*args, **kwargs)
        if not m.path:  # the module converted: trace its __call__
            return next_fun(*args, **kwargs)
        path = ".".join(str(p) for p in m.path)
        x = args[0] if args else None
        if x is None or not hasattr(x, "shape"):
            self.problems.append(
                f"{path} ({type(m).__name__}): called without an array"
            )
            return next_fun(*args, **kwargs)
        found = _leaf(m, tuple(x.shape), dict(m.variables))
        if found is None:
            builtin = type(m).__module__.startswith("flax.")
            if not builtin:  # a user module: trace through its __call__
                return next_fun(*args, **kwargs)
            found = "not supported by unified"
        if isinstance(found, str):
            self.problems.append(f"{path} ({type(m).__name__}): {found}")
            try:  # a stand-in of the output's shape: nothing of it is traced
                out = jax.eval_shape(lambda *a: next_fun(*a, **kwargs), *args)
            except Exception:  # noqa: BLE001 - the module is reported already
                return next_fun(*args, **kwargs)
            if not hasattr(out, "shape"):
                return next_fun(*args, **kwargs)
            return _leaf_primitive().bind(
                x, path="?", shape=tuple(out.shape), dtype=out.dtype
            )
        self.layers.setdefault(path, found)
        dtype = x.dtype if _kind(m) != "embed" else np.dtype("float32")
        return _leaf_primitive().bind(
            x, path=path, shape=tuple(found.shape), dtype=dtype
        )

    def trace(self, inputs: list[Any], kwargs: dict[str, Any]) -> Any:
        import jax
        from flax import linen as fnn

        def run(*xs: Any) -> Any:
            with fnn.intercept_methods(self.intercept):
                return self.module.apply(self.variables, *xs, **kwargs)

        return jax.make_jaxpr(run)(*inputs)


def _tree(layers: dict[str, _Layer], extra: dict[str, Parameter]) -> dict[str, Any]:
    """The children of the graph net: Holders along Flax's module paths."""
    root = Holder()
    for path, conv in layers.items():
        parts = path.split(".")
        node: Any = root
        for part in parts[:-1]:
            if part not in node._entries:
                attach(node, part, Holder())
            node = node._entries[part]
        attach(node, parts[-1], conv.layer)
    for path, p in extra.items():
        parts = path.split(".")
        node = root
        for part in parts[:-1]:
            if part not in node._entries:
                attach(node, part, Holder())
            node = node._entries[part]
        attach(node, parts[-1], p)
    return dict(root._entries)


def from_flax(module: Any, variables: Any, *example_inputs: Any, **kwargs: Any) -> Net:
    """Convert a Flax Linen ``module`` with its ``variables`` (``{"params": ...,
    "batch_stats": ...}``) into a unified net (see the module docstring).

    ``example_inputs`` are required: a Linen module builds its layers when it is
    called, so the converter calls it once (``kwargs`` are passed to that call,
    e.g. ``train=False``; they only choose the Python path traced). The result
    lives on the active backend and takes and returns what the module does.
    """
    from flax import linen as fnn
    from flax import nnx

    if isinstance(module, nnx.Module):  # its state lives in the module
        from unified.interop.flax_nnx import from_nnx

        if variables is not None:
            example_inputs = (variables, *example_inputs)
        return from_nnx(module, *example_inputs)
    if not isinstance(module, fnn.Module):
        raise TypeError(
            "from_flax takes a flax.linen or flax.nnx Module, got "
            f"{type(module).__name__}"
        )
    if not example_inputs:
        raise TypeError(
            "from_flax needs example inputs: a Linen module creates its layers when "
            "called, so it is traced once on them"
        )
    inputs = [np.asarray(x) for x in example_inputs]
    tracer = _Tracer(module, variables)
    closed = tracer.trace(inputs, kwargs)
    graph = Walk(len(inputs), tracer.layers)
    outputs = graph.walk(closed.jaxpr, list(range(len(inputs))))
    check(type(module).__name__, tracer.problems + graph.problems, outputs)
    flat = {
        ".".join(k[1:]): (k[0] == "params", np.asarray(v))
        for k, v in _flat(dict(variables)).items()
    }
    return build(type(module).__name__, tracer.layers, graph, outputs, flat)


def check(name: str, problems: list[str], outputs: list[Any]) -> None:
    """Raise one ``ConversionError`` listing every problem, if any."""
    if any(isinstance(o, float) for o in outputs):
        problems.append("an output that is a constant")
    if problems:
        raise ConversionError(
            f"cannot convert {name}: {len(problems)} unsupported "
            "place(s); nothing was converted:\n  " + "\n  ".join(problems)
        )


def build(
    name: str,
    layers: dict[str, _Layer],
    graph: Walk,
    outputs: list[Any],
    flat: dict[str, tuple[bool, np.ndarray]],
) -> Net:
    """The graph net over ``layers``, holding every variable of ``flat`` (dotted
    name -> (trainable, value)) in unified's layout."""
    arrays: dict[str, np.ndarray] = {}
    owned: set[str] = set()
    for path, conv in layers.items():
        for flax_name in conv.names:
            key = f"{path}.{flax_name}" if path else flax_name
            if key not in flat:
                continue  # e.g. no bias
            value = flat[key][1]
            if flax_name in conv.layouts:
                value = value.transpose(conv.layouts[flax_name])
            arrays[key] = value
            owned.add(key)
    extra = {}
    for key, (trainable, value) in flat.items():
        if key in owned:
            continue
        extra[key] = Parameter(
            key.split(".")[-1],
            tuple(value.shape),
            str(value.dtype),
            trainable=trainable,
        )
        arrays[key] = value
    net = GraphNet(_tree(layers, extra), graph.nodes, graph.n_inputs, outputs)
    common.materialize(net, arrays, f"flax {name}")
    return net
