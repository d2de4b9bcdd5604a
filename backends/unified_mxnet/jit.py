"""The MXNet backend's ``jit``: trace a pure function once into ``CachedOp`` graphs.

:func:`jit` wraps a pure function of (nested lists, tuples and dicts of) NDArrays.
The first call for an input *signature* (the nesting, every array's shape, dtype
and context, the values of the non-array leaves) runs the function once with
recording on: each input is a marked autograd variable, so every operator it
reaches is recorded, and ``mx.autograd.get_symbol`` later returns the graph of
each result. A ``value_and_grad`` call inside it (at most one) is traced apart
(:class:`Recorder`): its forward graph is kept, its backward runs for real, and its
value and gradients enter the rest of the trace as new variables. The trace's
results are those of the eager run. The graphs become at most three
``mx.nd.CachedOp``: a prelude computing the arrays differentiated (when they are
not plain inputs), the forward (run under ``autograd.record``, then ``backward``,
as a hybridized Gluon block), and the rest of the function (for the ``Trainer``:
the whole optimizer update over every parameter, one call, with the values
of its small table inputs (the coefficients) baked in while they repeat: see
:mod:`unified_mxnet.scalars`). Each operator node
keeps the attributes of the eager call, and a ``CachedOp`` runs the same kernels
and the same gradient pass as imperative autograd, so the numbers are bitwise the
eager ones (proven by the conformance suite's compiled trajectories).

What the trace cannot express makes it refuse: an array no input reaches (a
constant made inside the function, which the graph would see as an unbound
variable), a host conversion of a traced array (``float(x)``, ``to_numpy``, a
native ``x.asnumpy()``), a second ``value_and_grad``. A refused trace does not
raise: the function runs eagerly instead, the signature is remembered as eager,
and the reason is logged at DEBUG level on the ``unified_mxnet`` logger.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

import mxnet as mx

from unified import hookimpl
from unified_mxnet import (
    _as_scalar,
    _MXNetError,
    _nd,
    _NDArray,
    _np_on,
    _np_restore,
    _to_0d,
)
from unified_mxnet.nesting import Refused, flatten, transfer, unflatten
from unified_mxnet.scalar import Scalar
from unified_mxnet.scalars import LIMIT, Specializer

log = logging.getLogger("unified_mxnet")
_autograd = mx.autograd


class _Active(threading.local):
    recorder: Recorder | None = None


active = _Active()


def _refusing(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` (a host read: ``asnumpy``) refusing while this thread traces: the
    value read would be fixed in the graph (say a branch on ``float(loss)``)."""

    def host_read(self: Any, *args: Any) -> Any:
        if active.recorder is not None:
            raise Refused(f"a host read of a traced array ({method.__name__})")
        return method(self, *args)

    host_read.__name__ = method.__name__
    return host_read


# Native host reads seen by the trace (``float(x)``, ``x.item()`` and
# ``x.asscalar()`` all end in one of these): patched only while tracing.
_HOST_READS = [(cls, cls.asnumpy) for cls in (_NDArray, Scalar)]


def _mark(arrays: list[Any], req: str) -> tuple[list[Any], list[str]]:
    """Detached handles of ``arrays`` marked as variables; their symbol names."""
    leaves = [a.detach() for a in arrays]
    grads = [
        _nd.empty(leaf.shape, ctx=leaf.context, dtype=leaf.dtype) for leaf in leaves
    ]
    if leaves:
        _autograd.mark_variables(leaves, grads, req)
    return leaves, [_autograd.get_symbol(leaf).name for leaf in leaves]


