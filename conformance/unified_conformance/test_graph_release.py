"""``GraphNet`` (a traced Gluon / PyTorch graph) frees each intermediate value once
its last reader has run, as eager code does: holding every value until the end of
``forward`` kept one full-size buffer per node alive (ResNet-50's bottlenecks), and
glibc's allocator then returned and page-faulted them again on every call.

Oracle: ``weakref`` to each value a probe layer produced; the graph's output equals
a float64 NumPy formula.
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
