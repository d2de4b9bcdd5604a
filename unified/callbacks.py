"""Callbacks of :meth:`unified.Trainer.fit`: checkpointing and early stopping.

A callback subclasses :class:`Callback` and overrides the hooks it needs. Each hook
receives the :class:`Run` (the trainer, the history so far, and ``stop``: set it to
``True`` to end training after the current epoch). ``on_batch_begin`` and
``on_batch_end`` bracket the training step alone (forward, backward, update).

A monitored value is one of the epoch's logs: ``"loss"``, a metric name such as
``"accuracy"``, or either with the ``"val_"`` prefix (with ``validation_data``).
``mode="auto"`` maximizes names ending in ``accuracy`` and minimizes the rest.

Example::

    >>> from unified.callbacks import EarlyStopping
    >>> stop = EarlyStopping(monitor="val_loss", patience=2)
    >>> stop.mode
    'min'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from unified.validation import number, one_of, positive_int

if TYPE_CHECKING:
    from unified.nets import Net
    from unified.optim import Optimizer
    from unified.trainer import Trainer

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "Run"]


@dataclass(eq=False)
class Run:
    """What callbacks see of a running ``fit``.

    Arguments:
        trainer: the :class:`~unified.Trainer` being fitted.
        epochs: the number of epochs asked for.
        history: the logs of the finished epochs (a list per key).
        stop: set to ``True`` to end training after the current epoch.
    """

    trainer: Trainer
    epochs: int
    history: dict[str, list[float]] = field(default_factory=dict)
    stop: bool = False

    @property
    def net(self) -> Net:
        """The net being trained."""
        return self.trainer.net

    @property
    def optimizer(self) -> Optimizer:
        """The trainer's optimizer."""
        return self.trainer.optimizer


class Callback:
    """Base class: every hook does nothing; override those you need."""

    def on_train_begin(self, run: Run) -> None:
        """Called once, before the first epoch."""

    def on_epoch_begin(self, run: Run, epoch: int) -> None:
        """Called before epoch ``epoch`` (counted from 0)."""

    def on_batch_begin(self, run: Run, batch: int) -> None:
        """Called just before the training step on batch ``batch`` of the epoch."""

    def on_batch_end(self, run: Run, batch: int, logs: dict[str, float]) -> None:
        """Called just after the step; ``logs["loss"]`` is the batch's loss."""

    def on_epoch_end(self, run: Run, epoch: int, logs: dict[str, float]) -> None:
        """Called after the epoch (and its validation); ``logs`` are its values."""

    def on_train_end(self, run: Run) -> None:
        """Called once, after the last epoch (also after an early stop)."""


class _Monitor(Callback):
    """Tracks the best value of one log entry."""

    def __init__(self, monitor: str, mode: str, min_delta: float, owner: str) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"{owner}: monitor must be a log name, got {monitor!r}")
        mode = one_of(mode, ("auto", "min", "max"), "mode", owner)
        if mode == "auto":
            mode = "max" if monitor.removeprefix("val_").endswith("accuracy") else "min"
        self.monitor = monitor
        self.mode: str = mode
        self.min_delta = number(min_delta, "min_delta", owner, low=0.0)
        self.best: float | None = None
        self._owner = owner

    def _value(self, logs: dict[str, float]) -> float:
        if self.monitor not in logs:
            hint = (
                " (pass validation_data to fit to get val_* values)"
                if self.monitor.startswith("val_")
                else ""
            )
            raise ValueError(
                f"{self._owner}: monitor {self.monitor!r} is not among the epoch's "
                f"logs {sorted(logs)}{hint}"
            )
        return float(logs[self.monitor])

    def _improves(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta`` (the first
        value always does); records it as the best if so."""
        best = self.best
        better = (
            best is None
            or (self.mode == "min" and value < best - self.min_delta)
            or (self.mode == "max" and value > best + self.min_delta)
        )
        if better:
            self.best = value
        return better


class ModelCheckpoint(_Monitor):
    """Save the net with its optimizer state (``net.save(path, optimizer=...)``).

    Arguments:
        path: the file to write; may contain ``{epoch}`` (counted from 1) and any
            log name, e.g. ``"ckpt-{epoch}-{val_loss:.3f}.safetensors"``.
        monitor: the log entry that decides what is best.
        save_best_only: save only when ``monitor`` improves (by more than
            ``min_delta``); otherwise save after every epoch.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (see the module docstring).
        min_delta: the smallest change that counts as an improvement.

    After training, ``best`` is the best monitored value and ``best_epoch`` the
    epoch (from 0) that was saved last.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = True,
        mode: str = "auto",
        min_delta: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta, "ModelCheckpoint")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"ModelCheckpoint: path must be a str, got {path!r}")
        self.path = os.fspath(path)
        self.save_best_only = bool(save_best_only)
        self.best_epoch: int | None = None

    def on_train_begin(self, run: Run) -> None:
        self.best, self.best_epoch = None, None

    def on_epoch_end(self, run: Run, epoch: int, logs: dict[str, float]) -> None:
        improved = self._improves(self._value(logs))
        if improved or not self.save_best_only:
            run.net.save(self.path.format(epoch=epoch + 1, **logs), run.optimizer)
            self.best_epoch = epoch


class EarlyStopping(_Monitor):
    """Stop training when ``monitor`` has stopped improving.

    Arguments:
        monitor: the log entry to watch.
        patience: how many epochs in a row without an improvement end training
            (``0`` and ``1`` both stop at the first such epoch).
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (see the module docstring).

    After training, ``stopped_epoch`` is the epoch (from 0) training stopped after,
    or ``None`` if it ran to the end.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
    ) -> None:
        super().__init__(monitor, mode, min_delta, "EarlyStopping")
        self.patience = positive_int(patience, "patience", "EarlyStopping", minimum=0)
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_train_begin(self, run: Run) -> None:
        self.best, self.wait, self.stopped_epoch = None, 0, None

    def on_epoch_end(self, run: Run, epoch: int, logs: dict[str, float]) -> None:
        if self._improves(self._value(logs)):
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            run.stop = True
            self.stopped_epoch = epoch


def check_callbacks(callbacks: Any, owner: str) -> list[Callback]:
    """Return ``callbacks`` as a list of :class:`Callback`; else raise
    ``TypeError``."""
    if isinstance(callbacks, Callback):
        return [callbacks]
    try:
        items = list(callbacks)
    except TypeError:
        items = [callbacks]
    for cb in items:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"{owner}: callbacks must be unified.callbacks.Callback objects (e.g. "
                f"EarlyStopping(...)), got {type(cb).__name__}"
            )
    return items