class Recorder:
    """One trace: the names of its variables and its ``value_and_grad`` call."""

    def __init__(self, inputs: list[str]) -> None:
        self.known: set[str] = set(inputs)  # bound at replay, outside the forward
        self.leaves: set[str] = set()  # the differentiated variables
        self.vg: dict[str, Any] | None = None
        self.parts: dict[int, list[Any]] = {}  # elements of the _Table inputs
        self.tables: list[str] = []  # the names of the _Table inputs

    def symbol(self, x: Any, forward: bool = False) -> Any:
        """The recorded graph of ``x``; refuse if it reads an unbound variable."""
        if not isinstance(x, _NDArray):
            raise Refused(f"a result of type {type(x).__name__}")
        try:
            sym = _autograd.get_symbol(x)
            if _orphans(sym):
                # ``get_symbol`` of a view made by ``_to_0d`` (a C-API reshape)
                # loses the reshape's input; the graph of a recorded copy keeps it.
                sym = _autograd.get_symbol(_nd.identity(x))
        except _MXNetError as exc:
            raise Refused("an array computed from no input") from exc
        bound = self.known | self.leaves if forward else self.known
        unbound = [n for n in sym.list_inputs() if n not in bound]
        if unbound:
            reader = _reader(sym, unbound[0])
            raise Refused(f"an array made inside the function (read by {reader})")
        return sym

    def value_and_grad(
        self, fn: Callable[[list[Any]], Any], arrays: list[Any]
    ) -> tuple[Any, list[Any]]:
        if self.vg is not None:
            raise Refused("more than one value_and_grad")
        args = [self.symbol(a) for a in arrays]
        leaves, names = _mark(list(arrays), "write")
        grads = [leaf.grad for leaf in leaves]
        self.leaves.update(names)
        with _autograd.record():
            out = fn(leaves)
            if out.size != 1:
                raise ValueError(
                    f"value_and_grad needs fn to return a scalar, got shape {out.shape}"
                )
            forward = self.symbol(out, forward=True)
        try:
            # retain_graph: a backward otherwise frees the recorded history, cutting
            # the inputs of the nodes the symbols of the results share with it.
            out.backward(retain_graph=True)
        except _MXNetError as exc:
            if "not in a computational graph" not in str(exc):
                raise
            raise Refused("a constant value") from exc
        unreached = [not leaf._fresh_grad for leaf in leaves]
        for leaf, g, no in zip(leaves, grads, unreached, strict=True):
            if no:
                _nd.zeros_like(leaf, out=g)
        with _autograd.pause():  # a reshape of an unrecorded array has no input
            value = out.detach()
            value = _to_0d(value) if value.ndim != 0 else value
        (value,), value_names = _mark([value], "null")
        grad_leaves, grad_names = _mark(grads, "null")
        self.known.update(value_names + grad_names)
        self.vg = {
            "args": args,
            "names": names,
            "forward": forward,
            "unreached": unreached,
            "value": value_names[0],
            "grads": grad_names,
        }
        return _as_scalar(value), grad_leaves


# ----------------------------------------------------------------------------------
# The program: at most three CachedOps
# ----------------------------------------------------------------------------------


def _bare(sym: Any) -> str | None:
    """The variable's name when ``sym`` is one unchanged variable, else ``None``."""
    inputs = sym.list_inputs()
    if len(inputs) == 1 and sym.list_outputs() == [inputs[0]]:
        return str(inputs[0])
    return None


def _reader(sym: Any, name: str) -> str:
    """The operator of ``sym`` that reads the variable ``name`` (for messages)."""
    nodes = json.loads(sym.tojson())["nodes"]
    ids = {i for i, n in enumerate(nodes) if n["op"] == "null" and n["name"] == name}
    for node in nodes:
        if any(e[0] in ids for e in node["inputs"]):
            return str(node["op"])
    return "?"


def _orphans(sym: Any) -> bool:
    """Whether an operator node of ``sym`` has no inputs."""
    return any(
        node["op"] != "null" and not node["inputs"]
        for node in json.loads(sym.tojson())["nodes"]
    )


def _without_mkldnn_0d(sym: Any) -> Any:
    """``sym`` with each reshape to 0-d (``_to_0d``, recorded as ``Reshape``) made a
    NumPy ``_np_reshape``: in a graph, MXNet runs ``Reshape`` through oneDNN, which
    rejects a 0-d result ("MKLDNN doesn't support 0 dimensions"). Both copy."""
    graph = json.loads(sym.tojson())
    changed = False
    for node in graph["nodes"]:
        if node["op"] != "null" and not node["inputs"]:
            # e.g. ``_to_0d`` (a C-API reshape) of an array no input reaches
            raise Refused(f"an operator without inputs ({node['op']})")
        if node["op"] == "Reshape" and node.get("attrs", {}).get("shape") in _NO_DIMS:
            node["op"], node["attrs"] = "_np_reshape", {"newshape": "()"}
            changed = True
    return mx.sym.load_json(json.dumps(graph)) if changed else sym


_NO_DIMS = ("[]", "()")


