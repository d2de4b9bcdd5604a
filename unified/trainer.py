"""``Trainer``: one call per training step (forward, backward, optimizer update).

On a backend with the ``jit`` capability (JAX; NumPy, whose jit traces the step
once and replays the recorded kernels; MXNet, whose jit turns it into ``CachedOp``
graphs), the whole step is compiled into one function of (parameters, optimizer
state, coefficients, batch), built by :mod:`unified.pure_step`; on a backend with
the capability ``donate`` it may write the new values into the old arrays. It is
compiled once per structure (which parameters train, which update terms exist, the
loss function) and reused for every input shape the backend's jit caches; learning
rates, ``lr_mult``/``wd_mult`` values and bias corrections are inputs, so changing
them never reuses a stale value. NumPy batches enter the compiled function as private
host copies (floating data cast to the net's dtype, SPEC 10), which it transfers
inside the call: no separate conversion per argument. Elsewhere the step is
``value_and_grad`` followed by ``optimizer.step()``, with the structure (trainable
parameters, state parameters, backend) found once per plan, not per step.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> net = U.Dense(1, in_units=2); net.initialize(U.init.Zeros())
    >>> trainer = U.Trainer(net, U.optim.SGD(net.params(), lr=0.5))
    >>> x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")
    >>> def loss_fn(net, x, y):
    ...     return U.losses.mse_loss(net(x), y)
    >>> float(trainer.step(loss_fn, x, y))
    1.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from unified import backend as _backend
from unified import checks, nets
from unified import data as _data
from unified import fit as _fit
from unified import modes as _modes
from unified.autodiff import (
    LossFn,
    backend_of,
    convert_batch,
    ensure_materialized,
    gradient_step,
    trainable,
)
from unified.errors import StructureError
from unified.nets import Net
from unified.optim import Optimizer
from unified.pure_step import DONATED, pure_step, unshare

DONATE_MIN_BYTES = 1 << 20
"""With ``Trainer(donate=None)``: the least bytes of parameters and optimizer
state a compiled step donates (JAX spends about 2 us per donated array at each
call; a step over a MiB of them saves more than that in output buffers)."""


class Trainer:
    """Train ``net`` with ``optimizer``; ``step(loss_fn, *batch)`` returns the loss.

    Arguments:
        net: the model.
        optimizer: an optimizer built over (some of) ``net``'s parameters.
        compile: use the backend's ``jit`` when it has one (default ``True``).
        world: a :mod:`unified.distributed` world: ``step`` then takes this
            process's share of the batch and trains data-parallel (gradients
            averaged over the global batch before the update; see docs/scaling.md).
        donate: whether a compiled step on a backend with the capability
            ``donate`` (JAX, NumPy) writes the new parameters and optimizer state
            into the old arrays' memory (see :mod:`unified.donation`): ``None``
            (default) always on a backend that updates in place anyway
            (capability ``inplace``: NumPy), elsewhere when they hold at least
            :data:`DONATE_MIN_BYTES` (JAX spends a little per donated array at
            each call; it pays for large arrays); ``True`` always, ``False``
            never. What users see is the same.
    """

    def __init__(
        self,
        net: Net,
        optimizer: Optimizer,
        compile: bool = True,
        world: Any = None,
        donate: bool | None = None,
    ) -> None:
        if not isinstance(net, Net):
            raise TypeError(
                f"Trainer: net must be a unified.Net, got {type(net).__name__}"
            )
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                "Trainer: optimizer must be a unified optimizer (e.g. "
                f"unified.SGD(net.params(), lr=0.1)), got {type(optimizer).__name__}"
            )
        self.net = net
        self.optimizer = optimizer
        self.compile = compile
        self.world = world
        self.donate = donate
        # key -> (compiled step, which state parameters its trace wrote, the
        # messages of the traced checks, the dropout-mask requests, the host
        # checks of batch arguments): see unified.checks and unified.modes
        self._compiled: dict[Any, tuple[Any, ...]] = {}
        self._plan: _Plan | None = None
        # the coefficient rows of the last step, their native array, its table
        # and dtype
        self._coeffs: tuple[list[list[float]], Any, Any, str] | None = None

    @property
    def compilations(self) -> int:
        """How many step functions have been built (each compiles once per shape)."""
        return len(self._compiled)

    def step(self, loss_fn: LossFn, *batch: Any) -> Any:
        """Run one step on ``batch``; return the loss (a 0-d native array).

        Pass the same ``loss_fn`` object every step: compiled steps are cached by it.
        """
        plan = self._plan
        world = self.world
        if world is None and plan is not None and plan.compiled and self._current(plan):
            # The usual compiled step: NumPy batches go to the compiled function
            # as private host copies (one transfer each, inside the call).
            host = _data.private_host_batch(batch, plan.float_dtype)
            if host is not None:
                return self._compiled_step(plan, loss_fn, tuple(host))
        given = batch
        batch = convert_batch(self.net, batch, "Trainer.step")
        if world is not None:  # JAX: shard the rows over the mesh
            batch = world.place_batch(batch)
        plan = self._plan_for(loss_fn, batch)
        if plan.compiled:  # a sharded batch: XLA reduces the gradients
            return self._compiled_step(plan, loss_fn, batch)
        # value_and_grad(loss_fn), with the structure the plan already found. Labels
        # and indices passed straight in are checked on the host copy the user
        # gave, after the backward and before anything is written (no copy back).
        with checks.collecting(batch, eager=True) as found:
            checked: list[bool] = []

            def check() -> None:
                checked.append(True)
                _check_arguments(found.host, batch, plan.table, given)

            try:
                loss, _ = gradient_step(
                    self.net,
                    loss_fn,
                    batch,
                    plan.names,
                    plan.train,
                    plan.table,
                    plan.states,
                    plan.others,
                    check=check,
                )
            except Exception:
                # A kernel that checks indices itself (torch, NumPy) failed first:
                # report the host check's error instead, if it fails.
                if not checked:
                    _check_arguments(found.host, batch, plan.table, given)
                raise
        if world is not None:  # between backward and the update, as DDP
            rows = (
                batch[0].shape[0] if batch and getattr(batch[0], "shape", ()) else None
            )
            world.reduce_gradients(self.net, rows)
        self.optimizer.step()
        return loss

    def fit(
        self,
        data: Any,
        epochs: int = 1,
        batch_size: int | None = None,
        validation_data: Any = None,
        metrics: Any = ("accuracy",),
        shuffle: bool = True,
        loss: Any = None,
        verbose: int = 1,
        callbacks: Any = (),
    ) -> dict[str, list[float]]:
        """Train on ``data`` for ``epochs`` epochs; return the history. See
        :mod:`unified.fit` (batches, shuffling, metrics, the default loss)."""
        return _fit.fit(
            self,
            data,
            epochs,
            batch_size,
            validation_data,
            metrics,
            shuffle,
            loss,
            verbose,
            callbacks,
        )

    def evaluate(
        self,
        data: Any,
        batch_size: int | None = None,
        metrics: Any = ("accuracy",),
        loss: Any = None,
    ) -> dict[str, float]:
        """Return the loss and metrics on ``data`` in inference mode (see
        :mod:`unified.fit`)."""
        return _fit.evaluate(self, data, batch_size, metrics, loss)

    def predict(self, data: Any, batch_size: int | None = None) -> np.ndarray:
        """Return the net's outputs on ``data`` as one NumPy array (see
        :mod:`unified.fit`)."""
        return _fit.predict(self, data, batch_size)

    @staticmethod
    def _current(plan: _Plan) -> bool:
        """Whether ``plan`` still describes the net (no registration, no freezing)."""
        return plan.generation == nets._generation and plan.frozen == tuple(
            p.frozen for p in plan.params
        )

    def _plan_for(self, loss_fn: LossFn, batch: tuple[Any, ...]) -> _Plan:
        """The step's structure, rebuilt only when the net or a frozen flag changed."""
        plan = self._plan
        if plan is not None and self._current(plan):
            return plan
        ensure_materialized(self.net, loss_fn, batch)
        params = list(self.net._listing().values())
        inside = {id(p) for p in params}
        outside = [
            self.optimizer.name_of(p)
            for group in self.optimizer.param_groups
            for p in group["params"]
            if id(p) not in inside
        ]
        if outside:
            raise StructureError(
                f"the optimizer updates {len(outside)} parameter(s) that are not in "
                f"the net: {outside}. Build the optimizer from net.params() (again "
                "after load() re-ties parameters or share() replaces them)."
            )
        table = backend_of(self.net, params)
        subnets = list(self.net._nets())
        compiled = self.compile and "jit" in table.capabilities
        # Host-drawn forward randomness (Dropout) enters a compiled step as inputs.
        random = any(getattr(n, "draws_host_randomness", False) for n in subnets)
        names, train = trainable(self.net)
        others = [p for p in params if p.frozen or not p.trainable]
        held = [p for p in others if not p.trainable]
        plan = self._plan = _Plan(
            generation=nets._generation,
            params=params,
            frozen=tuple(p.frozen for p in params),
            table=table,
            compiled=compiled,
            names=names,
            train=train,
            others=others,
            key=(tuple(map(id, train)), tuple(map(id, others))),
            nets=subnets,
            states=held,
            random=random,
            float_dtype=self.net._float_dtype,
        )
        return plan

    def _compiled_step(
        self, plan: _Plan, loss_fn: LossFn, batch: tuple[Any, ...]
    ) -> Any:
        opt, table = self.optimizer, plan.table
        entries = list(opt.entries())
        states = [opt.state_for(p) for _, p in entries]
        host = [
            opt.coefficients(g, p, st["step"] + 1)
            for (g, p), st in zip(entries, states)
        ]
        # One float32 array (float64 for a float64 net: its updates keep full
        # precision) holds every coefficient of the step: one host-to-device
        # transfer instead of one per scalar. Rows follow ``entries``.
        cdtype = "float64" if plan.float_dtype == "float64" else "float32"
        rows = [list(c.values()) for c in host]
        last = self._coeffs
        if (
            last is not None
            and last[2] is table  # the net was not moved (net.to) since
            and last[3] == cdtype
            and last[0] == rows  # the same Python floats: the same array
        ):
            device_coeffs = last[1]  # unchanged (plain SGD): skip the transfer
        else:
            coeffs = np.array(rows, dtype=cdtype)
            device_coeffs = table.asarray(coeffs, cdtype)
            self._coeffs = (rows, device_coeffs, table, cdtype)
        statics = tuple(opt.static(g, p) for g, p in entries)
        # The forward is traced in the mode it resolves to (training unless a pin or
        # a unified.training block says otherwise), so the mode is part of the key.
        mode = _modes.signature(plan.nets)
        key: tuple[Any, ...] = (
            loss_fn,
            plan.key,
            tuple(id(p) for _, p in entries),
            statics,
            mode,
            table,  # the device's table (net.to gives the step another one)
        )
        if plan.random:  # the masks' shapes follow the batch's
            key += (tuple(tuple(getattr(b, "shape", ())) for b in batch),)
        hit = self._compiled.get(key)
        fresh = hit is None
        if hit is None:
            names = tuple(tuple(c) for c in host)
            written: list[bool] = []
            messages: list[str] = []
            host_checks: list[Any] = []
            pure = pure_step(
                self.net,
                opt,
                table,
                loss_fn,
                plan.train,
                plan.others,
                entries,
                statics,
                names,
                plan.states,
                written,
                messages,
                host_checks,
            )
            requests = (
                self._mask_requests(pure, plan, states, device_coeffs, batch)
                if plan.random
                else []
            )
            donating = "donate" in table.capabilities and self._donates(
                table, entries, states
            )
            stepping = {id(p) for _, p in entries}
            hit = self._compiled[key] = (
                table.jit(pure, donate=DONATED) if donating else table.jit(pure),
                written,
                messages,
                requests,
                host_checks,
                pure if donating else None,
                # trained but not updated by the optimizer (the second argument)
                [p for p in plan.train if id(p) not in stepping],
            )
        fn, written, messages, requests, host_checks, donor, unstepped = hit
        # The updated parameters (the optimizer's entries) come first: with
        # donation their arrays, and the optimizer state's, become the new ones.
        stepped = [p._data for _, p in entries]
        state_arrays = [st["arrays"] for st in states]
        args = (
            stepped,
            [p._data for p in unstepped],
            [p._data for p in plan.others],
            state_arrays,
            device_coeffs,
            list(batch),
            _modes.draw_masks(requests, table),
        )
        checked = False  # the host checks of batch arguments
        previous = _backend._active
        _backend.activate(table)
        try:
            if donor is not None:
                if fresh:  # trace without running: what will the step check?
                    fn.trace(*args)
                    if messages:  # a traced check may fail after the call: the
                        # old arrays must survive it, so this step never donates
                        hit = (table.jit(donor), *hit[1:5], None, unstepped)
                        self._compiled[key] = hit
                        fn = hit[0]
                if hit[5] is not None:
                    # Labels first: a donating step cannot be undone.
                    _check_arguments(host_checks, batch, table)
                    checked = True
                    if "inplace" not in table.capabilities:
                        # (in place, a held array sees the update, as eagerly)
                        unshare(table, stepped, state_arrays)
            new_ws, new_states, loss, grads, held, counts = fn(*args)
        except Exception:
            # A backend whose kernels check indices (NumPy) fails inside the step
            # on a bad label: report the label check's error instead, if it fails.
            if not checked:
                _check_arguments(host_checks, batch, table)
            raise
        finally:
            if previous is not None:
                _backend.activate(previous)
        if getattr(fn, "declined", False):  # run eagerly by the backend's jit
            plan.compiled = False  # later steps: Trainer's own eager step
        # Nothing has been written back yet. Labels passed straight in are checked
        # on the host (no wait for the step); other checks are outputs of the step.
        if not checked:
            _check_arguments(host_checks, batch, table)
        for count, message in zip(counts, messages, strict=True):
            if float(count) > 0:
                raise IndexError(message)
        for st in states:
            st["step"] += 1  # only once the step has succeeded
        _modes.apply_writes(table, plan.states, written, held)
        for p, g in zip(plan.train, grads):
            p._grad = g
        for p in plan.others:
            p._grad = None  # as value_and_grad: no stale gradient after unfreezing
        for (_, p), w, st, s in zip(entries, new_ws, states, new_states):
            p._data = table.assign(p._data, w)
            st["arrays"] = s
        return loss

    def _donates(
        self, table: Any, entries: list[Any], states: list[dict[str, Any]]
    ) -> bool:
        """Whether a new compiled step donates (the ``donate`` option)."""
        if self.donate is not None:
            return bool(self.donate)
        if "inplace" in table.capabilities:  # free: the update writes in place
            return True
        arrays = [p._data for _, p in entries]
        arrays += [a for st in states for a in st["arrays"].values()]
        return sum(int(getattr(a, "nbytes", 0)) for a in arrays) >= DONATE_MIN_BYTES

    def _mask_requests(
        self,
        pure: Callable[..., Any],
        plan: _Plan,
        states: list[dict[str, Any]],
        coeffs: Any,
        batch: tuple[Any, ...],
    ) -> list[Any]:
        """Which dropout masks one step asks for, in order (layer, shape, ...).

        Found by running the uncompiled step once (the discovery run: no mask is
        drawn, no layer's count advances, nothing is written back); each compiled
        step then gets the masks drawn on the host as inputs.
        """
        batch = convert_batch(self.net, batch, "Trainer.step")  # may be host copies
        previous = _backend._active
        _backend.activate(plan.table)
        try:
            entries = [p for _, p in self.optimizer.entries()]
            stepping = {id(p) for p in entries}
            with _modes.feeding_masks(_modes.MaskFeed(None)) as feed:
                pure(
                    [p._data for p in entries],
                    [p._data for p in plan.train if id(p) not in stepping],
                    [p._data for p in plan.others],
                    [st["arrays"] for st in states],
                    coeffs,
                    list(batch),
                    None,
                )
        finally:
            if previous is not None:
                _backend.activate(previous)
        return feed.requests


