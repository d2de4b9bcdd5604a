"""``from_gluon`` of the files ``HybridBlock.export`` writes (SPEC 14).

``block.export(prefix)`` writes ``prefix-symbol.json`` (the symbol graph) and
``prefix-0000.params`` (``arg:NAME``/``aux:NAME`` arrays). Both are read through
``mx.gluon.SymbolBlock.imports`` and the graph is converted by the symbol-graph
tracer of :mod:`unified.interop.gluon_ops` into a
:class:`~unified.interop.graph.GraphNet`.

Names: the export has no block structure left, only MXNet's global parameter
names, which Gluon 1.x derives from its block-name counters
(``hybridsequential0_dense0_weight``, ``resnetv10_batchnorm0_running_mean``).
They are kept as the file gives them (without ``arg:``/``aux:``), in the file's
order. Layers with state or randomness (``BatchNorm``, ``Embedding``,
``Dropout``) become children named after their graph node (``..._batchnorm0``)
that use those same parameters: ``net.params()`` lists each once, under the file's
name (``net.ties()`` shows the child's use).
"""

from __future__ import annotations

import glob
import json
import os
import warnings
from typing import Any

import numpy as np

from unified import layers as L
from unified.interop import common
from unified.interop.gluon_ops import GraphBuilder
from unified.interop.graph import ConversionError, GraphNet
from unified.nets import Net
from unified.parameters import Parameter


def export_files(source: Any) -> tuple[str, str] | None:
    """``(symbol_file, params_file)`` if ``source`` names an export (a prefix, a
    ``-symbol.json`` path or a pair of paths), else ``None``."""
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return str(source[0]), str(source[1])
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = os.fspath(source)
    prefix = path[: -len("-symbol.json")] if path.endswith("-symbol.json") else path
    symbol = prefix + "-symbol.json"
    if not os.path.exists(symbol):
        return None
    params = sorted(glob.glob(glob.escape(prefix) + "-[0-9][0-9][0-9][0-9].params"))
    if len(params) != 1:
        raise ConversionError(
            f"{symbol!r} needs exactly one parameter file {prefix}-NNNN.params, "
            f"found {[os.path.basename(p) for p in params]}; pass the pair "
            "(symbol_file, params_file)"
        )
    return symbol, params[0]


def export_arrays(symbol_file: str, params_file: str) -> dict[str, np.ndarray]:
    """The export's arrays under the file's names, arguments before auxiliary
    states, in the graph's order."""
    return {n: v for n, (v, _) in _read(symbol_file, params_file)[1].items()}


def _read(
    symbol_file: str, params_file: str
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, bool]], list[str]]:
    """The graph JSON, ``name -> (value, is_auxiliary)`` and the input names."""
    from unified.interop.common import mxnet

    mx = mxnet()
    for f in (symbol_file, params_file):
        if not os.path.exists(f):
            raise ConversionError(f"no such export file: {f!r}")
    sym = mx.sym.load(symbol_file)
    stored = {k.split(":", 1)[-1] for k in mx.nd.load(params_file)}
    inputs = [n for n in sym.list_inputs() if n not in stored]
    with warnings.catch_warnings():  # "cannot decide type for data": it is float32
        warnings.simplefilter("ignore", UserWarning)
        block = mx.gluon.SymbolBlock.imports(symbol_file, inputs, params_file)
    aux = set(sym.list_auxiliary_states())
    params = block.collect_params()
    order = [n for n in sym.list_arguments() if n in stored]
    order += [n for n in sym.list_auxiliary_states() if n in stored]
    arrays = {n: (params[n].data().asnumpy(), n in aux) for n in order}
    return json.loads(sym.tojson()), arrays, inputs


class _ExportBuilder(GraphBuilder):
    """The tracer with layer children found by graph node instead of by name."""

    def __init__(self, net: GraphNet, names: dict[str, str], inputs: list[str]):
        super().__init__(net, names, {}, inputs)
        self.owners: dict[str, str] = {}

    def owner(self, raw: dict[str, Any], param_input: int, cls: type) -> str:
        path = self.owners.get(raw["name"])
        if path is None:
            raise ConversionError(f"no {cls.__name__} layer for this node")
        return path


def _child(
    raw: dict[str, Any], graph: dict[str, Any], own: dict[str, Parameter]
) -> tuple[Net, Parameter | None] | str:
    """The unified layer of a stateful node, using the export's parameters."""
    from unified.interop.gluon import _lit

    a = {k: _lit(v) for k, v in raw.get("attrs", {}).items()}
    names = [graph["nodes"][r[0]]["name"] for r in raw["inputs"][1:]]
    if raw["op"] == "BatchNorm":
        if int(a.get("axis", 1)) != 1:
            return f"BatchNorm axis {a.get('axis')} (only the channel axis 1)"
        gamma, beta, mean, var = (own[n] for n in names)
        layer: Any = L.BatchNorm(
            axis=1,
            momentum=float(a.get("momentum", 0.9)),
            epsilon=float(a.get("eps", 1e-3)),
            use_global_stats=bool(a.get("use_global_stats", False)),
            unbiased_running_var=False,
            in_channels=gamma.shape[0],
        )
        layer.gamma, layer.beta = gamma, beta
        layer.running_mean, layer.running_var = mean, var
        if a.get("fix_gamma", True):
            gamma.frozen = True
            return layer, gamma
        return layer, None
    if raw["op"] == "Embedding":
        weight = own[names[0]]
        layer = L.Embedding(int(a["input_dim"]), int(a["output_dim"]))
        layer.weight = weight
        return layer, None
    return L.Dropout(float(a.get("p", 0.5))), None


def from_export(symbol_file: str, params_file: str) -> Net:
    """Convert an export pair (see the module docstring)."""
    graph, arrays, inputs = _read(symbol_file, params_file)
    own = {
        n: Parameter(n, v.shape, v.dtype.name, trainable=not aux)
        for n, (v, aux) in arrays.items()
    }
    children: dict[str, Net] = {}
    owners: dict[str, str] = {}
    fixed: list[Parameter] = []
    problems: list[str] = []
    for raw in graph["nodes"]:
        if raw["op"] not in ("BatchNorm", "Embedding", "Dropout"):
            continue
        made = _child(raw, graph, own)
        if isinstance(made, str):
            problems.append(f"node {raw['name']!r} (op {raw['op']}): {made}")
            continue
        path = raw["name"].removesuffix("_fwd")
        children[path] = made[0]
        owners[raw["name"]] = path
        if made[1] is not None:
            fixed.append(made[1])
    net = GraphNet(children, [], len(inputs), [0], own)
    builder = _ExportBuilder(net, {n: n for n in own}, inputs)
    builder.owners = owners
    builder.prefixes = {
        raw["name"].removesuffix("fwd"): path
        for raw in graph["nodes"]
        if (path := owners.get(raw["name"])) and raw["op"] == "Dropout"
    }
    builder.build(graph, "", problems)
    values = {n: v for n, (v, _) in arrays.items()}
    for p in fixed:
        if not np.all(values[p.name] == 1):
            problems.append(
                f"{p.name}: BatchNorm with fix_gamma ignores gamma, whose values "
                "are not all ones; set them to 1 before exporting"
            )
    if problems:
        raise ConversionError(
            f"cannot convert the export {os.path.basename(symbol_file)}: "
            f"{len(problems)} unsupported place(s); nothing was converted:\n  "
            + "\n  ".join(problems)
        )
    frozen = {p.name for p in fixed}
    common.materialize(net, values, f"Gluon export {symbol_file}")
    for n in frozen:
        net._listing()[n].frozen = True
    return net
