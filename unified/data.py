"""Data in, data out (SPEC 10): the one place where user data becomes native arrays.

Everything that takes data (calling a ``Net``, the batch arguments of
``value_and_grad(...)(net, *args)`` and ``Trainer.step``, losses and ``unified.ops``)
accepts NumPy arrays, NumPy scalars, nested lists and other backends' arrays as well
as the active backend's native arrays. They are converted once, here:

* floating data takes the net's parameter dtype (float32 by default), so float64
  NumPy data gives float32 results on every backend;
* integer and boolean data keep their kind (labels, indices, masks);
* strings, object arrays and ragged lists raise a :class:`TypeError` naming the
  argument.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> x = U.asarray(np.ones((2, 3)))          # float64 in, float32 native array out
    >>> U.to_numpy(x).dtype.name
    'float32'
    >>> U.to_numpy(U.asarray([[1, 2], [3, 4]])).dtype.kind   # integers stay integers
    'i'
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from unified.plugins import BackendTable

DEFAULT_FLOAT = "float32"
_F32 = np.dtype(DEFAULT_FLOAT)

_SCALARS = (bool, int, float)


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` (a native array of any backend, or host data) as a NumPy array.

    Example::

        >>> import unified as U
        >>> U.to_numpy(U.ops.zeros((2,), "float32")).tolist()
        [0.0, 0.0]
    """
    if isinstance(x, np.ndarray):
        return x
    from unified.backend import current_backend

    table = current_backend()
    if table.is_array(x):
        return np.asarray(table.to_numpy(x))
    return _foreign_to_host(x, "x")


def asarray(x: Any, dtype: str | None = None) -> Any:
    """Return ``x`` as a native array of the active backend, on its device.

    :param x: a native array, a NumPy array or scalar, a Python scalar, a (nested)
        list, or another backend's array.
    :param dtype: the result's dtype; by default floating data becomes float32 and
        integer or boolean data keep their dtype.
    :raises TypeError: for strings, objects and ragged lists.
    """
    from unified.backend import current_backend

    table = current_backend()
    if table.is_array(x) and not isinstance(x, np.ndarray):
        out = x if dtype is None else table.astype(x, dtype)
        placed_on = table.__dict__.get("device")  # a non-default device's table
        return out if placed_on is None else table.to_device(out, placed_on)
    # NumPy arrays follow the host rules even where they are native (NumPy backend).
    return host_to_native(table, x, "x", DEFAULT_FLOAT, exact=dtype)


def host_to_native(
    table: BackendTable,
    x: Any,
    what: str,
    float_dtype: str = DEFAULT_FLOAT,
    exact: str | None = None,
) -> Any:
    """Convert host data ``x`` (not a native array of ``table``) to a native array.

    :param what: how to name ``x`` in an error, e.g. ``"argument 1 of MLP"``.
    :param float_dtype: the dtype floating data takes.
    :param exact: a dtype every kind of data takes (``unified.asarray(x, dtype)``).
    """
    host = _foreign_to_host(x, what)
    kind = host.dtype.kind
    if exact is not None:
        dtype = exact
    elif kind == "f":
        dtype = float_dtype
    elif kind in "iub":
        dtype = dtype_name(host.dtype) or host.dtype.name  # cached (slow: Python)
    else:
        raise TypeError(
            f"{what}: cannot use an array of dtype {host.dtype} as data; expected "
            "numbers (float, int or bool). Convert it first, e.g. "
            "np.asarray(x, dtype='float32')."
        )
    return table.asarray(host, dtype)


def _foreign_to_host(x: Any, what: str) -> np.ndarray:
    """Turn host data or another framework's array into a NumPy array, or raise."""
    if isinstance(x, np.ndarray):
        host = x
    elif isinstance(x, (str, bytes)):
        raise TypeError(
            f"{what}: got the string {x[:40]!r}; expected an array of numbers "
            "(a NumPy array, a nested list of numbers or a native array)."
        )
    elif hasattr(x, "asnumpy"):  # mx.nd.NDArray
        host = np.asarray(x.asnumpy())
    elif hasattr(x, "detach") and hasattr(x, "numpy"):  # torch.Tensor
        host = np.asarray(x.detach().cpu().numpy())
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                host = np.asarray(x)
            except ValueError as exc:  # ragged nested lists (NumPy >= 1.24)
                raise TypeError(
                    f"{what}: cannot make an array of {type(x).__name__} data "
                    f"({exc}). Nested lists must be rectangular (every row of the "
                    "same length)."
                ) from None
    if host.dtype.kind in "OUSV":
        raise TypeError(
            f"{what}: got {type(x).__name__} data that is not numeric (NumPy dtype "
            f"{host.dtype}); expected numbers. Ragged lists and objects cannot be "
            "used as data: pad rows to one length or convert the values to numbers."
        )
    return host


_NAMES: dict[Any, str | None] = {}
"""``dtype_name``'s answers by dtype object (it runs a few times per step, and a
framework dtype's name takes a failed ``np.dtype`` call to find)."""


def dtype_name(dtype: Any) -> str | None:
    """The NumPy name of a framework's dtype object (``torch.float32`` too)."""
    if dtype is None:
        return None
    try:
        return _NAMES[dtype]
    except (KeyError, TypeError):  # TypeError: an unhashable dtype-like object
        pass
    name = _dtype_name(dtype)
    with contextlib.suppress(TypeError):
        _NAMES[dtype] = name
    return name


def _dtype_name(dtype: Any) -> str | None:
    try:
        return np.dtype(dtype).name
    except TypeError:
        try:
            return np.dtype(str(dtype).replace("torch.", "")).name
        except TypeError:
            return None


