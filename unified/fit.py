"""``Trainer.fit``, ``Trainer.evaluate`` and ``Trainer.predict``: the loop, written
once.

Data is either ``(x, y)`` NumPy arrays, cut into batches of ``batch_size`` (32 by
default; the last batch may be smaller), or an iterable of ``(x, y)`` batches used as
it is (a list, or any object whose ``__iter__`` starts over, for several epochs).

Same batches on every backend: with ``shuffle=True`` the order of epoch ``e`` is a
permutation drawn on the host from
``Generator(Philox(SeedSequence([seed, 2, e])))``, where ``seed`` is
:func:`unified.init.get_seed` when ``fit`` starts. The same seed gives every
backend the same batches in the same order.

The epoch's ``loss`` is the mean of the training steps' losses weighted by batch
size. Metrics are computed on the host from predictions: for training, from an
inference-mode forward of each batch just before its step (Dropout off, BatchNorm on
its running statistics); for ``evaluate`` and validation, from the inference-mode
forward that also gives the loss. A metric is ``"accuracy"`` (argmax of the
predictions against integer labels, or against the argmax of one-hot labels) or a
callable ``metric(y_true, y_pred) -> float`` on NumPy arrays, named by its
``__name__`` and averaged over batches weighted by their size.

The default loss is :func:`unified.losses.softmax_cross_entropy` for integer labels;
any other loss is ``loss=callable(net, x, y)`` returning a scalar.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> U.seed(0)
    >>> net = U.Sequential(U.Dense(8, activation="relu"), U.Dense(2))
    >>> net.initialize()
    >>> trainer = U.Trainer(net, U.Adam(net.params(), lr=0.05))
    >>> x = np.random.default_rng(0).standard_normal((64, 3)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int64")
    >>> history = trainer.fit((x, y), epochs=5, batch_size=16, verbose=0)
    >>> sorted(history), len(history["loss"])
    (['accuracy', 'loss'], 5)
    >>> history["loss"][-1] < history["loss"][0]
    True
    >>> trainer.predict(x[:4]).shape
    (4, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from unified import backend as _backend
from unified import init as _init
from unified import losses
from unified.callbacks import Run, check_callbacks
from unified.data import to_numpy
from unified.progress import make_bar
from unified.validation import one_of, positive_int

if TYPE_CHECKING:
    from unified.nets import Net
    from unified.trainer import Trainer

__all__ = ["evaluate", "fit", "predict"]

Metric = Callable[[np.ndarray, np.ndarray], float]
DEFAULT_BATCH = 32


def fit(
    trainer: Trainer,
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
    """Train for ``epochs`` epochs; return the history (a list per key, one value
    per epoch): ``loss``, each metric, and ``val_loss``/``val_<metric>`` when
    ``validation_data`` is given. See the module docstring."""
    owner = "Trainer.fit"
    epochs = positive_int(epochs, "epochs", owner)
    source = _Source.of(data, batch_size, bool(shuffle), owner, "data")
    val = (
        None
        if validation_data is None
        else _Source.of(validation_data, batch_size, False, owner, "validation_data")
    )
    named = _metrics(metrics, owner)
    loss_fn = _loss(loss, owner)
    verbose = one_of(verbose, (0, 1, 2), "verbose", owner)
    hooks = check_callbacks(callbacks, owner)
    seed = _init.get_seed()
    run = Run(trainer, epochs)
    with _on_backend(trainer.net):
        for cb in hooks:
            cb.on_train_begin(run)
        for epoch in range(epochs):
            for cb in hooks:
                cb.on_epoch_begin(run, epoch)
            bar = make_bar(verbose, f"epoch {epoch + 1}/{epochs}", source.steps())
            totals = _Totals(named)
            for i, (x, y) in enumerate(source.batches(seed, epoch)):
                if loss is None and i == 0:
                    _check_labels(to_numpy(y), owner)
                pred = to_numpy(trainer.net(x)) if named else None
                for cb in hooks:
                    cb.on_batch_begin(run, i)
                value = float(to_numpy(trainer.step(loss_fn, x, y)))
                totals.add(value, x, y, pred)
                for cb in hooks:
                    cb.on_batch_end(run, i, {"loss": value})
                bar.update(i + 1, totals.logs())
            logs = totals.result(owner, epoch)
            if val is not None:
                logs.update(
                    {f"val_{k}": v for k, v in _evaluate(trainer, val, named, loss)}
                )
            for key, value in logs.items():
                run.history.setdefault(key, []).append(value)
            bar.close(logs)
            for cb in hooks:
                cb.on_epoch_end(run, epoch, logs)
            if run.stop:
                break
        for cb in hooks:
            cb.on_train_end(run)
    return run.history


def evaluate(
    trainer: Trainer,
    data: Any,
    batch_size: int | None = None,
    metrics: Any = ("accuracy",),
    loss: Any = None,
) -> dict[str, float]:
    """Return the loss and metrics of the net on ``data`` in inference mode (each
    averaged over samples); ``data`` as for :func:`fit`."""
    owner = "Trainer.evaluate"
    source = _Source.of(data, batch_size, False, owner, "data")
    named = _metrics(metrics, owner)
    _loss(loss, owner)
    with _on_backend(trainer.net):
        return dict(_evaluate(trainer, source, named, loss))


def predict(trainer: Trainer, data: Any, batch_size: int | None = None) -> np.ndarray:
    """Return the net's outputs on ``data`` as one NumPy array, in inference mode.

    ``data`` is an array of inputs (cut into batches of ``batch_size``) or an
    iterable of batches, each an input array or a tuple whose first item is one.
    """
    owner = "Trainer.predict"
    if hasattr(data, "shape"):
        size = _batch_size(batch_size, owner)
        x = to_numpy(data)
        batches: Any = (x[i : i + size] for i in range(0, len(x), size))
    elif batch_size is not None:
        raise ValueError(_ITERABLE_BATCH.format(owner=owner))
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in iter(data))
    with _on_backend(trainer.net):
        outputs = [to_numpy(trainer.net(b)) for b in batches]
    if not outputs:
        raise ValueError(f"{owner}: data gave no batches")
    return np.concatenate(outputs)


# -- data ---------------------------------------------------------------------------
_ITERABLE_BATCH = (
    "{owner}: batch_size applies to (x, y) arrays; an iterable of batches is used "
    "as it is (leave batch_size out)"
)


class _Source:
    """Where the batches of an epoch come from."""

    def __init__(
        self, arrays: tuple[np.ndarray, np.ndarray] | None, iterable: Any, size: int
    ) -> None:
        self.arrays, self.iterable, self.size = arrays, iterable, size
        self.shuffle = False

    @classmethod
    def of(
        cls, data: Any, batch_size: Any, shuffle: bool, owner: str, what: str
    ) -> _Source:
        if (
            isinstance(data, (tuple, list))
            and len(data) == 2
            and all(hasattr(a, "shape") for a in data)
        ):
            x, y = to_numpy(data[0]), to_numpy(data[1])
            if x.ndim == 0 or y.ndim == 0 or len(x) != len(y) or len(x) == 0:
                raise ValueError(
                    f"{owner}: {what} must be (x, y) with the same number (> 0) of "
                    f"samples along axis 0, got shapes {x.shape} and {y.shape}"
                )
            source = cls((x, y), None, _batch_size(batch_size, owner))
            source.shuffle = shuffle
            return source
        if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
            raise TypeError(
                f"{owner}: {what} must be a tuple (x, y) of arrays or an iterable of "
                f"(x, y) batches, got {type(data).__name__}"
            )
        if batch_size is not None:
            raise ValueError(_ITERABLE_BATCH.format(owner=owner))
        return cls(None, data, 0)

    def steps(self) -> int | None:
        """Batches per epoch, if known."""
        if self.arrays is not None:
            return -(-len(self.arrays[0]) // self.size)
        try:
            return len(self.iterable)
        except TypeError:
            return None

    def batches(self, seed: int, epoch: int) -> Iterator[tuple[Any, Any]]:
        if self.arrays is None:
            for batch in iter(self.iterable):
                if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                    raise TypeError(
                        "each batch must be an (x, y) pair, got "
                        f"{type(batch).__name__}"
                        + (
                            f" of length {len(batch)}"
                            if hasattr(batch, "__len__")
                            else ""
                        )
                    )
                yield batch[0], batch[1]
            return
        x, y = self.arrays
        n = len(x)
        order = shuffled(seed, epoch, n) if self.shuffle else None
        for start in range(0, n, self.size):
            if order is None:
                yield x[start : start + self.size], y[start : start + self.size]
            else:
                index = order[start : start + self.size]
                yield x[index], y[index]


def shuffled(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of ``epoch``: a permutation of ``range(n)`` drawn from
    ``Philox(SeedSequence([seed, 2, epoch]))``, the same on every backend."""
    sequence = np.random.SeedSequence([seed, 2, epoch])
    return np.random.Generator(np.random.Philox(sequence)).permutation(n)


