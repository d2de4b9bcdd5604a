"""``unified demo``: one small CNN, one seed, trained on every backend with the same
batches.

The data is scikit-learn's 8x8 digits (1,797 images, shipped with scikit-learn, no
download), split 80/20 by a permutation drawn from the seed. The net is
``Conv2D(8) -> ReLU -> MaxPool2D -> Conv2D(16) -> ReLU -> Flatten -> Dense(10)``,
trained with SGD (momentum 0.9) through :meth:`unified.Trainer.fit`. Every backend
starts from the same weights (drawn on the host) and sees the same batches in the
same order, so the table shows how far the backends drift apart in float32
arithmetic.

Run it with ``unified demo`` (``--backends``, ``--epochs``, ``--seed``,
``--plot FILE``); it needs the ``demo`` extra: ``pip install 'unified[demo]'``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from unified.callbacks import Callback, Run

__all__ = ["MissingDependency", "Result", "build_net", "load_digits", "main"]

BATCH = 32
LR = 0.1
MOMENTUM = 0.9


class MissingDependency(RuntimeError):
    """An optional package the demo needs is not installed (the message says which
    pip extra installs it)."""


@dataclass
class Result:
    """One backend's run."""

    name: str
    initial: np.ndarray  # every parameter, flattened in name order
    final: np.ndarray
    history: dict[str, list[float]]
    step_seconds: float  # median wall time of one training step


class _StepTimer(Callback):
    """Times each training step (``on_batch_begin`` to ``on_batch_end``)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_batch_begin(self, run: Run, batch: int) -> None:
        self._start = time.perf_counter()

    def on_batch_end(self, run: Run, batch: int, logs: dict[str, float]) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def load_digits(seed: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """``((x_train, y_train), (x_test, y_test))``: images ``(n, 1, 8, 8)`` scaled to
    [0, 1] (float32) and int64 labels, split 80/20 by a seeded permutation."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise MissingDependency(
            "the demo needs scikit-learn: pip install 'unified[demo]'"
        ) from None
    digits = _load()
    x = (digits.images / 16.0).astype("float32")[:, None]
    y = digits.target.astype("int64")
    sequence = np.random.SeedSequence([seed, 3])
    order = np.random.Generator(np.random.Philox(sequence)).permutation(len(x))
    cut = int(0.8 * len(x))
    train, test = order[:cut], order[cut:]
    return (x[train], y[train]), (x[test], y[test])


def build_net() -> Any:
    """The demo's CNN (input ``(n, 1, 8, 8)``, 10 classes)."""
    import unified as U

    return U.Sequential(
        U.Conv2D(8, kernel_size=3, padding=1),
        U.ReLU(),
        U.MaxPool2D(2),
        U.Conv2D(16, kernel_size=3, padding=1),
        U.ReLU(),
        U.Flatten(),
        U.Dense(10),
    )


def _flat(net: Any) -> np.ndarray:
    return np.concatenate([p.numpy().ravel() for p in net.params().values()])


def train(name: str, seed: int, epochs: int, data: Any, verbose: int) -> Result:
    """Train the demo's net on backend ``name``; return what the table shows."""
    import unified as U

    (x, y), test = data
    with U.use_backend(name):
        U.seed(seed)
        net = build_net()
        net.initialize()
        net.infer_shape((1, *x.shape[1:]))
        initial = _flat(net)
        trainer = U.Trainer(net, U.SGD(net.params(), lr=LR, momentum=MOMENTUM))
        timer = _StepTimer()
        history = trainer.fit(
            (x, y),
            epochs=epochs,
            batch_size=BATCH,
            validation_data=test,
            verbose=verbose,
            callbacks=[timer],
        )
        return Result(
            name, initial, _flat(net), history, float(np.median(timer.seconds))
        )


def _missing_hint(names: list[str]) -> str | None:
    """How to install the built-in backends that are not usable, if any."""
    from unified.plugins import BUILTIN_EXTRAS, registry

    usable = registry.usable()
    missing = [n for n in BUILTIN_EXTRAS if n not in usable and n not in names]
    if not missing:
        return None
    extras = " ".join(f"'{BUILTIN_EXTRAS[n]}'" for n in missing)
    return (
        f"Not installed: {', '.join(missing)}. Add them with: pip install {extras} "
        "(or 'unified[all]'), then run unified demo again."
    )


def main(backends: list[str] | None, epochs: int, seed: int, plot: str | None) -> int:
    """Run the demo; print the table (and write the plot). Returns 0."""
    from unified.plugins import registry
    from unified.progress import print_table

    names = backends if backends else sorted(registry.usable())
    for name in names:
        registry.get(name)  # an unknown or broken name fails before any work
    if "numpy" in names:  # the reference first
        names = ["numpy", *[n for n in names if n != "numpy"]]
    if plot is not None:
        _pyplot()  # a missing matplotlib fails before any work
    data = load_digits(seed)
    n_train, n_test = len(data[0][0]), len(data[1][0])
    print(
        f"unified demo: CNN on 8x8 digits ({n_train} train / {n_test} test images), "
        f"seed {seed}, {epochs} epoch(s), batch {BATCH}, "
        f"SGD lr={LR} momentum={MOMENTUM}"
    )
    results = [train(name, seed, epochs, data, verbose=1) for name in names]
    ref = results[0]
    rows = [
        (
            r.name,
            f"{np.max(np.abs(r.initial - ref.initial)):.1e}",
            f"{r.history['loss'][-1]:.4f}",
            f"{r.history['val_accuracy'][-1]:.3f}",
            f"{1000 * r.step_seconds:.2f}",
            f"{np.max(np.abs(r.final - ref.final)):.1e}",
        )
        for r in results
    ]
    print_table(
        f"Same seed, same batches: every backend against {ref.name}",
        [
            "backend",
            f"initial weights vs {ref.name}",
            "final loss",
            "test accuracy",
            "ms/step",
            f"final weights vs {ref.name}",
        ],
        rows,
    )
    print(
        "(weights compared as the max abs. difference; ms/step is the median "
        "training step)"
    )
    if plot is not None:
        write_plot(plot, results, seed)
        print(f"wrote {plot}")
    hint = None if backends else _missing_hint(names)
    if hint:
        print(hint)
    return 0


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingDependency(
            "--plot needs matplotlib: pip install 'unified[demo]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plot(path: str, results: list[Result], seed: int) -> None:
    """One PNG: every backend's training loss and test accuracy per epoch."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    styles = ["-", "--", ":", "-."]
    for i, r in enumerate(results):
        epochs = np.arange(1, len(r.history["loss"]) + 1)
        style = {"linestyle": styles[i % 4], "marker": "o", "markersize": 3}
        left.plot(epochs, r.history["loss"], label=r.name, **style)
        right.plot(epochs, r.history["val_accuracy"], label=r.name, **style)
    left.set(title="training loss", xlabel="epoch")
    right.set(title="test accuracy", xlabel="epoch")
    right.legend(loc="lower right")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"unified demo: one CNN, seed {seed}, same batches on every backend")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