def _check_arguments(
    host_checks: list[Any],
    batch: tuple[Any, ...] | list[Any],
    table: Any,
    given: tuple[Any, ...] | None = None,
) -> None:
    """Run the deferred host checks of batch arguments (``(index, bound, message)``,
    see :class:`unified.checks.Collector`). An integer NumPy array, in ``given``
    (the batch as the user passed it, before conversion) or ``batch`` itself, is
    read directly; anything else is copied to the host."""
    source = batch if given is None else given
    for index, high, message_of in host_checks:
        value = source[index] if index < len(source) else None
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
            value = table.to_numpy(batch[index])
        checks.check_host(value, high, message_of)


@dataclass(eq=False)
class _Plan:
    """What a step needs to know about the net's structure (cached between steps)."""

    generation: int
    params: list[Any]
    frozen: tuple[bool, ...]
    table: Any
    compiled: bool
    names: list[str]  # the structural names of ``train``
    train: list[Any]  # the trainable parameters, differentiated
    others: list[Any]
    key: tuple[Any, ...]  # identifies the structure among compiled steps
    nets: list[Any]  # every sub-net: their pins are part of a compiled step's key
    states: list[Any]  # state parameters (also in ``others``), carried functionally
    random: bool  # some sub-net draws host masks (inputs of a compiled step)
    float_dtype: str  # the dtype floating batch data takes (SPEC 10)