def _batch_size(value: Any, owner: str) -> int:
    return DEFAULT_BATCH if value is None else positive_int(value, "batch_size", owner)


@contextmanager
def _on_backend(net: Net) -> Iterator[None]:
    """Run with ``net``'s backend active (the one its parameters live on)."""
    table = net._backend or _backend.current_backend()
    previous = _backend._active
    _backend.activate(table)
    try:
        yield
    finally:
        if previous is not None:
            _backend.activate(previous)


# -- losses and metrics ---------------------------------------------------------------
def default_loss(net: Net, x: Any, y: Any) -> Any:
    """The default loss: softmax cross-entropy of ``net(x)`` against integer
    labels."""
    return losses.softmax_cross_entropy(net(x), y)


def _loss(loss: Any, owner: str) -> Callable[..., Any]:
    if loss is None:
        return default_loss
    if not callable(loss):
        raise TypeError(
            f"{owner}: loss must be a callable loss(net, x, y) returning a scalar, "
            f"e.g. lambda net, x, y: unified.losses.mse_loss(net(x), y); got "
            f"{type(loss).__name__}"
        )
    return loss


def _check_labels(y: np.ndarray, owner: str) -> None:
    if y.dtype.kind not in "iu":
        raise ValueError(
            f"{owner}: the default loss (softmax cross-entropy) takes integer class "
            f"labels, got {y.dtype} labels. Pass loss=callable(net, x, y), e.g. "
            "lambda net, x, y: unified.losses.mse_loss(net(x), y)"
        )


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The fraction of samples whose argmax prediction is the label (integer labels
    of shape ``(n,)``, or one-hot/probability labels shaped like ``y_pred``)."""
    if y_pred.ndim == y_true.ndim + 1:
        labels = y_true
    elif y_pred.shape == y_true.shape and y_pred.ndim >= 2:
        labels = y_true.argmax(axis=-1)
    else:
        raise ValueError(
            "accuracy takes class scores of shape (n, classes) and integer labels "
            f"(n,) or one-hot labels (n, classes); got predictions {y_pred.shape} "
            f"and labels {y_true.shape}. Pass metrics=() or a callable metric."
        )
    return float(np.mean(y_pred.argmax(axis=-1) == labels))


_NAMED: dict[str, Metric] = {"accuracy": accuracy}


def _metrics(metrics: Any, owner: str) -> dict[str, Metric]:
    if metrics is None:
        return {}
    items = [metrics] if isinstance(metrics, str) or callable(metrics) else metrics
    try:
        items = list(items)
    except TypeError:
        items = [items]
    named: dict[str, Metric] = {}
    for m in items:
        if isinstance(m, str):
            one_of(m, sorted(_NAMED), "a metric name", owner)
            named[m] = _NAMED[m]
        elif callable(m):
            named[getattr(m, "__name__", type(m).__name__)] = m
        else:
            raise TypeError(
                f"{owner}: metrics must be names ({sorted(_NAMED)}) or callables "
                f"metric(y_true, y_pred) -> float, got {m!r}"
            )
    return named


class _Totals:
    """Sample-weighted sums of the loss and the metrics over an epoch."""

    def __init__(self, metrics: dict[str, Metric]) -> None:
        self.metrics = metrics
        self.count = 0
        self.sums = dict.fromkeys(["loss", *metrics], 0.0)

    def add(self, loss: float, x: Any, y: Any, pred: np.ndarray | None) -> None:
        n = int(x.shape[0])
        self.count += n
        self.sums["loss"] += loss * n
        if pred is not None:
            labels = to_numpy(y)
            for name, fn in self.metrics.items():
                self.sums[name] += float(fn(labels, pred)) * n

    def logs(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def result(self, owner: str, epoch: int) -> dict[str, float]:
        if self.count == 0:
            raise ValueError(
                f"{owner}: the data gave no batches in epoch {epoch + 1}. An iterator "
                "(e.g. a generator) is used up after one pass: pass a list of batches "
                "or an object whose __iter__ starts over."
            )
        return self.logs()


def _evaluate(
    trainer: Trainer, source: _Source, named: dict[str, Metric], loss: Any
) -> list[tuple[str, float]]:
    net = trainer.net
    totals = _Totals(named)
    for x, y in source.batches(0, 0):
        if loss is None:
            out = net(x)
            _check_labels(to_numpy(y), "Trainer.evaluate")
            value = losses.softmax_cross_entropy(out, y)
        else:
            out = net(x) if named else None
            value = loss(net, x, y)
        pred = None if out is None else to_numpy(out)
        totals.add(float(to_numpy(value)), x, y, pred)
    return list(totals.result("Trainer.evaluate", 0).items())
