"""The compiled ``Trainer`` step against the eager one, bitwise, where the backend's
``jit`` replays the eager kernels (NumPy: a replayed NumPy program; MXNet:
``CachedOp`` graphs of the recorded operators, the update with its coefficients
baked in as scalar attributes while their values repeat).

The oracle is ``Trainer(compile=False)`` on the same backend (the eager forward,
autograd backward and ``optimizer.step()``): whole trajectories must be bitwise
equal, losses, every parameter and the optimizer state, with dropout, BatchNorm,
weight decay and a learning rate changed mid-run. JAX is left out: XLA fuses and
reorders, so its compiled step is close to the eager one, not equal (checked
elsewhere against float64 oracles).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unified as U

OPTIMIZERS = {
    "sgd-nesterov-wd": lambda p: U.SGD(
        p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3
    ),
    "sgd-dampening": lambda p: U.SGD(p, lr=0.1, momentum=0.9, dampening=0.25),
    "adam-wd": lambda p: U.Adam(p, lr=0.01, weight_decay=1e-2),
    "adamw": lambda p: U.AdamW(p, lr=0.01),
    "rmsprop": lambda p: U.RMSProp(p, lr=0.01, momentum=0.5, centered=True),
}
STEPS = 11  # more distinct coefficient sets than MXNet specializes (Adam's)


def _ce(net: Any, x: Any, y: Any) -> Any:
    return U.losses.softmax_cross_entropy(net(x), y)


def _run(
    compile: bool, make_opt: Any, norm: bool
) -> tuple[list[np.ndarray], dict[str, Any]]:
    U.seed(0)
    layers = [U.Dense(8, activation="relu"), U.Dropout(0.5)]
    net = U.Sequential(*layers, *([U.BatchNorm()] if norm else []), U.Dense(3))
    net.initialize()
    opt = make_opt(net.params())
    trainer = U.Trainer(net, opt, compile=compile)
    rng = np.random.default_rng(1)
    losses = []
    for step in range(STEPS):
        if step == 4:
            opt.param_groups[0]["lr"] *= 0.5
        x = rng.standard_normal((4, 5)).astype(np.float32)
        y = rng.integers(0, 3, 4)
        losses.append(U.to_numpy(trainer.step(_ce, x, y)).copy())
    values = {n: p.numpy().copy() for n, p in net.params().items()}
    return losses, {"values": values, "state": opt.state_dict()["state"]}


@pytest.mark.only_backends("numpy", "mxnet")
@pytest.mark.parametrize("norm", [False, True], ids=["mlp", "batchnorm"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_compiled_trajectory_is_bitwise_the_eager_one(
    backend: Any, name: str, norm: bool
) -> None:
    """(MXNet traces the MLP; the BatchNorm step it runs eagerly, see
    docs/benchmarks.md: both must equal ``compile=False``.)"""
    assert "jit" in backend.capabilities
    eager_losses, eager = _run(False, OPTIMIZERS[name], norm)
    compiled_losses, compiled = _run(True, OPTIMIZERS[name], norm)
    for i, (a, b) in enumerate(zip(compiled_losses, eager_losses, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: loss of step {i + 1}")
    for key, want in eager["values"].items():
        np.testing.assert_array_equal(
            compiled["values"][key], want, err_msg=f"{name}: {key}"
        )
    for key, want in eager["state"].items():
        for field, value in want.items():
            np.testing.assert_array_equal(
                compiled["state"][key][field], value, err_msg=f"{name}: {key}.{field}"
            )


class _Gated(U.Net):
    """Scales its hidden layer by a factor chosen on the host from the sign of its
    sum: a Python branch on an array's value, which a trace would fix."""

    def __init__(self, branches: list[bool]) -> None:
        super().__init__()
        self.body = U.Dense(6, in_units=5)
        self.head = U.Dense(3, in_units=6)
        object.__setattr__(self, "branches", branches)

    def forward(self, x: Any) -> Any:
        h = self.body(x)
        positive = float(U.ops.sum(h)) > 0
        self.branches.append(positive)
        return self.head(U.ops.multiply(h, 2.0 if positive else 0.5))


@pytest.mark.only_backends("numpy", "mxnet")
def test_a_forward_branching_on_a_host_value_trains_as_the_eager_step(backend):
    """A ``float(x)`` of a traced array refuses the trace, so the step runs
    eagerly and takes the branch each batch asks for, bitwise as compile=False."""
    runs = {}
    for compile in (False, True):
        U.seed(0)
        branches: list[bool] = []
        net = _Gated(branches)
        net.initialize()
        trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1), compile=compile)
        rng = np.random.default_rng(3)
        losses = []
        for _ in range(6):
            x = rng.standard_normal((4, 5)).astype(np.float32) * 3.0
            y = rng.integers(0, 3, 4)
            losses.append(float(trainer.step(_ce, x, y)))
        runs[compile] = (losses, branches, net.body.weight.numpy())
    eager, compiled = runs[False], runs[True]
    assert len(set(eager[1])) == 2, "the data must take both branches"
    assert compiled[0] == eager[0]
    assert np.array_equal(compiled[2], eager[2])
