"""The memory plan of the NumPy backend's compiled step (``unified_numpy.plan``).

Claims proven here, none of them by timing:

* the peak memory of a replayed ``Trainer`` step (tracemalloc, above what existed
  before it) stays below a bound computed from the model's sizes: the gradients the
  step returns, one parameter-sized temporary of the update and the activations,
  where a program that kept every intermediate (or built new parameters and
  optimizer state beside the old ones) needs at least three times the parameters;
* the planned replay is bitwise the eager step (a CNN with max pooling, SGD with
  Nesterov momentum and weight decay), and updates parameters and optimizer state
  in their own arrays;
* nothing the caller still holds is written: views of a dying value, arguments not
  donated, donated arguments sharing memory with another argument;
* a convolution's weight gradient (the last reader of its im2col buffer) runs
  before its input gradient, so the two column buffers are never alive together;
* a step that fails its label check changes nothing, although the replay would
  update in place;
* max pooling (now without a branch on NaNs, so the CNN step traces) sends each
  window's gradient to its first NaN, against a float64 oracle.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest

import unified as U


def _ce(net: Any, x: Any, y: Any) -> Any:
    return U.losses.softmax_cross_entropy(net(x), y)


def _program(trainer: Any) -> Any:
    (hit,) = trainer._compiled.values()
    (program,) = hit[0].programs.values()
    assert program is not None, "the step was not traced"
    return program


def _peak(step: Any) -> int:
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_replayed_step_peak_is_bounded_by_gradients_and_activations() -> None:
    batch, sizes = 8, (64, 128, 128, 10)
    with U.use_backend("numpy"):
        U.seed(0)
        net = U.Sequential(
            U.Dense(128, activation="relu"),
            U.Dense(128, activation="relu"),
            U.Dense(10),
        )
        net.initialize()
        net.infer_shape((batch, sizes[0]))
        trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1, momentum=0.9))
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        y = rng.integers(0, 10, batch)
        for _ in range(3):  # trace, then replay
            trainer.step(_ce, x, y)
        program = _program(trainer)
        assert program.donated and program.rewrites > 0
        peak = _peak(lambda: trainer.step(_ce, x, y))
    param_bytes = [p.numpy().nbytes for p in net.params().values()]
    total = sum(param_bytes)
    # float32 activations: pre-activation, output and mask-sized temporaries of
    # every layer, plus the batch's private copy.
    activations = 4 * batch * (3 * sum(sizes[1:]) + sizes[0])
    bound = total + max(param_bytes) + activations + 24 * 1024  # + Python objects
    assert peak <= bound, (peak, bound)
    # A step holding new parameters and optimizer state beside the old ones (and
    # its gradients) could not meet the bound: the test can fail.
    assert 3 * total > bound


def _cnn_run(compile: bool) -> tuple[list[float], dict[str, Any], Any, Any]:
    U.seed(0)
    net = U.Sequential(
        U.Conv2D(4, 3, padding=1, activation="relu"),
        U.MaxPool2D(2),
        U.Conv2D(4, 3, activation="relu"),
        U.MaxPool2D(2, strides=1),
        U.Flatten(),
        U.Dense(3),
    )
    net.initialize()
    opt = U.SGD(net.params(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    trainer = U.Trainer(net, opt, compile=compile)
    rng = np.random.default_rng(1)
    losses, ids = [], []
    for _ in range(4):
        x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, 2)
        losses.append(float(trainer.step(_ce, x, y)))
        ids.append(
            [id(p._data) for p in net.params().values()]
            + [
                id(opt.state_for(p)["arrays"]["momentum_buffer"])
                for _, p in opt.entries()
            ]
        )
    values = {n: p.numpy().copy() for n, p in net.params().items()}
    return losses, values, trainer, (ids, opt.state_dict()["state"])


def test_planned_cnn_replay_is_the_eager_step_bitwise_and_updates_in_place() -> None:
    with U.use_backend("numpy"):
        eager = _cnn_run(False)
        compiled = _cnn_run(True)
    program = _program(compiled[2])
    assert program.donated and program.rewrites > 0 and "del " in program.source
    assert compiled[0] == eager[0], "losses"
    for name, v in eager[1].items():
        np.testing.assert_array_equal(compiled[1][name], v, err_msg=name)
    for name, entry in eager[3][1].items():
        for key, v in entry.items():
            np.testing.assert_array_equal(compiled[3][1][name][key], v, name + key)
    ids = compiled[3][0]
    # From the first replay on, parameters and momentum buffers keep their arrays.
    assert ids[1] == ids[2] == ids[3]


def test_a_view_of_a_dying_value_keeps_it_unwritten() -> None:
    """``t`` dies at ``exp(t)`` but its view ``t.T`` is read later: the plan must
    not write ``exp``'s result into ``t``."""
    with U.use_backend("numpy") as table:

        def fn(x: Any) -> Any:
            t = x * 2.0
            view = t.T
            u = np.exp(t)
            return u + view.T, np.negative(u)

        compiled = table.jit(fn)
        x = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
        expected = fn(x)
        for _ in range(3):
            got = compiled(x)
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(
            x, np.arange(6, dtype=np.float32).reshape(2, 3) / 7
        )


