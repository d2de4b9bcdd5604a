"""``from_gluon``: a Gluon ``Block`` (or its export files) as a unified net (SPEC 14).

Known layers convert one to one (``HybridSequential`` -> ``Sequential``, ``Dense``
keeps its ``flatten``, ``BatchNorm`` keeps Gluon's momentum and biased running
variance, pooling keeps its rounding); a block with its own ``hybrid_forward`` (the
model zoo's residual blocks, ``Inception3``, ...) converts by tracing its symbol
graph into a :class:`~unified.interop.graph.GraphNet`. Parameter names are Gluon's
structural names (``features.0.weight``, ``output.bias``: the keys of
``block._collect_params_with_prefix()``) and values are copied bit for bit.
MXNet is imported inside the functions only.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import numpy as np

from unified import layers as L
from unified.interop import common
from unified.interop.graph import (
    Concurrent,
    ConversionError,
    GraphNet,
    Holder,
    Identity,
    attach,
)
from unified.nets import Net, Sequential
from unified.parameters import Parameter

_ACTS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softrelu": "softrelu"}
"""Gluon ``Activation`` types unified reproduces (``softsign`` is not one)."""


def _mx() -> Any:
    from unified.interop.common import mxnet

    mx = mxnet()

    return mx


def _lit(value: Any) -> Any:
    """An MXNet attribute string (``'(3, 3)'``, ``'True'``, ``'1e-05'``) as Python."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _tuple(value: Any, n: int, default: int) -> tuple[int, ...]:
    value = _lit(value)
    if value is None or value == ():
        return (default,) * n
    if isinstance(value, int):
        return (value,) * n
    return tuple(int(v) for v in value)


# -- pooling ------------------------------------------------------------------------
def pool_config(attrs: dict[str, Any]) -> dict[str, Any] | str:
    """The unified pooling of MXNet ``Pooling`` attributes, or why there is none.

    Gluon's ``'valid'`` convention rounds the window count down (``ceil_mode=False``);
    ``'full'`` rounds it up without PyTorch's rule that drops a last window starting
    in the right padding. The two agree whenever ``padding + stride <= kernel`` in
    every dimension (such a window cannot exist), which is when ``'full'`` converts.
    """
    mode = _lit(attrs.get("pool_type", "max"))
    if mode not in ("max", "avg"):
        return f"pool_type {mode!r} (only max and avg)"
    layout = _lit(attrs.get("layout"))
    if layout not in (None, "None", "NCW", "NCHW"):
        return f"layout {layout!r} (only channels-first NCW/NCHW)"
    if _lit(attrs.get("global_pool", False)):
        return {"op": "global_pool", "mode": mode}
    kernel = _tuple(attrs["kernel"], len(_lit(attrs["kernel"])), 1)
    n = len(kernel)
    if n not in (1, 2):
        return f"{n}-D pooling (only 1-D and 2-D)"
    stride = _tuple(attrs.get("stride"), n, 1)
    pad = _tuple(attrs.get("pad"), n, 0)
    convention = _lit(attrs.get("pooling_convention", "valid"))
    if convention not in ("valid", "full"):
        return f"pooling_convention {convention!r}"
    if convention == "full" and any(p + s > k for p, s, k in zip(pad, stride, kernel)):
        return (
            f"pooling_convention 'full' with kernel {kernel}, stride {stride}, pad "
            f"{pad}: a last window may start in the padding, which PyTorch's "
            "ceil_mode drops and Gluon keeps"
        )
    if any(2 * p > k for p, k in zip(pad, kernel)):
        return f"padding {pad} larger than half the kernel {kernel}"
    include = _lit(attrs.get("count_include_pad", True))
    return {
        "op": "pool",
        "mode": mode,
        "kernel": kernel,
        "stride": stride,
        "padding": pad,
        "ceil_mode": convention == "full",
        "count_include_pad": True if include in (None, "None") else bool(include),
    }


def _pool_layer(block: Any, cfg: dict[str, Any]) -> Net:
    n = 1 if "1D" in type(block).__name__ else 2
    if cfg["op"] == "global_pool":
        return {
            ("avg", 1): L.GlobalAvgPool1D,
            ("avg", 2): L.GlobalAvgPool2D,
            ("max", 1): L.GlobalMaxPool1D,
            ("max", 2): L.GlobalMaxPool2D,
        }[(cfg["mode"], n)]()
    if cfg["mode"] == "max":
        cls: Any = L.MaxPool1D if n == 1 else L.MaxPool2D
        return cls(cfg["kernel"], cfg["stride"], cfg["padding"], cfg["ceil_mode"])
    cls = L.AvgPool1D if n == 1 else L.AvgPool2D
    return cls(
        cfg["kernel"],
        cfg["stride"],
        cfg["padding"],
        cfg["ceil_mode"],
        cfg["count_include_pad"],
    )


