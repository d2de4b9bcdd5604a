"""The JAX world: a one-axis ``Mesh`` over ``jax.devices()``.

Parameters are replicated over the mesh and each batch array is sharded along its
rows (``NamedSharding(mesh, P("data"))``); the Trainer's compiled step then runs as
one SPMD program in which XLA inserts the gradient all-reduce (GSPMD). Several hosts:
``jax.distributed.initialize`` (called by ``init(address=...)``) makes
``jax.devices()`` global and each process feeds its own rows.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from unified.distributed.world import World
from unified.layers.norm import BatchNorm
from unified.nets import Net

AXIS = "data"
"""The mesh axis the batch is split along."""


class JaxWorld(World):
    """A mesh over every device of ``jax.devices()``, one replica per device."""

    backend = "jax"

    def __init__(
        self, rank: int | None, processes: int | None, address: str | None
    ) -> None:
        if address is not None or processes not in (None, 1):
            jax.distributed.initialize(
                coordinator_address=address, num_processes=processes, process_id=rank
            )
        devices = jax.devices()
        self.mesh = Mesh(np.array(devices), (AXIS,))
        self.rank = jax.process_index()
        self.processes = jax.process_count()
        self.replicas = len(devices)
        self._rows = NamedSharding(self.mesh, PartitionSpec(AXIS))
        self._whole = NamedSharding(self.mesh, PartitionSpec())

    def _replicate(self, net: Net) -> None:
        # One process draws every device's copy from the same host values: the
        # replicas are bitwise identical by construction (several hosts: the seed
        # draws the same values in every process, SPEC 3).
        for p in net._listing().values():
            if p._data is not None:
                p._data = jax.device_put(p._data, self._whole)

    def _set_batch_norm(self, net: Net, sync: bool) -> None:
        # One SPMD program over the global batch computes global statistics (sync);
        # per-replica statistics split the batch into the devices' shares.
        for sub in net._nets():
            if isinstance(sub, BatchNorm):
                sub.replica_groups = 1 if sync else self.replicas

    def place_batch(self, batch: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(self._place(a) for a in batch)

    def _place(self, a: Any) -> Any:
        shape = tuple(getattr(a, "shape", ()))
        if not shape:
            return a
        rows = shape[0] * self.processes
        if rows % self.replicas:
            raise ValueError(
                f"a batch of {rows} rows cannot be split evenly over the "
                f"{self.replicas} devices of the mesh; use a multiple of "
                f"{self.replicas}"
            )
        if self.processes == 1:
            return jax.device_put(a, self._rows)
        return jax.make_array_from_process_local_data(self._rows, np.asarray(a))

    def barrier(self) -> None:
        if self.processes > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("unified.distributed.barrier")
