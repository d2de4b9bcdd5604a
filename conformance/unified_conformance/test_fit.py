"""``Trainer.fit``/``evaluate``/``predict`` against a float64 oracle of the same loop.

The oracle trains a softmax-regression net (one ``Dense``) with plain SGD in float64
NumPy: the batches of epoch ``e`` follow the permutation drawn from
``Philox(SeedSequence([seed, 2, e]))`` (the rule ``unified.fit`` documents), the
epoch's loss is the batch losses weighted by batch size, and accuracy comes from
the predictions of each batch before its step. A backend that shuffled differently,
dropped the last partial batch or weighted batches equally would fail here.
"""

from __future__ import annotations

import numpy as np

import unified as U

from .helpers import assert_close

SEED, LR, N, BATCH = 7, 0.5, 20, 8  # batches of 8, 8 and 4
X = np.random.default_rng(0).standard_normal((N, 4)).astype(np.float32)
Y = np.random.default_rng(1).integers(0, 3, N).astype(np.int64)


def _net():
    U.seed(SEED)
    net = U.Dense(3, in_units=4)
    net.initialize(U.init.Normal(0.5))
    return net


def _softmax_ce(w, b, x, y):
    """Loss, accuracy and the gradients of mean softmax cross-entropy (float64)."""
    z = x @ w.T + b
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(len(y)), y]))
    acc = np.mean(z.argmax(axis=1) == y)
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    return loss, acc, d.T @ x, d.sum(axis=0)


def _oracle(w, b, epochs, batches_of):
    """History of plain SGD over ``batches_of(epoch)`` (float64)."""
    w, b = w.astype(np.float64), b.astype(np.float64)
    history = {"loss": [], "accuracy": []}
    for epoch in range(epochs):
        total = {"loss": 0.0, "accuracy": 0.0}
        count = 0
        for x, y in batches_of(epoch):
            loss, acc, gw, gb = _softmax_ce(w, b, x.astype(np.float64), y)
            total["loss"] += loss * len(y)
            total["accuracy"] += acc * len(y)
            count += len(y)
            w, b = w - LR * gw, b - LR * gb
        for k in history:
            history[k].append(total[k] / count)
    return history, w, b


def _shuffled(epoch):
    order = np.random.Generator(
        np.random.Philox(np.random.SeedSequence([SEED, 2, epoch]))
    ).permutation(N)
    return [(X[order[i : i + BATCH]], Y[order[i : i + BATCH]]) for i in (0, 8, 16)]


def _weights(net):
    return net.weight.numpy(), net.bias.numpy()


def test_fit_arrays_follows_the_seeded_batches(backend):
    """(x, y) arrays: seeded shuffling, partial last batch, weighted epoch means."""
    net = _net()
    want, w, b = _oracle(*_weights(net), 2, _shuffled)
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR))
    got = trainer.fit((X, Y), epochs=2, batch_size=BATCH, verbose=0)
    assert sorted(got) == ["accuracy", "loss"]
    assert_close(got["loss"], want["loss"], "history loss", rtol=1e-5)
    assert_close(got["accuracy"], want["accuracy"], "history accuracy")
    assert_close(net.weight.numpy(), w, "trained weight", rtol=1e-4, atol=1e-6)
    assert_close(net.bias.numpy(), b, "trained bias", rtol=1e-4, atol=1e-6)


def test_fit_iterable_of_batches_keeps_their_order(backend):
    """An iterable of batches is used as given, every epoch (no shuffling)."""
    batches = [(X[:8], Y[:8]), (X[8:11], Y[8:11]), (X[11:], Y[11:])]
    net = _net()
    want, _, _ = _oracle(*_weights(net), 2, lambda epoch: batches)
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR))
    got = trainer.fit(batches, epochs=2, verbose=0)
    assert_close(got["loss"], want["loss"], "history loss", rtol=1e-5)
    assert_close(got["accuracy"], want["accuracy"], "history accuracy")


def test_fit_without_shuffle_and_with_validation(backend):
    """shuffle=False keeps the array order; val_* come from the epoch's final net."""
    net = _net()
    in_order = [(X[i : i + BATCH], Y[i : i + BATCH]) for i in (0, 8, 16)]
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR))
    w0, b0 = _weights(net)
    got = trainer.fit(
        (X, Y),
        epochs=2,
        batch_size=BATCH,
        shuffle=False,
        validation_data=(X[:6], Y[:6]),
        verbose=0,
    )
    want, w, b = _oracle(w0, b0, 2, lambda epoch: in_order)
    assert_close(got["loss"], want["loss"], "history loss", rtol=1e-5)
    val_loss, val_acc, _, _ = _softmax_ce(w, b, X[:6].astype(np.float64), Y[:6])
    assert_close(got["val_loss"][-1], val_loss, "val_loss", rtol=1e-4)
    assert_close(got["val_accuracy"][-1], val_acc, "val_accuracy")


