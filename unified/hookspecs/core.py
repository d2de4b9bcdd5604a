"""Hooks of identity, conversion, devices and differentiation (``value_and_grad``,
``jit``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unified.hookspecs.base import Array, hookspec

# ----------------------------------------------------------------------------------
# Identity and conversion
# ----------------------------------------------------------------------------------


@hookspec
def backend_info() -> Any:
    """Describe the backend.

    :returns: a :class:`unified.plugins.BackendInfo` with the backend's ``name``
        (the entry-point name), the ``framework`` it wraps and its ``version``, and
        the ``capabilities`` it declares (for example ``{"jit"}``).
    """


@hookspec
def is_array(x: Any) -> bool:
    """Tell whether ``x`` is a native array of this backend (or a traced stand-in).

    :param x: any object.
    :returns: ``True`` for the backend's own array type.
    """


@hookspec
def asarray(x: Any, dtype: str) -> Array:
    """Convert host data to a native array of ``dtype``.

    :param x: a ``numpy.ndarray``, a Python scalar, or a native array of this backend.
        The caller owns ``x`` and never writes to it afterwards, so the result may
        share its memory (zero-copy) where the framework allows.
    :param dtype: the NumPy name of the result's dtype.
    :returns: a native array with ``x``'s shape and the given dtype.
    """


@hookspec
def to_numpy(x: Array) -> Any:
    """Return the values of a native array as a ``numpy.ndarray``.

    :param x: a native array (never a traced stand-in).
    :returns: a NumPy array with the same shape and dtype. It may share memory with
        ``x``; callers that keep it make their own copy.
    """


@hookspec
def zeros(shape: tuple[int, ...], dtype: str) -> Array:
    """Return a new native array of zeros.

    :param shape: the shape, every dimension known.
    :param dtype: the NumPy name of the dtype.
    """


@hookspec
def zeros_like(x: Array) -> Array:
    """Return a new native array of zeros with ``x``'s shape and dtype."""


@hookspec
def astype(x: Array, dtype: str) -> Array:
    """Return ``x`` cast to ``dtype`` (differentiable for float dtypes)."""


@hookspec
def assign(target: Array, value: Array) -> Array:
    """Store ``value`` in ``target``, in place where the framework allows.

    Used by optimizers and ``set_data``. Backends with mutable arrays (NumPy,
    PyTorch, MXNet) copy ``value`` into ``target`` and return ``target``, so
    references to the parameter's array stay valid; immutable backends (JAX)
    return ``value``.

    :param target: the parameter's current native array.
    :param value: a native array with the same shape and dtype.
    :returns: the array that now holds the parameter's value.
    """


@hookspec
def axpby(a: float, x: Array, b: float, y: Array) -> Array:
    """Return ``a * x + b * y``, written into ``y`` in place where the framework allows.

    The optimizers' fused update (not differentiable): ``y`` is always an array the
    caller owns (a parameter's value or optimizer state), so mutable backends update
    it in place (``y.mul_(b).add_(x, alpha=a)``) and return ``y``; immutable ones
    return a new array. Callers always use the returned array.

    :param a: scalar (a Python float; a 0-d array inside a compiled step).
    :param x: a native array, broadcastable to ``y``.
    :param b: scalar, as ``a``.
    :param y: the native array to update.
    :returns: the array holding ``a * x + b * y``.
    """


# ----------------------------------------------------------------------------------
# Devices (optional: a backend without them has the one device "cpu")
# ----------------------------------------------------------------------------------


@hookspec
def devices() -> list[str]:
    """List the devices this backend can place arrays on (optional: ``devices``).

    Names are ``"kind:index"`` strings (``"cpu:0"``, ``"cuda:1"``, ``"gpu:0"``; a
    framework with a single CPU device may call it ``"cpu"``). The first entry is
    the framework's default device: the one :func:`asarray` and :func:`zeros` use.
    :mod:`unified.placement` matches user spellings against these names (``"cpu"``
    is ``"cpu:0"``, ``"cuda"`` and ``"gpu"`` are one kind) and builds a table whose
    :func:`asarray` and :func:`zeros` place arrays on a non-default device through
    :func:`to_device`; every other hook follows its inputs' device.

    :returns: the device names, the default first; never empty.
    """


@hookspec
def to_device(x: Any, device: str) -> Array:
    """Return ``x`` on ``device`` (optional: comes with :func:`devices`).

    :param x: a native array, or a ``numpy.ndarray`` of host data, which is
        transferred directly (once) and keeps its dtype.
    :param device: one of the names :func:`devices` returns.
    :returns: a native array on ``device`` with ``x``'s values, shape and dtype;
        ``x`` itself when it is a native array already there. Not differentiable.
    """


@hookspec
def device_of(x: Array) -> str:
    """Name the device a native array lives on (optional: comes with :func:`devices`).

    :param x: a native array (never a traced stand-in).
    :returns: one of the names :func:`devices` returns.
    """


# ----------------------------------------------------------------------------------
# Differentiation
# ----------------------------------------------------------------------------------


@hookspec
def value_and_grad(
    fn: Callable[[list[Array]], Array], arrays: Sequence[Array]
) -> tuple[Array, list[Array]]:
    """Evaluate ``fn(arrays)`` and its gradient with respect to every array.

    :param fn: a function of a list of arrays returning a scalar (0-d) array. It may
        call any math hook, any number of times, on any of the arrays.
    :param arrays: the native arrays to differentiate with respect to. The backend
        may pass traced stand-ins of them to ``fn``; the originals must not be
        modified and must not carry gradient state afterwards.
    :returns: ``(value, grads)``: the value as a 0-d native array detached from any
        graph, and one native gradient per input, same shape and dtype, zeros for an
        input that ``fn`` did not use. No state leaks from one call to the next.
    """


@hookspec
def jit(fn: Callable[..., Any], donate: Sequence[int] = ()) -> Callable[..., Any]:
    """Compile a pure function of native arrays (optional: declares capability ``jit``).

    An attribute ``fn.donate_argnums`` (a tuple of argument positions, which ``fn``
    may set while it is traced) says the caller gives up those arguments' arrays:
    the compiled function may write its results into them. A backend may ignore it
    (only NumPy uses it; ``Trainer`` donates the parameters and optimizer state).

    :param fn: a function whose arguments and results are (nested lists of) native
        arrays and whose Python control flow does not depend on array values.
    :param donate: positions of arguments whose arrays the caller gives up: the
        compiled function may reuse their memory for results of the same shape
        and dtype, and the caller never reads them again. Passed only to a
        backend that declares the capability ``donate``, whose compiled callable
        also has ``trace(*args)``: trace for these arguments without running.
    :returns: a callable with the same signature, compiled once per input structure
        and shapes, and reused. A backend that runs some inputs eagerly instead
        (it could not compile them) may set the callable's attribute ``declined``
        to ``True`` after such a call: ``Trainer`` then steps eagerly (its own
        eager step is faster than an uncompiled pure step).
    """
