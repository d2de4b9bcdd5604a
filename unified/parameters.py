"""``Parameter`` (one neutral variable) and ``ParamDict`` (an ordered, named selection).

A parameter holds its value as the native array of the backend it was initialized
on. The value is read through ``_data``, which ``value_and_grad`` and the compiled
JAX step rebind to traced arrays while the forward runs.

Example::

    >>> import unified as U
    >>> p = U.Parameter("weight", shape=(2, 3))
    >>> p.shape
    (2, 3)
    >>> p.initialize(U.init.Ones())
    >>> float(p.numpy().sum())
    6.0
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from unified import init as _init
from unified.errors import (
    DeferredInitializationError,
    FrozenParameterError,
    ParameterNotInitializedError,
    ShapeError,
)

if TYPE_CHECKING:
    from unified.plugins import BackendTable

Shape = tuple[int, ...]


def _compatible(known: Shape, other: Shape) -> bool:
    """Whether two shapes agree where both are known (``-1`` matches anything)."""
    return len(known) == len(other) and all(
        a == b or a == -1 or b == -1 for a, b in zip(known, other)
    )


class Parameter:
    """A named, backend-neutral variable (weight, bias, ...).

    Arguments:
        name: the local name (``"weight"``); nets list it under its structural name.
        shape: a tuple; ``-1`` marks a dimension inferred at the first forward.
        dtype: NumPy dtype name, ``"float32"`` by default.
        init: the parameter's own initializer (wins over the one given to
            ``net.initialize``).
        lr_mult, wd_mult: multipliers of the learning rate and the weight decay,
            read at every optimizer step.
        trainable: ``False`` makes a *state* parameter (running statistics): saved,
            loaded, ported and averaged like any other, written by its layer in
            training-mode forwards, never differentiated nor stepped by an optimizer.
    """

    __slots__ = (
        "name",
        "_shape",
        "dtype",
        "init",
        "lr_mult",
        "wd_mult",
        "frozen",
        "trainable",
        "_own_init",
        "_data",
        "_grad",
        "_backend",
        "_pending",
        "__weakref__",
    )

    def __init__(
        self,
        name: str = "weight",
        shape: Shape = (),
        dtype: str = "float32",
        init: _init.Initializer | str | None = None,
        lr_mult: float = 1.0,
        wd_mult: float = 1.0,
        trainable: bool = True,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Parameter name must be a non-empty string, got {name!r}")
        self.name = name
        self._shape: Shape = _check_shape(shape, name)
        self.dtype = _check_dtype(dtype, name)
        self.init = _init.create(init)
        self.lr_mult = float(lr_mult)
        self.wd_mult = float(wd_mult)
        self.frozen = False
        self.trainable = bool(trainable)
        self._own_init: _init.Initializer | None = None
        self._data: Any = None
        self._grad: Any = None
        self._backend: BackendTable | None = None
        # (initializer, seed, epoch, name, own) recorded by initialize() for a
        # parameter whose shape is not known yet.
        self._pending: tuple[_init.Initializer, int, int, str, bool] | None = None

    # -- shape and state ---------------------------------------------------------
    @property
    def shape(self) -> Shape:
        """The shape; ``-1`` marks a dimension not known yet."""
        return self._shape

    @property
    def initialized(self) -> bool:
        """Whether the parameter holds values."""
        return self._data is not None

    def _is_known(self) -> bool:
        return -1 not in self._shape

    def __repr__(self) -> str:
        state = (
            ""
            if self._data is not None
            else (", deferred" if self._pending else ", uninitialized")
        )
        frozen = ", frozen" if self.frozen else ""
        return (
            f"Parameter {self.name} "
            f"(shape={self._shape}, dtype={self.dtype}{state}{frozen})"
        )

    # -- initialization ------------------------------------------------------------
    def initialize(
        self, init: _init.Initializer | str | None = None, force_reinit: bool = False
    ) -> None:
        """Initialize this parameter on its own; ``init`` becomes its own initializer.

        The parameter's own initializer wins over every other one, also in later
        ``net.initialize(..., force_reinit=True)`` calls. Values are drawn with key
        ``(seed, epoch, self.name)``: the local name (``"weight"``) until a net has
        initialized the parameter under its structural name. An initialized (or
        deferred) parameter is left unchanged, with a warning, unless
        ``force_reinit``.
        """
        started = self._data is not None or self._pending is not None
        if started and not force_reinit:
            warnings.warn(
                f"parameter {self.name!r} is already initialized and was left "
                "unchanged; pass force_reinit=True to draw it again.",
                stacklevel=2,
            )
            return
        if init is not None:
            self._own_init = _init.create(init)
        from unified.backend import current_backend

        seed, epoch = _init.next_epoch()
        self._setup(self.name, None, seed, epoch, current_backend(), True)

    def _choose_init(self, global_init: _init.Initializer | None) -> tuple[Any, bool]:
        if self._own_init is not None:
            return self._own_init, True
        if self.init is not None:
            return self.init, True
        if global_init is not None:
            return global_init, False
        return _init.DEFAULT, False

    def _setup(
        self,
        name: str,
        global_init: _init.Initializer | None,
        seed: int,
        epoch: int,
        backend: BackendTable,
        force_reinit: bool,
    ) -> bool:
        """Record the init for ``name``; materialize now if the shape is known.

        Returns ``False`` (and changes nothing) for an initialized parameter without
        ``force_reinit``.
        """
        if (self._data is not None or self._pending is not None) and not force_reinit:
            return False
        if self._data is not None and backend is not self._backend:
            backend = self._backend  # type: ignore[assignment]  # stays where it lives
        self.name = name
        chosen, own = self._choose_init(global_init)
        self._backend = backend
        self._pending = (chosen, seed, epoch, name, own)
        if self._is_known():
            self._materialize()
        return True

    def _materialize(self) -> None:
        assert self._pending is not None and self._backend is not None
        chosen, seed, epoch, name, own = self._pending
        values = chosen.draw(
            name, self._shape, self.dtype, seed=seed, epoch=epoch, own=own
        )
        self._store(values)
        self._pending = None

    def _store(self, values: np.ndarray) -> None:
        """Write host values (already of this dtype and shape), in place if possible."""
        backend = self._backend
        assert backend is not None
        new = backend.asarray(values, self.dtype)
        self._data = new if self._data is None else backend.assign(self._data, new)

    def _infer(self, shape: Shape, where: str) -> None:
        """Fill unknown dims from a forward pass and draw the recorded init."""
        if self._data is None and self._pending is None:
            self._raise_uninitialized()
        if not _compatible(self._shape, shape):
            raise ShapeError(
                f"{where}: parameter {self.name!r} has shape {self._shape} but the "
                f"input implies {shape}. Feed inputs with the feature size the layer "
                "was built for, or build a new layer."
            )
        self._shape = tuple(shape)
        if self._data is None:
            self._materialize()

    def _raise_uninitialized(self) -> None:
        if self._pending is not None:
            raise DeferredInitializationError(
                f"parameter {self.name!r} has deferred shape {self._shape}: it was "
                "initialized but its shape is not known yet. Run a forward pass (or "
                "net.infer_shape(example)) first, or give the layer its input size "
                "(e.g. Dense(units, in_units=...))."
            )
        raise ParameterNotInitializedError(
            f"parameter {self.name!r} (shape {self._shape}) has not been initialized. "
            "Call net.initialize() (or p.initialize()) first."
        )

    # -- values --------------------------------------------------------------------
    def data(self) -> Any:
        """Return the value as the backend's native array."""
        if self._data is None:
            self._raise_uninitialized()
        return self._data

    def numpy(self) -> np.ndarray:
        """Return a NumPy copy of the value."""
        data = self.data()
        assert self._backend is not None
        return np.array(self._backend.to_numpy(data), copy=True)

    def grad(self) -> Any:
        """Return the gradient (native array) of the last ``value_and_grad`` call.

        Zeros before any gradient was computed. Raises
        :class:`~unified.FrozenParameterError` for a frozen parameter.
        """
        if not self.trainable:
            raise FrozenParameterError(
                f"parameter {self.name!r} is a state parameter (trainable=False, e.g. "
                "a running statistic): its layer writes it in training-mode forwards, "
                "so it has no gradient and no optimizer steps it."
            )
        if self.frozen:
            raise FrozenParameterError(
                f"parameter {self.name!r} is frozen, so it has no gradient: frozen "
                "parameters are not differentiated. Unfreeze it (p.frozen = False or "
                "unified.unfreeze) before computing gradients."
            )
        data = self.data()
        if self._grad is None:
            assert self._backend is not None
            self._grad = self._backend.zeros_like(data)
        return self._grad

    def zero_grad(self) -> None:
        """Reset the gradient to zeros (a frozen parameter's is cleared too)."""
        if self._data is not None:
            assert self._backend is not None
            self._grad = self._backend.zeros_like(self._data)

    def set_data(self, value: Any) -> None:
        """Set the value from a native array or anything ``numpy.asarray`` takes.

        The shape must match exactly, or fill the unknown dims of a deferred
        parameter; the dtype is cast to the parameter's. A parameter that was never
        initialized is created on the active backend.
        """
        from unified.backend import current_backend

        backend = self._backend or current_backend()
        if backend.is_array(value):
            host = np.asarray(backend.to_numpy(value))
        else:
            host = _host_array(value)
        if not _compatible(self._shape, host.shape) or (
            self._is_known() and tuple(host.shape) != self._shape
        ):
            raise ShapeError(
                f"set_data on parameter {self.name!r}: expected shape {self._shape}, "
                f"got {tuple(host.shape)}. Pass an array of the parameter's shape."
            )
        self._shape = tuple(int(d) for d in host.shape)
        self._backend = backend
        self._pending = None
        self._store(np.array(host, dtype=self.dtype, copy=True))

    # -- PyTorch spellings and element writes (SPEC 11) -----------------------------
    @property
    def requires_grad(self) -> bool:
        """``not frozen`` (PyTorch's spelling); setting it freezes or unfreezes."""
        return not self.frozen

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.frozen = not bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        """Set :attr:`requires_grad` and return the parameter (PyTorch's spelling)."""
        self.requires_grad = requires_grad
        return self

    def __getitem__(self, key: Any) -> np.ndarray:
        """Read elements as a NumPy copy: ``p[0, 0]``, ``p[:, :2]``."""
        return self.numpy()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        """Write elements on every backend: ``p[0, 0] = 100``, ``p[:] += 1``.

        The write goes through the host (a NumPy copy of the value, updated and
        stored back in place where the backend allows), so it works on immutable
        JAX arrays too. Arrays obtained earlier from :meth:`data` may or may not
        follow the write, depending on the backend: read ``p.data()`` again.
        """
        host = self.numpy()
        if self._backend is not None and self._backend.is_array(value):
            value = self._backend.to_numpy(value)
        host[key] = value
        self._store(host)

    def __deepcopy__(self, memo: dict[int, Any]) -> Parameter:
        """Copy everything but the value, gradient and backend (used by ``port``)."""
        new = Parameter.__new__(Parameter)
        for slot in Parameter.__slots__:
            if slot != "__weakref__" and hasattr(self, slot):
                object.__setattr__(new, slot, getattr(self, slot))
        new._data = new._grad = new._backend = None
        memo[id(self)] = new
        return new


