"""``Net`` (subclass it and write ``forward``) and ``Sequential``.

Children and parameters are registered when assigned as attributes, in order; their
structural names (``0.weight``, ``encoder.1.bias``) come from that structure alone.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> class MLP(U.Net):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = U.Dense(8, activation="relu")
    ...         self.out = U.Dense(2)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x))
    >>> net = MLP()
    >>> net.initialize()
    >>> U.to_numpy(net(np.ones((1, 3), "float32"))).shape
    (1, 2)
    >>> list(net.params())
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from unified import backend as _backend
from unified import data as _data
from unified import init as _init
from unified import modes as _modes
from unified.parameters import ParamDict, Parameter

if TYPE_CHECKING:
    from unified.plugins import BackendTable

_generation = 0
"""Bumped on every registration anywhere, so cached listings know they are stale."""


class Net:
    """Base class of every model and layer.

    Subclasses call ``super().__init__()`` first, assign layers and parameters as
    attributes, and implement ``forward``. Calling the net runs ``forward`` on the
    backend the net was initialized on.
    """

    _backend: BackendTable | None
    _entries: dict[str, Net | Parameter]
    _cache: tuple[int, dict[str, Parameter]] | None
    _mode: bool | None = None  # pinned by train()/eval(); see unified.modes
    _path: str = ""  # structural name, recorded by initialize() (dropout streams)

    def __init__(self) -> None:
        object.__setattr__(self, "_entries", {})
        object.__setattr__(self, "_backend", None)
        object.__setattr__(self, "_cache", None)

    # -- registration ----------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, (Net, Parameter)):
            self._register(name, value)
        elif name in self.__dict__.get("_entries", ()):
            del self._entries[name]
            _bump()
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("_entries", ()):
            del self._entries[name]
            _bump()
        object.__delattr__(self, name)

    def _register(self, name: str, value: Net | Parameter) -> None:
        entries = self.__dict__.get("_entries")
        if entries is None:
            raise AttributeError(
                f"cannot assign {name!r} before Net.__init__(): call "
                f"super().__init__() at the start of {type(self).__name__}.__init__"
            )
        entries[name] = value
        _bump()

    def forward(self, *args: Any) -> Any:
        """Compute the output; subclasses implement it with ``unified.ops``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        table = self._backend
        active = _backend._active
        if table is None:
            table = active or _backend.current_backend()
        args = _data.convert_call(table, args, self)
        if kwargs:
            kwargs = self._convert_kwargs(table, kwargs)
        if table is active:
            return self.forward(*args, **kwargs)
        previous = active
        _backend.activate(table)
        try:
            return self.forward(*args, **kwargs)
        finally:
            if previous is not None:
                _backend.activate(previous)

    def _convert_kwargs(self, table: BackendTable, kwargs: dict[str, Any]) -> Any:
        """Convert keyword data (strings are options here, not data)."""
        return {
            k: v
            if isinstance(v, (str, bytes))
            else _data.convert_one(
                table, v, self._float_dtype, f"argument {k!r} of {type(self).__name__}"
            )
            for k, v in kwargs.items()
        }

    @property
    def _float_dtype(self) -> str:
        """The dtype floating input data takes: the first floating parameter's."""
        return self._param_float_dtype() or _data.DEFAULT_FLOAT

    def _param_float_dtype(self) -> str | None:
        """The first floating parameter's dtype; ``None`` for a parameter-free net."""
        for p in self._listing().values():
            if p.dtype.startswith("float"):
                return p.dtype
        return None

    # -- structure -------------------------------------------------------------------
    def children(self) -> Iterator[tuple[str, Net]]:
        """Yield ``(name, child)`` for the direct children, in registration order."""
        for name, value in self._entries.items():
            if isinstance(value, Net):
                yield name, value

    def uses(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(structural name, parameter)`` for every use, shared ones
        repeated."""
        for name, value in self._entries.items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            else:
                yield from value.uses(f"{prefix}{name}.")

    # -- PyTorch spellings -----------------------------------------------------------
    def named_parameters(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(name, parameter)`` as PyTorch does: each shared parameter once
        (under its first name) unless ``remove_duplicate=False``."""
        if not remove_duplicate:
            yield from self.uses(prefix)
            return
        for name, p in self._listing().items():
            yield prefix + name, p

    def parameters(self) -> Iterator[Parameter]:
        """Yield each parameter once (PyTorch's ``module.parameters()``)."""
        yield from self._listing().values()

    def collect_params(self, select: str | list[str] | None = None) -> ParamDict:
        """Gluon's spelling of :meth:`params` (patterns match whole names)."""
        return self.params(select)

    def apply(self, fn: Any) -> Net:
        """Call ``fn(net)`` on every sub-net, children first, then this net
        (PyTorch's ``module.apply``, e.g. for custom initialization); return self."""
        for _, child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def modules(self) -> Iterator[Net]:
        """Yield this net and every sub-net, depth first (PyTorch's spelling)."""
        yield from self._nets()

    def _listing(self) -> dict[str, Parameter]:
        cache = self._cache
        if cache is not None and cache[0] == _generation:
            return cache[1]
        seen: set[int] = set()
        listing = {}
        for name, p in self.uses():
            if id(p) not in seen:
                seen.add(id(p))
                listing[name] = p
        object.__setattr__(self, "_cache", (_generation, listing))
        return listing

    def params(self, select: str | list[str] | None = None) -> ParamDict:
        """Return the parameters (each once, in registration order) by structural name.

        ``select`` is a regular expression matched against the whole name (or a list
        of them), e.g. ``".*weight"`` or ``"encoder\\..*"``.
        """
        return ParamDict(self._listing()).select(select)

    def ties(self) -> dict[str, str]:
        """Map each repeated use of a shared parameter to the name it is listed
        under."""
        first: dict[int, str] = {}
        aliases = {}
        for name, p in self.uses():
            if id(p) in first:
                aliases[name] = first[id(p)]
            else:
                first[id(p)] = name
        return aliases

    def _nets(self) -> Iterator[Net]:
        yield self
        for _, child in self.children():
            yield from child._nets()

    def _bind(self, table: BackendTable) -> None:
        for net in self._nets():
            object.__setattr__(net, "_backend", table)

    # -- modes (SPEC 12) ------------------------------------------------------------
    def train(self, mode: bool | None = True) -> Net:
        """Pin training mode (``False``: inference) on this net and its children.

        The pin beats ``unified.training(...)`` and the call's default (training
        inside ``value_and_grad``/``Trainer.step``, inference in a plain call) until
        ``net.train(None)`` removes it. Children added later are not pinned.
        Returns the net.
        """
        _modes.pin(self, mode)
        return self

    def eval(self) -> Net:
        """Pin inference mode on this net and its children (``train(False)``)."""
        return self.train(False)

    # -- initialization --------------------------------------------------------------
    def initialize(
        self, init: _init.Initializer | str | None = None, force_reinit: bool = False
    ) -> None:
        """Initialize every parameter on the active backend.

        Precedence: ``p.initialize(init)`` > the layer's initializer
        (``weight_initializer=``) > ``init`` > ``Uniform(0.07)``. Parameters with
        unknown dims are drawn at the first forward, with the same values. An
        initialized parameter is left unchanged (with a warning) unless
        ``force_reinit=True``, which redraws in place.
        """
        table = self._backend or _backend.current_backend()
        global_init = _init.create(init)
        seed, epoch = _init.next_epoch()
        skipped = [
            name
            for name, p in self._listing().items()
            if not p._setup(name, global_init, seed, epoch, table, force_reinit)
        ]
        self._bind(table)
        _modes.record_names(self)
        if skipped:
            warnings.warn(
                f"{len(skipped)} parameter(s) already initialized were left unchanged "
                f"({', '.join(skipped[:4])}{', ...' if len(skipped) > 4 else ''}); "
                "pass force_reinit=True to draw them again.",
                stacklevel=2,
            )

    def infer_shape(self, *inputs: Any) -> None:
        """Materialize deferred parameters from example inputs or input shapes.

        Each argument is an array or a shape tuple; one forward pass runs on zeros of
        those shapes (no gradient is recorded), so every unknown dim is filled.
        """
        table = self._backend or _backend.current_backend()
        args = [
            table.zeros(tuple(x), "float32") if isinstance(x, (tuple, list)) else x
            for x in inputs
        ]
        with _modes.shape_only():
            self(*args)

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to zeros."""
        self.params().zero_grad()

    # -- devices ---------------------------------------------------------------------
    def to(self, device: Any) -> Net:
        """Move every parameter, state, gradient and optimizer state to ``device``
        (``"cpu"``, ``"cuda:0"``, a framework device object); return the net.

        Later arrays of the net (deferred parameters, converted batches, dropout
        masks) are created there too. See :mod:`unified.placement`.
        """
        from unified.placement import move_net

        return move_net(self, device)

    @property
    def device(self) -> str:
        """The name of the device the net creates its arrays on."""
        return (self._backend or _backend.current_backend()).device

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str, optimizer: Any = None) -> None:
        """Write the parameters (and optionally optimizer state) to a safetensors
        file."""
        from unified.checkpoint import save

        save(self, path, optimizer=optimizer)

    def load(self, path: str, strict: bool = True, optimizer: Any = None) -> None:
        """Load a checkpoint written by :meth:`save`; see :func:`unified.load`."""
        from unified.checkpoint import load

        load(self, path, strict=strict, optimizer=optimizer)

    # -- interop (SPEC 14) ------------------------------------------------------------
    def to_native(self, framework: str) -> Any:
        """Return this net as a model of ``framework``: ``"torch"`` (a
        ``torch.nn.Module``), ``"mxnet"`` (a Gluon ``HybridBlock``) or ``"jax"``
        (``(apply_fn, params)``); see :mod:`unified.interop.export`."""
        from unified.interop.export import to_native

        return to_native(self, framework)

    # -- display ---------------------------------------------------------------------
    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        described = self._describe()
        if described:
            return f"{type(self).__name__}({described})"
        children = list(self.children())
        own = [
            f"  {n}: {p.shape}"
            for n, p in self._entries.items()
            if isinstance(p, Parameter)
        ]
        if not children and not own:
            return f"{type(self).__name__}()"
        lines = [f"{type(self).__name__}("]
        lines += own
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


def _bump() -> None:
    global _generation
    _generation += 1


class Sequential(Net):
    """Children run one after another; they are named ``0``, ``1``, ...

    Example::

        >>> import unified as U
        >>> net = U.Sequential(U.Dense(8, activation="relu"), U.Dense(1))
        >>> len(net), list(net.params())
        (2, ['0.weight', '0.bias', '1.weight', '1.bias'])
    """

    def __init__(self, *layers: Net) -> None:
        super().__init__()
        self.add(*layers)

    def add(self, *layers: Net) -> None:
        """Append layers (Gluon's ``net.add``)."""
        for layer in layers:
            if not isinstance(layer, Net):
                raise TypeError(
                    f"Sequential takes unified.Net layers, got {type(layer).__name__}"
                )
            self._register(str(len(self._entries)), layer)
            if self._backend is not None and layer._backend is None:
                layer._bind(self._backend)

    def __getitem__(self, index: int | slice) -> Any:
        layers = [v for v in self._entries.values() if isinstance(v, Net)]
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Net]:
        return (v for v in self._entries.values() if isinstance(v, Net))

    def forward(self, x: Any) -> Any:
        for layer in self:
            x = layer(x)
        return x