# -- leaves -------------------------------------------------------------------------
def _act_name(block: Any) -> str | None | ConversionError:
    act = getattr(block, "act", None)
    if act is None:
        return None
    name = _ACTS.get(act._act_type)
    return name if name else ConversionError(f"activation {act._act_type!r}")


def leaf(block: Any) -> Net | str | None:
    """The unified layer of a known Gluon leaf block; a reason string if it is a
    known block unified cannot reproduce; ``None`` if it is not a leaf."""
    mx = _mx()
    nn = mx.gluon.nn
    kind = type(block).__name__
    if isinstance(block, nn.Dense):
        act = _act_name(block)
        if isinstance(act, ConversionError):
            return str(act)
        w = block.weight.shape
        return L.Dense(
            w[0],
            activation=act,
            in_units=w[1] or None,
            use_bias=block.bias is not None,
            flatten=bool(block._flatten),
        )
    if type(block) in (nn.Conv1D, nn.Conv2D, nn.Conv2DTranspose):
        return _conv_leaf(block)
    if isinstance(block, nn.conv_layers._Pooling) and type(block).__module__.endswith(
        "conv_layers"
    ):
        cfg = pool_config(block._kwargs)
        return cfg if isinstance(cfg, str) else _pool_layer(block, cfg)
    if type(block) is nn.BatchNorm:
        kw = block._kwargs
        if kw["axis"] != 1:
            return f"BatchNorm axis {kw['axis']} (only the channel axis 1)"
        return L.BatchNorm(
            axis=1,
            momentum=kw["momentum"],
            epsilon=kw["eps"],
            use_global_stats=bool(kw["use_global_stats"]),
            unbiased_running_var=False,
            in_channels=block.gamma.shape[0],
        )
    if type(block) is nn.LayerNorm:
        kw = block._kwargs
        return L.LayerNorm(
            axis=kw["axis"],
            epsilon=kw["eps"],
            center=kw["center"],
            scale=kw["scale"],
            in_channels=block.gamma.shape[0],
        )
    if type(block) is nn.Activation:
        name = _ACTS.get(block._act_type)
        return L.Activation(name) if name else f"activation {block._act_type!r}"
    simple = {
        nn.LeakyReLU: lambda b: L.LeakyReLU(b._alpha),
        nn.ELU: lambda b: L.ELU(b._alpha),
        nn.SELU: lambda b: L.SELU(),
        nn.GELU: lambda b: L.GELU(),
        nn.Flatten: lambda b: L.Flatten(),
    }
    if type(block) in simple:
        return simple[type(block)](block)
    if type(block) is nn.Swish:
        return L.SiLU() if block._beta == 1.0 else f"Swish with beta {block._beta}"
    if type(block) is nn.Dropout:
        if block._axes:
            return f"Dropout with axes {block._axes}"
        return L.Dropout(block._rate)
    if type(block) is nn.Embedding:
        kw = block._kwargs
        return L.Embedding(kw["input_dim"], kw["output_dim"])
    if kind == "Identity" and not block._children and not block._reg_params:
        return Identity()
    if type(block) is nn.PReLU:
        return "PReLU (unified has no PReLU layer)"
    if isinstance(block, mx.gluon.rnn.rnn_layer._RNNLayer):
        return _recurrent_leaf(block)
    return None