def compile_pattern(pattern: Any) -> re.Pattern[str]:
    """Compile a selection pattern, or raise a ``ValueError`` naming it."""
    if not isinstance(pattern, str):
        raise TypeError(
            f"parameter selection patterns are strings (regular expressions), got "
            f"{pattern!r}"
        )
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(
            f"invalid parameter selection pattern {pattern!r}: {exc}. Patterns are "
            "regular expressions matched against whole names, e.g. '.*weight'."
        ) from None


def no_match_message(pattern: str, names: list[str], action: str) -> str:
    """Say that ``pattern`` selects none of ``names``, with the closest ones."""
    near = difflib.get_close_matches(pattern, names, n=4, cutoff=0.3) or names[:4]
    return (
        f"{action}: the pattern {pattern!r} selects no parameter. Patterns match "
        f"whole names (re.fullmatch), so a prefix such as '0' needs '0\\..*'. "
        f"Nearby names: {near}{' ...' if len(names) > len(near) else ''}."
    )


def _check_shape(shape: Any, name: str) -> Shape:
    """Validate a parameter shape: whole numbers >= 0, or -1 for unknown."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"Parameter {name!r}: shape must be a tuple of ints, got {shape!r}"
        ) from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < -1:
            raise ValueError(
                f"Parameter {name!r}: shape {dims!r} has the invalid dimension {d!r}; "
                "dimensions are whole numbers >= 0, or -1 for one inferred later."
            )
    return tuple(int(d) for d in dims)


def _check_dtype(dtype: Any, name: str) -> str:
    """Validate a parameter dtype: a floating NumPy dtype name."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"Parameter {name!r}: unknown dtype {dtype!r}; expected a floating dtype "
            "name such as 'float32'."
        ) from None
    if resolved.kind != "f":
        raise TypeError(
            f"Parameter {name!r}: dtype {resolved.name} is not a floating dtype; "
            "parameters are float16, float32 or float64."
        )
    return resolved.name