class _Graph:
    """One ``CachedOp`` over named variables, computing some outputs."""

    def __init__(self, syms: list[Any], group: Any = None) -> None:
        if group is None:
            group = mx.sym.Group(syms) if len(syms) > 1 else syms[0]
            group = _without_mkldnn_0d(group)
        self.group = group
        self.inputs = [str(n) for n in group.list_inputs()]
        # static_alloc: memory planned once (outputs are still fresh arrays)
        self.op = _nd.CachedOp(
            group, flags=[("static_alloc", True), ("static_shape", True)]
        )
        self.count = len(syms)
        self.layout: list[tuple[Any, Any, Any]] = []  # of the outputs

    def __call__(self, env: dict[str, Any]) -> list[Any]:
        out = self.op(*[env[n] for n in self.inputs])
        return list(out) if isinstance(out, list | tuple) else [out]

    def into(self, env: dict[str, Any], spares: list[list[Any]]) -> list[Any]:
        """Run into recycled output buffers: for each output, an array of an earlier
        call that nothing else refers to any more (``spares[k]``, the last two calls'
        outputs), else a fresh one. MXNet 1.9 does not pool CPU memory: fresh
        buffers of a few megabytes (the new weights, the optimizer state) would be
        page-faulted in on every step, as the gradients (see ``_GradBuffers``)."""
        outs = []
        for k, held in enumerate(spares):
            found = None
            for j in range(len(held)):
                # References: the list slot and getrefcount's argument.
                if sys.getrefcount(held[j]) == 2:
                    found = held.pop(j)
                    break
            if found is None:
                shape, dtype, ctx = self.layout[k]
                found = _nd.empty(shape, ctx=ctx, dtype=dtype)
            outs.append(found)
        self.op(*[env[n] for n in self.inputs], out=outs)
        for held, o in zip(spares, outs, strict=True):
            held.append(o)
            del held[:-2]
        return outs


class _Program:
    """The replay of one trace (see the module docstring)."""

    def __init__(self, rec: Recorder, inputs: list[str], outs: list[Any], spec: Any):
        self.inputs = inputs
        self.spec = spec
        # Where each result comes from: ("env", name) or (graph, position).
        self.where: list[tuple[Any, Any]] = []
        forward_extra: list[Any] = []
        final: list[Any] = []
        for x in outs:
            if rec.vg is not None and _reads(rec, x):
                sym = rec.symbol(x, forward=True)
                name = _bare(sym)
                if name is not None and name in rec.leaves:
                    raise Refused("an input of value_and_grad returned as is")
                forward_extra.append(sym)
                self.where.append(("forward", len(forward_extra)))
                continue
            sym = rec.symbol(x)
            name = _bare(sym)
            if name is not None:
                self.where.append(("env", name))
            else:
                final.append(sym)
                self.where.append(("final", len(final) - 1))
        self.vg = rec.vg
        self.prelude: _Graph | None = None
        self.forward: _Graph | None = None
        if self.vg is not None:
            args = self.vg["args"]
            self.arg_names = [_bare(a) for a in args]
            computed = [a for a, n in zip(args, self.arg_names) if n is None]
            self.prelude = _Graph(computed) if computed else None
            self.forward = _Graph([self.vg["forward"], *forward_extra])
        self.final = _Graph(final) if final else None
        if self.final is not None:
            self.final.layout = [
                (x.shape, x.dtype, x.context)
                for (graph, _), x in zip(self.where, outs, strict=True)
                if graph == "final"
            ]
        self.spares: list[list[Any]] = [[] for _ in final]
        # The update graph with its coefficients baked in, per set of values.
        self.special: Specializer | None = None
        self.specialized: dict[bytes, _Graph] = {}
        if self.final is not None and rec.tables:
            special = Specializer(json.loads(self.final.group.tojson()), rec.tables)
            self.special = special if special.useful else None

    def _final(self, env: dict[str, Any]) -> _Graph:
        """The update graph for the coefficients of this call (module scalars)."""
        assert self.final is not None
        special = self.special
        if special is None:
            return self.final
        values = {name: env[name].asnumpy() for name in special.tables}
        key = b"".join(values[name].tobytes() for name in special.tables)
        graph = self.specialized.get(key)
        if graph is None:
            if len(self.specialized) >= LIMIT:  # values keep changing: generic
                self.special = None
                self.specialized.clear()
                return self.final
            graph = _Graph([], group=special.build(values))
            graph.layout = self.final.layout
            graph.count = self.final.count
            self.specialized[key] = graph
        return graph

    def __call__(self, leaves: list[Any]) -> Any:
        env = dict(zip(self.inputs, leaves, strict=True))
        results: dict[str, list[Any]] = {}
        vg = self.vg
        if vg is not None and self.forward is not None:
            computed = iter(self.prelude(env) if self.prelude is not None else ())
            arrays = [
                env[n] if n is not None else next(computed) for n in self.arg_names
            ]
            leaves_, grads = _differentiated(arrays)
            env.update(zip(vg["names"], leaves_, strict=True))
            with _autograd.record():
                outs = self.forward(env)
            outs[0].backward()
            for leaf, g, no in zip(leaves_, grads, vg["unreached"], strict=True):
                if no:
                    _nd.zeros_like(leaf, out=g)
            env[vg["value"]] = outs[0].detach()
            env.update(zip(vg["grads"], grads, strict=True))
            results["forward"] = [o.detach() for o in outs]
        if self.final is not None:
            results["final"] = self._final(env).into(env, self.spares)
        flat = [
            env[key] if graph == "env" else results[graph][key]
            for graph, key in self.where
        ]
        flat = [_as_scalar(x) if x.ndim == 0 else x for x in flat]
        return unflatten(self.spec, flat)