def test_evaluate_and_predict_match_the_oracle(backend):
    """evaluate: sample-weighted loss and accuracy; predict: the outputs, on host."""
    net = _net()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR))
    w, b = (a.astype(np.float64) for a in _weights(net))
    loss, acc, _, _ = _softmax_ce(w, b, X.astype(np.float64), Y)
    result = trainer.evaluate((X, Y), batch_size=6)  # batches of 6, 6, 6, 2
    assert sorted(result) == ["accuracy", "loss"]
    assert_close(result["loss"], loss, "evaluate loss", rtol=1e-5)
    assert_close(result["accuracy"], acc, "evaluate accuracy")
    out = trainer.predict(X, batch_size=7)
    assert isinstance(out, np.ndarray)
    assert_close(out, X.astype(np.float64) @ w.T + b, "predict", rtol=1e-5)
    batches = [(X[:5], Y[:5]), (X[5:], Y[5:])]
    assert_close(trainer.predict(batches), out, "predict over batches", rtol=1e-6)
    assert_close(trainer.evaluate(batches)["loss"], loss, "evaluate batches", rtol=1e-5)


def test_custom_loss_and_metric(backend):
    """loss=callable(net, x, y) and a callable metric on host arrays."""
    net = _net()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.0))
    target = np.eye(3, dtype=np.float32)[Y]

    def mse(n, x, t):
        return U.losses.mse_loss(n(x), t)

    def mean_abs_error(t, p):
        return float(np.mean(np.abs(p - t)))

    w, b = (a.astype(np.float64) for a in _weights(net))
    out = X.astype(np.float64) @ w.T + b
    got = trainer.fit(
        (X, target),
        epochs=1,
        batch_size=N,
        loss=mse,
        metrics=[mean_abs_error],
        verbose=0,
    )
    assert_close(got["loss"], [np.mean((out - target) ** 2)], "mse loss", rtol=1e-5)
    assert_close(
        got["mean_abs_error"], [np.mean(np.abs(out - target))], "metric", rtol=1e-5
    )


def test_history_matches_numpy_backend(backend_pair):
    """Same seed, same batches: a small MLP's history within float32 tolerance of
    the NumPy backend's."""
    histories = []
    for table in backend_pair:
        with U.use_backend(table.name):
            U.seed(SEED)
            net = U.Sequential(U.Dense(6, activation="tanh"), U.Dense(3))
            net.initialize()
            trainer = U.Trainer(net, U.Adam(net.params(), lr=1e-2))
            histories.append(trainer.fit((X, Y), 2, batch_size=BATCH, verbose=0))
    ref, other = histories
    for key in ref:
        assert_close(other[key], ref[key], f"history {key}", rtol=1e-5)


class _Script(U.callbacks.Callback):
    """Writes a scripted ``score`` into each epoch's logs (before the callbacks
    under test read them) and keeps a copy of the weights after each epoch."""

    def __init__(self, scores):
        self.scores, self.weights = scores, []

    def on_epoch_end(self, run, epoch, logs):
        logs["score"] = self.scores[epoch]
        self.weights.append(run.net.weight.numpy().copy())


def test_model_checkpoint_writes_the_best(backend, tmp_path):
    """save_best_only: the file holds the weights (and optimizer state) of the best
    epoch, not the last."""
    net = _net()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR, momentum=0.9))
    script = _Script([3.0, 1.0, 2.0])
    path = tmp_path / "best.safetensors"
    ckpt = U.ModelCheckpoint(path, monitor="score", mode="min")
    trainer.fit((X, Y), epochs=3, batch_size=BATCH, verbose=0, callbacks=[script, ckpt])
    assert (ckpt.best, ckpt.best_epoch) == (1.0, 1)
    clone = _net()
    opt = U.SGD(clone.params(), lr=LR, momentum=0.9)
    clone.load(str(path), optimizer=opt)
    assert np.array_equal(clone.weight.numpy(), script.weights[1])
    assert not np.array_equal(clone.weight.numpy(), net.weight.numpy())
    every = U.ModelCheckpoint(
        str(tmp_path / "e{epoch}-{score:.0f}.safetensors"),
        "score",
        save_best_only=False,
    )
    trainer.fit(
        (X, Y), epochs=2, batch_size=BATCH, verbose=0, callbacks=[script, every]
    )
    assert sorted(p.name for p in tmp_path.glob("e*")) == [
        "e1-3.safetensors",
        "e2-1.safetensors",
    ]


def test_early_stopping_stops(backend):
    """patience epochs in a row without an improvement (beyond min_delta) stop."""
    net = _net()
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR))
    stop = U.EarlyStopping(monitor="score", patience=2)
    scores = [1.0, 0.5, 0.6, 0.7, 0.4, 0.3]
    history = trainer.fit(
        (X, Y), epochs=6, batch_size=BATCH, verbose=0, callbacks=[_Script(scores), stop]
    )
    assert len(history["loss"]) == 4 and stop.stopped_epoch == 3
    small = U.EarlyStopping(monitor="score", patience=1, min_delta=0.1)
    history = trainer.fit(
        (X, Y),
        epochs=3,
        batch_size=BATCH,
        verbose=0,
        callbacks=[_Script([1.0, 0.95, 0.5]), small],
    )
    assert len(history["loss"]) == 2 and small.best == 1.0
    acc = U.EarlyStopping(monitor="accuracy", patience=1)
    assert acc.mode == "max"
