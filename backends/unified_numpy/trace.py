"""The NumPy backend's tracer: run a pure function once, record a flat program.

:func:`~unified_numpy.replay.jit` wraps a pure function of (nested lists, tuples
and dicts of) NumPy arrays. The first call for an input *signature* (the nesting,
every array's shape and dtype, the values of the non-array leaves) runs it once on
:class:`Tracer` stand-ins. A Tracer holds the real array it stands for, so the trace
computes the true result, and it records every NumPy computation made on it (ufuncs
and their methods, ``__array_function__`` functions, the ndarray methods and
operators, indexing and in-place writes) as one line of straight-line Python source:
``v7 = k3(v5, c2, axis=c4)``. The lines become one generated function of the input
arrays; later calls with the same signature run it: no Net, mode, tape, closure or
optimizer machinery, only the NumPy kernels the eager step called, in the same order
on the same operands, so the results are bitwise those of the eager step. The
program is planned for memory once, when it is generated (:mod:`unified_numpy.plan`):
lines whose results no output needs are dropped (never a line that writes into an
array), each value is released after its last use, and an elementwise result is
written into an operand that dies there. :mod:`unified_numpy.replay` holds
:func:`jit`: signatures, programs and donated arguments.

Whatever a tracer cannot record makes the trace refuse: converting a traced array to
a host value (``float(x)``, ``bool(x)``, ``if x > 0``, ``np.asarray(x)`` outside
this backend, ``x.item()``), writing traced values into an array that is not traced
(the target would be a constant of the program), an unknown method. A refused trace
does **not** raise: the function runs eagerly instead (its exceptions, if any, are
the user's), the signature is remembered as eager, and the reason is logged at
DEBUG level on the ``unified_numpy`` logger. NumPy can always run the step eagerly,
so a refusal costs speed, never correctness; JAX would raise instead.

As under ``jax.jit``, arrays the function reads that are not among its arguments
(closure constants, arrays drawn from a host RNG inside it) are baked into the
program at trace time.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from unified_numpy.plan import Line, Slot

log = logging.getLogger("unified_numpy")


class TraceError(Exception):
    """Raised inside a trace for an operation the program cannot replay."""


class _Recorder:
    """The program being traced: its lines, its constants and its slots."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.consts: dict[str, Any] = {}
        self.slots: list[Slot] = []
        self.inputs: set[int] = set()
        # Every traced array stays alive until the trace ends, so that no two of
        # them have the same id (the plan tells shared memory by the ids of roots).
        self.values: list[Any] = []

    def slot(self, value: Any) -> int:
        self.values.append(value)
        self.slots.append(Slot(value))
        return len(self.slots) - 1

    def const(self, value: Any) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name

    def render(self, obj: Any, reads: list[int]) -> str:
        """Python source for ``obj`` in a line: a slot, a literal or a constant."""
        t = type(obj)
        if t is Tracer:
            if obj.rec is not self:
                raise TraceError("a traced array of another trace was used")
            reads.append(obj.slot)
            return f"v{obj.slot}"
        if t is tuple:
            inner = "".join(self.render(o, reads) + ", " for o in obj)
            return f"({inner})"
        if t is list:
            return "[" + ", ".join(self.render(o, reads) for o in obj) + "]"
        if t is int or t is bool or obj is None or t is str:
            return repr(obj)
        if t is float and np.isfinite(obj):
            return repr(obj)
        if t is slice:
            parts = (obj.start, obj.stop, obj.step)
            return "slice(" + ", ".join(self.render(p, reads) for p in parts) + ")"
        if obj is Ellipsis:
            return "..."
        if t is dict:
            items = (f"{k!r}: {self.render(v, reads)}" for k, v in obj.items())
            return "{" + ", ".join(items) + "}"
        return self.const(obj)

    def call(
        self,
        kernel: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        writes: Tracer | None = None,
    ) -> Any:
        """Run ``kernel`` on the arrays behind the tracers and record it.

        :param writes: the traced array the kernel writes into, if any (its result,
            when it returns that array, is the same tracer).
        """
        result = kernel(*_values(args), **_values(kwargs))
        if writes is None and args and type(args[0]) is Tracer:
            first = args[0]
            if result is first.value:  # astype(copy=False), asarray: the input
                return first
            if (
                kernel in _RESHAPES
                and type(result) is type(first.value)
                and result.shape == first.shape
            ):
                return first  # a reshape to the same shape: the same array
        reads: list[int] = []
        name = self.const(kernel)
        text = ", ".join(self.render(a, reads) for a in args)
        if kwargs:
            text += "".join(f", {k}={self.render(v, reads)}" for k, v in kwargs.items())
        source = f"{name}({text.lstrip(', ')})"
        mutates = writes is not None
        if writes is not None and (result is None or result is writes.value):
            self.lines.append(Line("", source, tuple(reads), (writes.slot,), True))
            return None if result is None else writes
        if isinstance(result, (np.ndarray, np.generic)):
            out = Tracer(result, self)
            operands = None
            if (
                type(kernel) is np.ufunc
                and kernel.nout == 1
                and not kwargs
                and not mutates
                and type(result) is np.ndarray
            ):  # a candidate for writing into a dying operand (plan.py)
                operands = tuple(a.slot if type(a) is Tracer else None for a in args)
            self.lines.append(
                Line(
                    f"v{out.slot} = ",
                    source,
                    tuple(reads),
                    (out.slot,),
                    mutates,
                    operands,
                )
            )
            return out
        if type(result) in (list, tuple) and all(
            isinstance(r, (np.ndarray, np.generic)) for r in result
        ):
            outs = [Tracer(r, self) for r in result]
            targets = "".join(f"v{o.slot}, " for o in outs)
            self.lines.append(
                Line(
                    f"({targets}) = ",
                    source,
                    tuple(reads),
                    tuple(o.slot for o in outs),
                    mutates,
                )
            )
            return outs if type(result) is list else tuple(outs)
        raise TraceError(
            f"{getattr(kernel, '__name__', kernel)!s} returned a "
            f"{type(result).__name__}, which the program cannot hold"
        )