def _recurrent_leaf(block: Any) -> Net | str:
    """``gluon.rnn.RNN/LSTM/GRU`` as the unified layer, its parameters listed
    under Gluon's structural keys (``_unfused.0.l_cell.i2h_weight``, see
    :func:`unified.layers.recurrent.gluon_file_name`)."""
    from unified.layers.recurrent import gluon_file_name, rename

    refused = []
    if getattr(block, "_projection_size", None):
        refused.append(f"projection_size={block._projection_size}")
    clip = (block._lstm_state_clip_min, block._lstm_state_clip_max)
    if block._mode == "lstm" and clip != (None, None):
        refused.append("state clipping")
    if getattr(block, "_use_sequence_length", False):
        refused.append("use_sequence_length")
    if refused:
        return ", ".join(refused) + " (unified's recurrent layers have none)"
    kw: dict[str, Any] = {
        "num_layers": block._num_layers,
        "layout": block._layout,
        "dropout": float(block._dropout),
        "bidirectional": block._dir == 2,
        "input_size": block.l0_i2h_weight.shape[1],
        "dtype": np.dtype(block._dtype).name,
    }
    mode = block._mode
    if mode.startswith("rnn_"):
        layer: Any = L.RNN(block._hidden_size, activation=mode[4:], **kw)
    else:
        layer = (L.LSTM if mode == "lstm" else L.GRU)(block._hidden_size, **kw)
    bidirectional = block._dir == 2
    return rename(layer, lambda own: gluon_file_name(own, bidirectional))


def _conv_leaf(block: Any) -> Net | str:
    kw = block._kwargs
    if kw["layout"] not in ("NCW", "NCHW"):
        return f"layout {kw['layout']!r} (only channels-first)"
    act = _act_name(block)
    if isinstance(act, ConversionError):
        return str(act)
    w = block.weight.shape
    transpose = block._op_name == "Deconvolution"
    common_kw: dict[str, Any] = {
        "strides": kw["stride"],
        "padding": kw["pad"],
        "dilation": kw["dilate"],
        "groups": kw["num_group"],
        "activation": act,
        "use_bias": not kw["no_bias"],
    }
    if transpose:
        return L.Conv2DTranspose(
            kw["num_filter"],
            kw["kernel"],
            output_padding=kw.get("adj", 0),
            in_channels=w[0],
            **common_kw,
        )
    cls: Any = L.Conv1D if len(kw["kernel"]) == 1 else L.Conv2D
    return cls(
        kw["num_filter"],
        kw["kernel"],
        in_channels=w[1] * kw["num_group"] or 0,
        **common_kw,
    )


# -- the tree -----------------------------------------------------------------------
def _kind(block: Any) -> str:
    mx = _mx()
    nn = mx.gluon.nn
    if type(block) in (nn.HybridSequential, nn.Sequential):
        return "sequential"
    name = type(block).__name__
    if name in ("HybridConcurrent", "Concurrent") and type(block).__module__.startswith(
        "mxnet.gluon.contrib"
    ):
        return "concurrent"
    return "other"


def convert(block: Any, path: str, problems: list[str], trace: bool) -> Net:
    """The unified net of ``block``; reasons it cannot be are appended to
    ``problems`` (a placeholder is returned so every problem gets listed)."""
    layer = leaf(block)
    if isinstance(layer, str):
        problems.append(f"{path or '<root>'} ({type(block).__name__}): {layer}")
        return Holder()
    if layer is not None:
        return layer
    kind = _kind(block)
    kids = [
        (name, convert(child, f"{path}.{name}" if path else name, problems, trace))
        for name, child in block._children.items()
    ]
    if kind == "sequential" and not block._reg_params:
        return Sequential(*(k for _, k in kids))
    if kind == "concurrent" and not block._reg_params:
        return Concurrent(*(k for _, k in kids), axis=block.axis)
    own = {
        name: Parameter(name, p.shape, np.dtype(p.dtype).name)
        for name, p in block._reg_params.items()
    }
    if not trace:
        holder = Holder()
        for name, p in own.items():
            attach(holder, name, p)
        for name, kid in kids:
            attach(holder, name, kid)
        return holder
    return GraphNet(dict(kids), [], 1, [0], own)  # nodes filled by the trace


