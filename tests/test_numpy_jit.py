"""The NumPy backend's ``jit`` (a traced, replayed program) against its eager step.

The oracle is the eager path itself on ``Trainer(compile=False)``: the replay runs
the same NumPy kernels on the same operands, so whole trajectories must be bitwise
equal (losses, every parameter, the optimizer state), with dropout and BatchNorm.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

import unified as U


def _ce(net: Any, x: Any, y: Any) -> Any:
    return U.losses.softmax_cross_entropy(net(x), y)


def _run(compile: bool, make_opt: Any) -> tuple[list[float], dict[str, Any], Any]:
    U.seed(0)
    net = U.Sequential(
        U.Dense(16, activation="relu"), U.Dropout(0.5), U.BatchNorm(), U.Dense(3)
    )
    net.initialize()
    opt = make_opt(net)
    trainer = U.Trainer(net, opt, compile=compile)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(5):
        x = rng.standard_normal((4, 5)).astype(np.float32)
        y = rng.integers(0, 3, 4)
        losses.append(float(trainer.step(_ce, x, y)))
    values = {n: p.numpy().copy() for n, p in net.params().items()}
    state = opt.state_dict()["state"]
    return losses, {"values": values, "state": state}, trainer


OPTIMIZERS = {
    "sgd_momentum": lambda net: U.SGD(net.params(), lr=0.1, momentum=0.9),
    "adam": lambda net: U.Adam(net.params(), lr=0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_compiled_trajectory_is_bitwise_the_eager_one(name: str) -> None:
    with U.use_backend("numpy"):
        eager = _run(False, OPTIMIZERS[name])
        compiled = _run(True, OPTIMIZERS[name])
    assert compiled[2].compilations == 1 and eager[2].compilations == 0
    (step,) = compiled[2]._compiled.values()
    programs = list(step[0].programs.values())
    assert programs and all(p is not None for p in programs), "not traced"
    assert compiled[0] == eager[0], "losses"
    for n, v in eager[1]["values"].items():
        np.testing.assert_array_equal(compiled[1]["values"][n], v, err_msg=n)
    for n, entry in eager[1]["state"].items():
        for key, v in entry.items():
            np.testing.assert_array_equal(compiled[1]["state"][n][key], v, n + key)


def test_untraceable_function_runs_eagerly_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A host read of a traced value (``float(x)``) refuses the trace: the function
    runs eagerly, every call, with the reason logged at DEBUG."""
    with U.use_backend("numpy") as table:
        calls: list[int] = []

        def fn(x: Any) -> Any:
            calls.append(1)
            return table.multiply(x, float(table.sum(x, None, False)))

        compiled = table.jit(fn)
        x = np.arange(3, dtype=np.float32)
        with caplog.at_level(logging.DEBUG, logger="unified_numpy"):
            out = compiled(x)
        np.testing.assert_array_equal(out, x * 3.0)
        assert "float()" in caplog.text
        np.testing.assert_array_equal(compiled(x + 1), (x + 1) * 6.0)
        assert len(calls) == 3  # the refused trace, then eager each call


def test_replay_recomputes_from_new_inputs_and_keeps_no_constant() -> None:
    """A replayed program reads its new inputs (nothing of the traced call is
    baked in) and returns fresh arrays."""
    with U.use_backend("numpy") as table:

        def fn(pair: list[Any]) -> Any:
            y = table.multiply(pair[0], pair[1])
            return [y, table.sum(table.exp(y), None, False)]

        compiled = table.jit(fn)
        rng = np.random.default_rng(0)
        for _ in range(3):
            a, b = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(2))
            y, total = compiled([a, b])
            np.testing.assert_array_equal(y, a * b)
            np.testing.assert_array_equal(total, np.sum(np.exp(a * b)))
        first, _ = compiled([a, b])
        second, _ = compiled([a, b])
        assert first is not second
