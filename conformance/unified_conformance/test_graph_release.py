"""``GraphNet`` (a traced Gluon / PyTorch graph) frees each intermediate value once
its last reader has run, as eager code does: holding every value until the end of
``forward`` kept one full-size buffer per node alive (ResNet-50's bottlenecks), and
glibc's allocator then returned and page-faulted them again on every call.

Oracle: ``weakref`` to each value a probe layer produced; the graph's output equals
a float64 NumPy formula. Also here: how a ``bare`` node calls its layer.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

import unified as U
from unified.interop.graph import GraphNet, Node

from .helpers import assert_close, host, native


class Box:
    """A value of the graph: an array in a weak-referenceable holder (MXNet's
    ``NDArray`` takes no weak references)."""

    def __init__(self, array: Any) -> None:
        self.array = array


class Probe(U.Net):
    """Adds up its inputs and doubles the sum; keeps a weak reference to its output
    and records which earlier outputs are still alive when it runs."""

    def __init__(self, log: list[Any], alive: list[list[bool]]) -> None:
        super().__init__()
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "alive", alive)

    def forward(self, *xs: Any) -> Any:
        self.alive.append([r() is not None for r in self.log])
        arrays = [x.array if isinstance(x, Box) else x for x in xs]
        total = arrays[0]
        for a in arrays[1:]:
            total = U.ops.add(total, a)
        y = Box(U.ops.multiply(total, 2.0))
        self.log.append(weakref.ref(y))
        return y


def test_graph_net_releases_values_after_last_use(backend: Any) -> None:
    """x -> a -> b -> c and d(b, x), outputs c and d: when c runs, a's output (read
    only by b) is gone and b's (read by c and d) alive; when d runs, c's output (a
    graph output) is alive."""
    log: list[Any] = []
    alive: list[list[bool]] = []
    net = GraphNet(
        {k: Probe(log, alive) for k in "abcd"},
        [
            Node("a", "layer", [0], layer="a"),
            Node("b", "layer", [1], layer="b"),
            Node("c", "layer", [2], layer="c"),
            Node("d", "layer", [2, 0], layer="d"),
        ],
        inputs=1,
        outputs=[3, 4],
    )
    net.initialize()
    x = np.arange(6, dtype="float32").reshape(2, 3)
    c, d = net(native(backend, x))
    assert alive == [[], [True], [False, True], [False, True, True]]
    assert_close(host(backend, c.array), x * 8.0, "c")
    assert_close(host(backend, d.array), (x * 4.0 + x) * 2.0, "d")


def test_bare_nodes_drop_a_fused_activation_and_call_other_layers_as_they_are(
    backend: Any,
) -> None:
    """A ``bare`` node calls a Dense without its fused activation (the graph
    applies it as a node of its own); a ``bare`` node on a layer with nothing fused
    (BatchNorm) calls it as it is. Oracle: float64 formulas."""
    net = GraphNet(
        {
            "dense": U.Dense(3, in_units=2, activation="relu"),
            "norm": U.BatchNorm(in_channels=3),
        },
        [
            Node("dense", "layer", [0], {"bare": True}, layer="dense"),
            Node("norm", "layer", [1], {"bare": True}, layer="norm"),
        ],
        inputs=1,
        outputs=[1, 2],
    )
    net.initialize()
    x = np.array([[1.0, -2.0], [-3.0, 0.5]], "float32")
    with U.training(False):
        linear, normed = net(x)
    w = host(backend, net.dense.weight.data()).astype(np.float64)
    b = host(backend, net.dense.bias.data()).astype(np.float64)
    expected = x.astype(np.float64) @ w.T + b
    assert (expected < 0).any(), "the check needs a value relu would change"
    assert_close(host(backend, linear), expected, "bare dense (no relu)")
    eps = net.norm.epsilon
    assert_close(host(backend, normed), expected / np.sqrt(1.0 + eps), "norm")
    assert net.dense.activation is not None  # restored after the call