def test_only_donated_arguments_that_share_no_memory_are_written() -> None:
    with U.use_backend("numpy") as table:

        def fn(a: Any, b: Any) -> Any:
            return np.add(np.multiply(a, 3.0), b)

        plain, given = table.jit(fn), table.jit(fn, donate=(0,))
        a0 = np.arange(4, dtype=np.float32)
        b = np.ones(4, np.float32)
        for _ in range(3):  # not donated: the arguments are never written
            a = a0.copy()
            out = plain(a, b)
            np.testing.assert_array_equal(a, a0)
            np.testing.assert_array_equal(out, a0 * 3 + 1)
        given(a0.copy(), b)  # the trace writes into nothing
        a = a0.copy()
        out = given(a, b)
        np.testing.assert_array_equal(out, a0 * 3 + 1)
        assert out is a  # donated: the result lives in the caller's array
        shared = a0.copy()
        out = given(shared, shared[::1])  # b is a view of the donated a
        np.testing.assert_array_equal(shared, a0)
        np.testing.assert_array_equal(out, a0 * 4)
        out = given(shared, shared)  # the same array twice
        np.testing.assert_array_equal(shared, a0)
        np.testing.assert_array_equal(out, a0 * 4)


def test_a_step_failing_its_label_check_changes_nothing() -> None:
    with U.use_backend("numpy"):
        U.seed(0)
        net = U.Dense(3)
        net.initialize()
        opt = U.SGD(net.params(), lr=0.1, momentum=0.9)
        trainer = U.Trainer(net, opt)
        x = np.ones((2, 4), np.float32)
        for _ in range(3):
            trainer.step(_ce, x, np.array([0, 2]))
        assert _program(trainer).donated
        before = {n: p.numpy().copy() for n, p in net.params().items()}
        state = opt.state_dict()["state"]
        with pytest.raises(IndexError):
            trainer.step(_ce, x, np.array([0, -1]))  # NumPy would index it
        for n, p in net.params().items():
            np.testing.assert_array_equal(p.numpy(), before[n], err_msg=n)
        after = opt.state_dict()["state"]
        for n, entry in state.items():
            for key, v in entry.items():
                np.testing.assert_array_equal(after[n][key], v, n + key)


def _first_max_grad64(x: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    """Float64 oracle of a stride-1 ``k`` x ``k`` max pool's input gradient: each
    window's gradient to its first NaN, else its first maximum (row-major)."""
    dx = np.zeros(x.shape, np.float64)
    n, c, h, w = x.shape
    for b, ch, i, j in np.ndindex(n, c, h - k + 1, w - k + 1):
        window = x[b, ch, i : i + k, j : j + k].ravel()
        nans = np.flatnonzero(np.isnan(window))
        tap = nans[0] if len(nans) else int(np.argmax(window))
        dx[b, ch, i + tap // k, j + tap % k] += g[b, ch, i, j]
    return dx


def test_max_pool_sends_the_gradient_to_the_first_nan_traced_or_not() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[0, 1, 3, 0] = np.nan
    w = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    with U.use_backend("numpy") as table:

        def fn(x: Any) -> Any:
            def loss(a: Any) -> Any:
                y = table.pool(a[0], "max", (2, 2), (1, 1), (0, 0), False, True)
                return table.sum(table.multiply(y, w), None, False)

            return table.value_and_grad(loss, [x])

        value, (grad,) = fn(x)
        compiled = table.jit(fn)
        for _ in range(2):
            cvalue, (cgrad,) = compiled(x)
            np.testing.assert_array_equal(cvalue, value)
            np.testing.assert_array_equal(cgrad, grad)
    assert np.isnan(value)
    np.testing.assert_allclose(grad, _first_max_grad64(x, w, 2), rtol=1e-6, atol=1e-6)


def test_a_convolution_frees_its_columns_before_its_input_gradient() -> None:
    """Two 5x5 convolutions: the replay never holds both im2col buffers and the
    second one's input-gradient columns (as large as its im2col buffer) at once,
    because the weight gradient, the columns' last reader, runs first."""
    batch = 8
    with U.use_backend("numpy"):
        U.seed(0)
        net = U.Sequential(
            U.Conv2D(4, 5, padding=2, activation="relu"),
            U.MaxPool2D(2),
            U.Conv2D(8, 5, padding=2, activation="relu"),
            U.Flatten(),
            U.Dense(3),
        )
        net.initialize()
        trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1, momentum=0.9))
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, 1, 16, 16)).astype(np.float32)
        y = rng.integers(0, 3, batch)
        for _ in range(3):
            trainer.step(_ce, x, y)
        _program(trainer)
        peak = _peak(lambda: trainer.step(_ce, x, y))
    # im2col buffers (C_in, 25 taps, N * padded H * padded W), float32
    cols1 = 4 * 1 * 25 * batch * 20 * 20
    cols2 = 4 * 4 * 25 * batch * 12 * 12
    assert peak < cols1 + 2 * cols2, (peak, cols1 + 2 * cols2)