_active: _Recorder | None = None


def _values(obj: Any) -> Any:
    """``obj`` with every Tracer replaced by the array it stands for."""
    t = type(obj)
    if t is Tracer:
        return obj.value
    if t is tuple:
        return tuple(_values(o) for o in obj)
    if t is list:
        return [_values(o) for o in obj]
    if t is dict:
        return {k: _values(v) for k, v in obj.items()}
    return obj


def _refuse(what: str) -> Any:
    def refused(self: Tracer, *args: Any, **kwargs: Any) -> Any:
        raise TraceError(f"{what} of a traced array (its value depends on the data)")

    return refused


def _binary(ufunc: Any, reflected: bool = False) -> Callable[[Tracer, Any], Any]:
    if reflected:
        return lambda self, other: ufunc(other, self)
    return lambda self, other: ufunc(self, other)


def _inplace(ufunc: Any) -> Callable[[Tracer, Any], Any]:
    return lambda self, other: ufunc(self, other, out=(self,))


def _method(name: str) -> Callable[..., Any]:
    def kernel(x: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(x, name)(*args, **kwargs)

    kernel.__name__ = name
    unbound = getattr(np.ndarray, name)

    def method(self: Tracer, *args: Any, **kwargs: Any) -> Any:
        # An ndarray's method is called unbound in the program (no lookup).
        fn = unbound if type(self.value) is np.ndarray else kernel
        return self.rec.call(fn, (self, *args), kwargs)

    return method


# Reshapes: one to the array's own shape is replaced by the array itself (same
# memory, same values; only the view object differs).
_RESHAPES = {np.ndarray.reshape, np.reshape, getattr(np.reshape, "_implementation", 0)}

# Functions whose result depends only on shapes and dtypes: called, not recorded.
_STATIC = {np.shape, np.ndim, np.size, np.result_type, np.iscomplexobj, np.isrealobj}
# Functions that write into their first argument.
_WRITERS = {np.copyto, np.put, np.place, np.putmask, np.put_along_axis}


class Tracer:
    """A traced array: the value it stands for and its slot in the program."""

    __slots__ = ("value", "slot", "rec")

    def __init__(self, value: Any, rec: _Recorder) -> None:
        self.value = value
        self.rec = rec
        self.slot = rec.slot(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape  # type: ignore[no-any-return]

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype  # type: ignore[no-any-return]

    @property
    def ndim(self) -> int:
        return self.value.ndim  # type: ignore[no-any-return]

    @property
    def size(self) -> int:
        return self.value.size  # type: ignore[no-any-return]

    @property
    def flags(self) -> Any:
        # The layout follows from the arguments' strides (part of the signature).
        return self.value.flags

    @property
    def T(self) -> Any:
        return self.transpose()

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Tracer(v{self.slot}: {self.dtype}{list(self.shape)})"

    __array__ = _refuse("np.asarray")
    __bool__ = _refuse("bool()")
    __float__ = _refuse("float()")
    __int__ = _refuse("int()")
    __index__ = _refuse("an index from the value")
    __complex__ = _refuse("complex()")
    item = _refuse("item()")
    tolist = _refuse("tolist()")
    tobytes = _refuse("tobytes()")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        rec = self.rec
        if rec is not _active:
            raise TraceError("a traced array was used after its trace ended")
        writes = None
        out = kwargs.get("out")
        if out is not None:
            targets = out if type(out) is tuple else (out,)
            if len(targets) != 1 or type(targets[0]) is not Tracer:
                raise TraceError(f"{ufunc.__name__} writes into an untraced array")
            writes = targets[0]
        kernel = ufunc if method == "__call__" else getattr(ufunc, method)
        if method == "at":
            if type(inputs[0]) is not Tracer:
                raise TraceError(f"{ufunc.__name__}.at writes into an untraced array")
            writes = inputs[0]
        return rec.call(kernel, inputs, kwargs, writes)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any):  # type: ignore[no-untyped-def]
        if func in _STATIC:
            return func(*_values(args), **_values(kwargs))
        rec = self.rec
        if rec is not _active:
            raise TraceError("a traced array was used after its trace ended")
        writes = None
        if func in _WRITERS:
            writes = args[0]
        elif kwargs.get("out") is not None:
            writes = kwargs["out"]
        if writes is not None and type(writes) is not Tracer:
            raise TraceError(f"{func.__name__} writes into an untraced array")
        kernel = getattr(func, "_implementation", func)
        return rec.call(kernel, tuple(args), dict(kwargs), writes)

    def __getitem__(self, key: Any) -> Any:
        return self.rec.call(operator.getitem, (self, key), {})

    def __setitem__(self, key: Any, value: Any) -> None:
        self.rec.call(operator.setitem, (self, key, value), {}, self)

    reshape = _method("reshape")
    transpose = _method("transpose")
    swapaxes = _method("swapaxes")
    squeeze = _method("squeeze")
    ravel = _method("ravel")
    flatten = _method("flatten")
    copy = _method("copy")
    sum = _method("sum")
    mean = _method("mean")
    max = _method("max")
    min = _method("min")
    argmax = _method("argmax")
    any = _method("any")
    all = _method("all")
    cumsum = _method("cumsum")
    clip = _method("clip")
    astype = _method("astype")

    __add__ = _binary(np.add)
    __radd__ = _binary(np.add, True)
    __sub__ = _binary(np.subtract)
    __rsub__ = _binary(np.subtract, True)
    __mul__ = _binary(np.multiply)
    __rmul__ = _binary(np.multiply, True)
    __truediv__ = _binary(np.true_divide)
    __rtruediv__ = _binary(np.true_divide, True)
    __floordiv__ = _binary(np.floor_divide)
    __mod__ = _binary(np.remainder)
    __matmul__ = _binary(np.matmul)
    __rmatmul__ = _binary(np.matmul, True)
    __pow__ = _binary(np.power)
    __rpow__ = _binary(np.power, True)
    __and__ = _binary(np.bitwise_and)
    __rand__ = _binary(np.bitwise_and, True)
    __or__ = _binary(np.bitwise_or)
    __ror__ = _binary(np.bitwise_or, True)
    __xor__ = _binary(np.bitwise_xor)
    __iand__ = _inplace(np.bitwise_and)
    __ior__ = _inplace(np.bitwise_or)
    __gt__ = _binary(np.greater)
    __lt__ = _binary(np.less)
    __ge__ = _binary(np.greater_equal)
    __le__ = _binary(np.less_equal)
    __eq__ = _binary(np.equal)  # type: ignore[assignment]
    __ne__ = _binary(np.not_equal)  # type: ignore[assignment]
    __iadd__ = _inplace(np.add)
    __isub__ = _inplace(np.subtract)
    __imul__ = _inplace(np.multiply)
    __itruediv__ = _inplace(np.true_divide)
    __hash__ = object.__hash__

    def __neg__(self) -> Any:
        return np.negative(self)

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return np.absolute(self)

    def __invert__(self) -> Any:
        return np.invert(self)


def asarray(x: Any, dtype: Any = None) -> Any:
    """``np.asarray(x, dtype)``, recorded when ``x`` is traced (the backend's own
    conversions call this instead of ``np.asarray``)."""
    if type(x) is not Tracer:
        return np.asarray(x, dtype=dtype)
    if type(x.value) is np.ndarray and (dtype is None or x.value.dtype == dtype):
        return x
    return x.rec.call(np.asarray, (x,), {} if dtype is None else {"dtype": dtype})


def ascontiguousarray(x: Any) -> Any:
    """``np.ascontiguousarray(x)``, recorded when ``x`` is traced."""
    if type(x) is not Tracer:
        return np.ascontiguousarray(x)
    return x.rec.call(np.ascontiguousarray, (x,), {})