def from_gluon(source: Any, *example_inputs: Any) -> Net:
    """Convert a Gluon block, or export files, into a unified net (SPEC 14).

    ``source`` is a Gluon ``Block`` whose parameters are initialized (pass
    ``example_inputs`` to run them through it first if its shapes are deferred),
    or the files ``HybridBlock.export`` wrote: their prefix, the
    ``-symbol.json`` path or the pair ``(symbol_file, params_file)`` (see
    :mod:`unified.interop.gluon_export`; the names are the file's global
    names). The result lives on the active backend, in inference mode
    on a plain call. Anything unified cannot reproduce exactly raises one
    :class:`~unified.interop.graph.ConversionError` listing every place.
    """
    from unified.interop.gluon_export import export_files, from_export

    files = export_files(source)
    if files is not None:
        return from_export(*files)
    mx = _mx()
    if not isinstance(source, mx.gluon.Block):
        raise TypeError(
            "from_gluon takes a Gluon Block, an export prefix or a pair "
            f"(symbol_file, params_file), got {type(source).__name__}"
        )
    if example_inputs:
        source(*[mx.nd.array(np.asarray(x)) for x in example_inputs])
    structural = source._collect_params_with_prefix()
    deferred = [n for n, p in structural.items() if p._data is None]
    if deferred:
        raise ConversionError(
            f"Gluon parameters without values ({', '.join(deferred[:4])}"
            f"{', ...' if len(deferred) > 4 else ''}): initialize the block and run "
            "one batch through it (or pass example inputs to from_gluon)"
        )
    problems: list[str] = []
    net = convert(source, "", problems, trace=True)
    _fill_graphs(net, source, "", problems, len(example_inputs) or 1)
    if problems:
        raise ConversionError(
            f"cannot convert {type(source).__name__}: {len(problems)} unsupported "
            "place(s); nothing was converted:\n  " + "\n  ".join(problems)
        )
    arrays = common.gluon_values(structural)
    _check_fixed_gamma(source, "", arrays, problems)
    if problems:
        raise ConversionError(
            f"cannot convert {type(source).__name__}: " + "; ".join(problems)
        )
    common.materialize(net, arrays, f"Gluon {type(source).__name__}")
    listing = net._listing()
    for name, p in structural.items():
        q = listing[name]
        q.lr_mult, q.wd_mult = float(p.lr_mult), float(p.wd_mult)
        if p.grad_req == "null" and q.trainable:
            q.frozen = True
    return net


def _check_fixed_gamma(
    block: Any, path: str, arrays: dict[str, np.ndarray], problems: list[str]
) -> None:
    """Gluon's ``BatchNorm(scale=False)`` ignores gamma (``fix_gamma``): unified
    keeps it as a frozen parameter, exact only while it is all ones."""
    kw = getattr(block, "_kwargs", None)
    if type(block).__name__ == "BatchNorm" and isinstance(kw, dict):
        name = f"{path}.gamma" if path else "gamma"
        if kw.get("fix_gamma") and not np.all(arrays[name] == 1):
            problems.append(
                f"{path or '<root>'} (BatchNorm): scale=False ignores gamma, whose "
                "values are not all ones; set them to 1 before converting"
            )
    for k, child in block._children.items():
        _check_fixed_gamma(child, f"{path}.{k}" if path else k, arrays, problems)


def _fill_graphs(
    net: Net, block: Any, path: str, problems: list[str], n_inputs: int
) -> None:
    """Trace every custom block converted to a ``GraphNet`` (outermost first)."""
    if isinstance(net, GraphNet):
        trace_into(net, block, path, problems, n_inputs)
        return
    for name, child in net.children():
        sub = block._children.get(name)
        if sub is not None:
            _fill_graphs(child, sub, f"{path}.{name}" if path else name, problems, 1)


def trace_into(
    net: GraphNet, block: Any, path: str, problems: list[str], n_inputs: int
) -> None:
    """Trace ``block``'s symbol graph and store it as ``net``'s nodes."""
    mx = _mx()
    where = path or "<root>"
    if not isinstance(block, mx.gluon.HybridBlock):
        problems.append(
            f"{where} ({type(block).__name__}): a Block with an imperative forward "
            "cannot be traced; make it a HybridBlock"
        )
        return
    names = {p.name: n for n, p in block._collect_params_with_prefix().items()}
    prefixes = {}
    stack = [("", block)]
    while stack:
        sub_path, sub = stack.pop()
        prefixes[sub.prefix] = sub_path
        for k, c in sub._children.items():
            stack.append((f"{sub_path}.{k}" if sub_path else k, c))
    data = [mx.sym.var(f"data{i}") for i in range(n_inputs)]
    try:
        out = block(*data)
    except Exception as exc:  # noqa: BLE001 - any failure means "not traceable"
        problems.append(f"{where} ({type(block).__name__}): tracing failed: {exc}")
        return
    from unified.interop.gluon_ops import GraphBuilder

    graph = json.loads(out.tojson())
    builder = GraphBuilder(net, names, prefixes, [f"data{i}" for i in range(n_inputs)])
    builder.build(graph, path, problems)