def _reads(rec: Recorder, x: Any) -> bool:
    """Whether ``x``'s graph reads a differentiated variable (a forward result)."""
    try:
        names = _autograd.get_symbol(x).list_inputs()
    except _MXNetError:
        return False
    return any(n in rec.leaves for n in names)


def _differentiated(arrays: list[Any]) -> tuple[list[Any], list[Any]]:
    """Detached handles of ``arrays`` marked for gradients, and the buffers: the
    released ones of earlier steps when there are (as ``value_and_grad`` does)."""
    from unified_mxnet.autodiff import _grad_buffers, marked

    leaves, grads, keys = marked(arrays)
    _grad_buffers.keep(keys, grads)
    return leaves, grads


# ----------------------------------------------------------------------------------
# The hook
# ----------------------------------------------------------------------------------


def _signature(spec: Any, leaves: list[Any]) -> tuple[Any, ...]:
    return (spec, tuple((x.shape, x.dtype, x.context) for x in leaves))


@hookimpl
def jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Trace ``fn`` once per signature into CachedOps (module docstring)."""
    programs: dict[Any, Any] = {}  # signature -> _Program, or None: eager

    def compiled(*args: Any) -> Any:
        prev = _np_on()
        try:
            leaves: list[Any] = []
            try:
                spec = flatten(args, leaves)
            except Refused:
                return fn(*args)
            transfer(leaves)
            key = _signature(spec, leaves)
            program = programs.get(key, False)
            if program is False:
                program, result = _trace(fn, spec, leaves)
                programs[key] = program
                if program is not None:
                    compiled.declined = False  # type: ignore[attr-defined]
                    return result
            compiled.declined = program is None  # type: ignore[attr-defined]
            if program is None:  # refused: eager, on the transferred arrays
                return fn(*unflatten(spec, leaves))
            return program(leaves)
        finally:
            _np_restore(prev)

    compiled.declined = False  # type: ignore[attr-defined]  (see hookspecs.jit)
    return compiled


_ELEMENTS = 4096


class _Table(_NDArray):  # type: ignore[misc]
    """A small 2-d input read element by element (the ``Trainer``'s coefficients,
    ``coeffs[row, j]``): the elements come from one recorded ``split``, one reshape
    each, instead of two slices and two reshapes each (several per parameter in
    the update graph, each a scheduled operator)."""

    __slots__ = ()  # the layout of NDArray: the class is swapped in place

    def __getitem__(self, key: Any) -> Any:
        if (
            type(key) is not tuple
            or len(key) != 2
            or type(key[0]) is not int
            or type(key[1]) is not int
        ):
            return super().__getitem__(key)
        rows, cols = self.shape
        row, col = key
        if not (-rows <= row < rows and -cols <= col < cols):
            return super().__getitem__(key)  # its IndexError
        rec = active.recorder
        if rec is None:
            return super().__getitem__(key)
        parts = rec.parts.get(id(self))
        if parts is None:
            flat = self.reshape((-1,))
            split = (
                _nd.split(flat, axis=0, num_outputs=self.size)
                if self.size > 1
                else flat
            )
            parts = rec.parts[id(self)] = (
                list(split) if isinstance(split, list | tuple) else [split]
            )
        return _to_0d(parts[(row % rows) * cols + col % cols])


def _trace(fn: Callable[..., Any], spec: Any, leaves: list[Any]) -> tuple[Any, Any]:
    """Run ``fn`` recorded; return its program (``None`` if refused) and result."""
    aliases, names = _mark(leaves, "null")
    rec = Recorder(names)
    for alias, name in zip(aliases, names, strict=True):
        if type(alias) is _NDArray and alias.ndim == 2 and alias.size <= _ELEMENTS:
            alias.__class__ = _Table
            rec.tables.append(name)
    was = _autograd.set_recording(True)
    active.recorder = rec
    for cls, method in _HOST_READS:
        cls.asnumpy = _refusing(method)
    try:
        result = fn(*unflatten(spec, aliases))
        outs: list[Any] = []
        out_spec = flatten(result, outs)
        program = _Program(rec, names, outs, out_spec)
    except (Refused, _MXNetError) as exc:
        # An MXNet error (an in-place write into a recorded array, or the user's
        # own) is raised again, if genuine, by the eager run.
        log.debug("jit: running %s eagerly: %s", getattr(fn, "__name__", fn), exc)
        return None, None
    finally:
        active.recorder = None
        for cls, method in _HOST_READS:
            cls.asnumpy = method
        _autograd.set_recording(was)
    flat = [o.detach() for o in outs]
    return program, unflatten(
        out_spec, [_as_scalar(o) if o.ndim == 0 else o for o in flat]
    )
