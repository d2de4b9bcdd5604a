"""The replica side of test_distributed: trains, writes what it saw to a ``.npz``.

Run by the test as ``python -m unified_conformance.distributed_worker BACKEND OUT``:
twice on torch (``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` set as
``torchrun`` sets them), once on JAX with ``XLA_FLAGS`` forcing 4 host devices. The
test computes the single-process trajectories itself (:func:`trajectory` without a
world) and compares.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

import unified as U

STEPS = 10
ROWS = 8  # global batch: 4 rows per torch process, 2 per JAX device
CONFIGS = {  # name: (optimizer, synchronized BatchNorm statistics)
    "sgd": ("sgd", False),
    "adam": ("adam", False),
    "sgd_sync": ("sgd", True),
    "adam_sync": ("adam", True),
}


class Model(U.Net):
    """Dense -> BatchNorm -> tanh -> the same Dense twice (shared) -> Dropout ->
    Dense."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = U.Dense(6, in_units=4, use_bias=False)  # BatchNorm follows
        self.bn = U.BatchNorm(in_channels=6)
        self.shared = U.Dense(6, in_units=6)
        self.drop = U.Dropout(0.25)
        self.out = U.Dense(3, in_units=6)

    def forward(self, x: Any) -> Any:
        h = U.ops.tanh(self.bn(self.inp(x)))
        h = U.ops.tanh(self.shared(U.ops.tanh(self.shared(h))))
        return self.out(self.drop(h))


def loss_fn(net: Any, x: Any, y: Any) -> Any:
    return U.losses.mse_loss(net(x), y)


def batches(rows: int = ROWS) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [
        (
            rng.standard_normal((rows, 4)).astype("float32"),
            rng.standard_normal((rows, 3)).astype("float32"),
        )
        for _ in range(STEPS)
    ]


def build(optimizer: str) -> tuple[Model, Any]:
    U.seed(3)
    net = Model()
    net.initialize()
    opt: Any = (
        U.optim.SGD(net.params(), lr=0.1, momentum=0.9)
        if optimizer == "sgd"
        else U.optim.Adam(net.params(), lr=0.01)
    )
    return net, opt


def values(net: Any) -> dict[str, np.ndarray]:
    return {name: p.numpy() for name, p in net.params().items()}


def trajectory(
    config: str, world: Any = None, replica_groups: int = 1, rows: int = ROWS
) -> tuple[Model, Any, dict[str, np.ndarray]]:
    """Train 10 steps; return the net, optimizer and the initial values (before
    ``world.prepare``). Without a world, ``replica_groups`` gives the BatchNorm
    layer per-replica statistics in one process (the reference semantics)."""
    optimizer, sync = CONFIGS[config]
    net, opt = build(optimizer)
    first = values(net)
    if world is not None:
        world.prepare(net, sync_batch_norm=sync)
    else:
        net.bn.replica_groups = replica_groups
    trainer = U.Trainer(net, opt, world=world)
    for x, y in batches(rows):
        trainer.step(loss_fn, *(world.shard(x, y) if world is not None else (x, y)))
    return net, opt, first


def unequal(world: Any = None) -> tuple[Any, Any]:
    """Three SGD steps of a net without BatchNorm on 9-row batches."""
    U.seed(5)
    net = U.Sequential(U.Dense(5, in_units=4), U.Dense(3, in_units=5))
    net.initialize()
    opt = U.optim.SGD(net.params(), lr=0.1)
    if world is not None:
        world.prepare(net)
    trainer = U.Trainer(net, opt, world=world)
    for x, y in batches(ROWS + 1)[:3]:
        trainer.step(loss_fn, *(world.shard(x, y) if world is not None else (x, y)))
    return net, opt


def main(backend: str, out: str) -> None:
    U.set_backend(backend)
    world = U.distributed.init(timeout=60)
    found: dict[str, Any] = {"replicas": world.replicas, "rank": world.rank}
    for config in CONFIGS:
        net, opt, first = trajectory(config, world)
        for name, value in first.items():
            found[f"{config}/initial/{name}"] = value
        for name, value in values(net).items():
            found[f"{config}/final/{name}"] = value
    # unequal local batches (torch: 5 and 4 rows): weighted by rows
    if backend == "torch":
        net, _ = unequal(world)
        for name, value in values(net).items():
            found[f"unequal/final/{name}"] = value
        try:  # synchronized BatchNorm statistics refuse them
            trajectory("sgd_sync", world, rows=ROWS + 1)
        except ValueError as error:
            found["unequal_sync_error"] = np.array(str(error))
    # checkpoint: saved by rank 0, loaded by every rank
    net, opt, _ = trajectory("adam", world)
    path = Path(out).parent / "checkpoint"
    if world.is_main:
        net.save(str(path), optimizer=opt)
    world.barrier()
    fresh, fresh_opt = build("adam")
    fresh.load(str(path), optimizer=fresh_opt)
    world.prepare(fresh)
    for name, value in values(fresh).items():
        found[f"loaded/{name}"] = value
    found["loaded_steps"] = np.array(
        [st["step"] for st in fresh_opt.state_dict()["state"].values()]
    )
    if backend == "jax":  # the batch really is split over the devices
        placed = world.place_batch((U.asarray(batches()[0][0]),))[0]
        found["shard_rows"] = np.array(
            [s.data.shape[0] for s in placed.addressable_shards]
        )
    np.savez(out, **found)
    world.barrier()  # then os._exit: no rank destroys its group after rank 0 left


if __name__ == "__main__":
    import faulthandler
    import os

    faulthandler.dump_traceback_later(120, exit=True)  # a hang shows where
    main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: torch's threads can hang at exit