def _is_item(table: BackendTable, v: Any) -> bool:
    """Whether ``v`` is an array (native, NumPy with >= 1 axis or foreign) in a
    list, which makes the list a list of arrays rather than a nested list of data."""
    if isinstance(v, np.ndarray):
        return v.ndim > 0
    if v is None or isinstance(v, (np.generic, list, tuple, *_SCALARS)):
        return False
    return table.is_array(v) or hasattr(v, "asnumpy") or hasattr(v, "__array__")


def _convert_item(table: BackendTable, v: Any, float_dtype: str, what: str) -> Any:
    """Convert one item of a list of arrays; native arrays of ``table`` pass, except
    NumPy floating arrays of another dtype (host data on the NumPy backend)."""
    if table.is_array(v) and not (
        isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.dtype != float_dtype
    ):
        return v
    return convert_one(table, v, float_dtype, what)


def _is_data(x: Any) -> bool:
    """Whether ``x`` is host data the conversion point turns into a native array."""
    return isinstance(x, (np.ndarray, np.generic, list)) or hasattr(x, "__array__")


def convert_call(
    table: BackendTable, args: tuple[Any, ...], net: Any, owner: str | None = None
) -> tuple[Any, ...]:
    """Convert the data among positional ``args`` of a call of ``net``.

    Native arrays are left untouched (the common case costs one ``is_array`` per
    argument). NumPy arrays and scalars, nested lists and other backends' arrays
    become native arrays, floating ones of ``net``'s parameter dtype. Python
    scalars and ``None`` pass through (every op takes scalars); tuples and lists of
    arrays (e.g. recurrent states) are converted item by item; strings raise
    :class:`TypeError`. Other objects pass through unchanged, so a custom
    ``forward`` may take flags or callables.
    """
    is_array = table.is_array
    out = None
    for i, a in enumerate(args):
        if a is None or type(a) in _SCALARS:
            continue
        if is_array(a):
            if type(a) is not np.ndarray or a.dtype == _F32:
                continue
            # The NumPy backend's native arrays are host data too: float64 is cast
            # and object arrays are refused like on every other backend.
            # A parameter-free layer (pooling, an activation) keeps the dtype it
            # is given: inside a float64 net its input is the previous layer's.
            kind = a.dtype.kind
            if kind in "iub" or (
                kind == "f" and net._param_float_dtype() in (None, a.dtype.name)
            ):
                continue
        what = f"argument {i + 1} of {owner or type(net).__name__}"
        new = convert_one(table, a, net._float_dtype, what)
        if new is not a:
            if out is None:
                out = list(args)
            out[i] = new
    return args if out is None else tuple(out)


def private_host_batch(args: tuple[Any, ...], float_dtype: str) -> list[Any] | None:
    """The batch of a compiled step as private NumPy copies, or ``None``.

    For batches made only of NumPy arrays of numbers (the usual case): floating
    arrays take ``float_dtype``, integer and boolean ones keep theirs (the
    compiled function canonicalizes them as ``asarray`` would). A compiled JAX
    function reads NumPy arguments in place, possibly after it has returned, so
    each is a fresh copy the caller cannot mutate; that copy is cheaper than a
    separate host-to-device conversion per argument. Anything else (lists,
    native arrays, strings, objects) gives ``None``: use :func:`convert_call`.
    """
    out = []
    for a in args:
        if type(a) is not np.ndarray:
            return None
        kind = a.dtype.kind
        if kind == "f":
            out.append(a.astype(float_dtype))  # astype copies
        elif kind in "iub":
            out.append(a.copy())
        else:
            return None
    return out


def convert_one(table: BackendTable, a: Any, float_dtype: str, what: str) -> Any:
    """Convert one argument (see :func:`convert_call`)."""
    if isinstance(a, (str, bytes)):
        _foreign_to_host(a, what)  # raises the TypeError
    if isinstance(a, (list, tuple)) and a and any(_is_item(table, v) for v in a):
        # A list of arrays (e.g. recurrent states ``[h, c]``) stays a list; a nested
        # list of numbers (no array among its items) is one array, below.
        return type(a)(_convert_item(table, v, float_dtype, what) for v in a)
    if isinstance(a, tuple) and a and all(_is_data(v) for v in a):
        return tuple(convert_one(table, v, float_dtype, what) for v in a)
    if _is_data(a):
        return host_to_native(table, a, what, float_dtype)
    return a


def convert_op_args(table: BackendTable, args: tuple[Any, ...]) -> list[Any] | None:
    """The retry of an op that rejected host data: convert it, or ``None``.

    Only NumPy arrays and scalars and other frameworks' arrays are converted (and
    the elements of a list of arrays, for ``concatenate``-style ops); nested lists
    in the first position are taken as data. Floating data takes the dtype of the
    first native floating operand, float32 when there is none.
    """
    float_dtype = DEFAULT_FLOAT
    for a in args:
        if table.is_array(a):
            name = dtype_name(getattr(a, "dtype", None))
            if name is not None and name.startswith("float"):
                float_dtype = name
                break
    changed = False
    out = list(args)
    for i, a in enumerate(args):
        if table.is_array(a) or a is None or type(a) in _SCALARS:
            continue
        if isinstance(a, (np.ndarray, np.generic)) or (
            hasattr(a, "__array__") and not isinstance(a, (list, tuple))
        ):
            out[i] = host_to_native(table, a, f"argument {i + 1}", float_dtype)
            changed = True
        elif isinstance(a, (list, tuple)) and a:
            if all(table.is_array(v) or _is_data(v) for v in a):
                out[i] = type(a)(
                    v
                    if table.is_array(v)
                    else host_to_native(table, v, f"argument {i + 1}", float_dtype)
                    for v in a
                )
                changed = True
            elif i == 0:
                out[i] = host_to_native(table, a, "argument 1", float_dtype)
                changed = True
    return out if changed else None
