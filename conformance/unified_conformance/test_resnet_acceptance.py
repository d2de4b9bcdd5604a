"""Acceptance (issue "a real model vocabulary"): a ResNet-style CNN with BatchNorm
and Dropout, written once, trains the same on every backend.

Initial weights must be bitwise identical to the NumPy backend's; after a few
``Trainer`` steps (training mode: batch statistics, running statistics updated,
host-drawn dropout masks) losses, weights and running statistics agree within
float32 tolerance. The layers themselves are checked against independent oracles
(float64 formulas, ``torch.nn``, Gluon) in their own files.
"""

from __future__ import annotations

import numpy as np

import unified as U
from unified.backend import use_backend
from unified_conformance.helpers import assert_bitwise, assert_close


class Block(U.Net):
    """Conv-BN-ReLU-Conv-BN plus a (projected when the shape changes) shortcut."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = U.Conv2D(channels, 3, strides=stride, padding=1, use_bias=False)
        self.bn1 = U.BatchNorm()
        self.conv2 = U.Conv2D(channels, 3, padding=1, use_bias=False)
        self.bn2 = U.BatchNorm()
        self.down = U.Conv2D(channels, 1, strides=stride, use_bias=False)
        self.bn3 = U.BatchNorm()

    def forward(self, x):
        y = U.ops.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return U.ops.relu(y + self.bn3(self.down(x)))


class SmallResNet(U.Net):
    def __init__(self) -> None:
        super().__init__()
        self.stem = U.Sequential(U.Conv2D(4, 3, padding=1), U.BatchNorm(), U.ReLU())
        self.stage1 = Block(4, 1)
        self.stage2 = Block(8, 2)
        self.pool = U.GlobalAvgPool2D()
        self.drop = U.Dropout(0.25)
        self.head = U.Dense(3, flatten=True)

    def forward(self, x):
        x = self.stage2(self.stage1(self.stem(x)))
        return self.head(self.drop(self.pool(x)))


RNG = np.random.default_rng(21)
X = RNG.standard_normal((4, 2, 8, 8))  # float64, as users' data often is
Y = RNG.integers(0, 3, size=4)
STEPS = 3


def _loss(net, x, y):
    return U.losses.softmax_cross_entropy(net(x), y)


def _train(
    name: str,
) -> tuple[dict[str, np.ndarray], list[float], dict[str, np.ndarray]]:
    with use_backend(name):
        U.seed(7)
        net = SmallResNet()
        net.initialize(U.init.Xavier())
        net.infer_shape(X.shape)
        initial = {n: p.numpy() for n, p in net.params().items()}
        trainer = U.Trainer(net, U.SGD(net.params(), lr=0.05, momentum=0.9))
        losses = [float(trainer.step(_loss, X, Y)) for _ in range(STEPS)]
        final = {n: p.numpy() for n, p in net.params().items()}
    return initial, losses, final


def test_resnet_with_batchnorm_and_dropout_trains_alike(backend):
    ref_initial, ref_losses, ref_final = _train("numpy")
    initial, losses, final = _train(backend.name)
    assert list(initial) == list(ref_initial)
    assert "stage1.bn1.running_mean" in initial and "head.weight" in initial
    for name in ref_initial:
        assert_bitwise(initial[name], ref_initial[name], f"initial {name}")
    assert_close(losses, ref_losses, "losses", rtol=1e-4, atol=1e-5)
    for name in ref_final:
        assert_close(
            final[name],
            ref_final[name],
            f"{name} after {STEPS} steps",
            rtol=1e-4,
            atol=1e-5,
        )
    moved = ref_final["stage1.bn1.running_var"] - ref_initial["stage1.bn1.running_var"]
    assert np.abs(moved).max() > 0, "running statistics were not updated"