def _host_array(value: Any) -> np.ndarray:
    """Turn lists, scalars and other backends' arrays into a NumPy array."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "asnumpy"):  # mx.nd.NDArray
        return np.asarray(value.asnumpy())
    if hasattr(value, "detach"):  # torch.Tensor
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)  # jax.Array, lists, scalars


class ParamDict(Mapping[str, Parameter]):
    """An ordered, read-only mapping from structural names to parameters.

    Example::

        >>> import unified as U
        >>> net = U.Sequential(U.Dense(4, in_units=3), U.Dense(2))
        >>> list(net.params(".*weight"))
        ['0.weight', '1.weight']
    """

    def __init__(
        self,
        items: Mapping[str, Parameter] | None = None,
        selected_by: list[str] | None = None,
        among: list[str] | None = None,
    ) -> None:
        self._items: dict[str, Parameter] = dict(items or {})
        # The patterns this selection was made with and the names it chose from,
        # so that acting on an empty selection can say what went wrong.
        self._selected_by = selected_by
        self._among = among

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"no parameter named {name!r}; available: {list(self._items)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        body = "".join(
            f"  {name}: shape={p.shape}, dtype={p.dtype}"
            f"{', frozen' if p.frozen else ''}\n"
            for name, p in self._items.items()
        )
        return f"ParamDict(\n{body})" if body else "ParamDict()"

    def select(self, select: str | list[str] | None) -> ParamDict:
        """Return the parameters whose names fully match a pattern (or any of a
        list)."""
        if select is None:
            return self
        patterns = [select] if isinstance(select, str) else list(select)
        compiled = [compile_pattern(pattern) for pattern in patterns]
        return ParamDict(
            {
                n: p
                for n, p in self._items.items()
                if any(c.fullmatch(n) for c in compiled)
            },
            selected_by=patterns,
            among=list(self._items),
        )

    def require(self, select: str | list[str] | None, action: str) -> ParamDict:
        """Like :meth:`select`, but every pattern must select something.

        :raises ValueError: naming a pattern that matches no parameter, with the
            names closest to it.
        """
        if select is None:
            return self
        patterns = [select] if isinstance(select, str) else list(select)
        names = list(self._items)
        for pattern in patterns:
            c = compile_pattern(pattern)
            if not any(c.fullmatch(n) for n in names):
                raise ValueError(no_match_message(pattern, names, action))
        return self.select(patterns)

    def _check_not_empty(self, action: str) -> None:
        if not self._items and self._selected_by:
            raise ValueError(
                no_match_message(self._selected_by[0], self._among or [], action)
            )

    def setattr(self, name: str, value: Any) -> None:
        """Set an attribute (``lr_mult``, ``wd_mult``, ``frozen``) on every
        parameter.

        :raises ValueError: on an empty selection (a pattern that matched nothing).
        """
        self._check_not_empty(f"setting {name}")
        for p in self._items.values():
            setattr(p, name, value)

    def initialize(
        self, init: _init.Initializer | str | None = None, force_reinit: bool = False
    ) -> None:
        """Initialize these parameters (Gluon's ``collect_params(...).initialize``).

        Values are keyed by the structural names of this selection, so
        ``net.params(".*weight").initialize(init)`` draws the same values as
        ``net.initialize(init)`` would for those parameters.
        """
        self._check_not_empty("initialize")
        from unified.backend import current_backend

        global_init = _init.create(init)
        seed, epoch = _init.next_epoch()
        for name, p in self._items.items():
            table = p._backend or current_backend()
            if not p._setup(name, global_init, seed, epoch, table, force_reinit):
                warnings.warn(
                    f"parameter {name!r} is already initialized and was left "
                    "unchanged; pass force_reinit=True to draw it again.",
                    stacklevel=2,
                )

    def freeze(self) -> None:
        """Freeze every parameter: no gradient, no optimizer update."""
        self.setattr("frozen", True)

    def unfreeze(self) -> None:
        """Unfreeze every parameter."""
        self.setattr("frozen", False)

    def zero_grad(self) -> None:
        """Reset every gradient to zeros."""
        for p in self._items.values():
            p.zero_grad()
