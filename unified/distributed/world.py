"""The neutral part of :mod:`unified.distributed`: ``World`` and ``init``.

The framework-specific worlds live in ``torch_world`` and ``jax_world`` and are
imported only when ``init`` selects them, so importing :mod:`unified` (or this
package) imports no framework.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from unified import backend as _backend
from unified.errors import UnifiedError
from unified.nets import Net

SUPPORTED = ("torch", "jax")
"""The backends with a data-parallel engine (more than one replica)."""


class DistributedUnsupportedError(UnifiedError, NotImplementedError):
    """Data parallel with more than one replica was asked of a backend without an
    engine for it (NumPy, MXNet)."""


class World:
    """The replicas a data-parallel step runs on.

    Attributes:
        backend: the backend's name.
        rank: this process's index (0 for the main process).
        processes: how many processes take part.
        replicas: how many replicas the batch is split over (torch: processes; JAX:
            devices of the mesh).
    """

    backend: str = ""
    rank: int = 0
    processes: int = 1
    replicas: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that writes checkpoints and logs)."""
        return self.rank == 0

    def shard(self, *arrays: Any) -> Any:
        """Return this process's rows of each global NumPy array (axis 0).

        The rows are split in order into ``processes`` nearly equal parts
        (``np.array_split``); a single array gives an array, several a tuple.
        """
        parts = tuple(
            np.array_split(np.asarray(a), self.processes)[self.rank] for a in arrays
        )
        return parts[0] if len(parts) == 1 else parts

    def prepare(self, net: Net, sync_batch_norm: bool = False) -> Net:
        """Make ``net`` a replica: rank 0's values everywhere, and BatchNorm
        statistics per replica (default) or synchronized over all replicas.
        Returns ``net`` (the same object)."""
        self._set_batch_norm(net, sync_batch_norm)
        self._replicate(net)
        return net

    def reduce_gradients(self, net: Net, rows: int | None = None) -> None:
        """Average the gradients of ``net``'s trainable parameters over the replicas.

        ``Trainer.step`` calls it between backward and the optimizer update; call it
        yourself after ``value_and_grad`` and before ``optimizer.step()``. ``rows``
        is the local batch size: replicas are weighted by their rows, so the result
        is the gradient of the mean loss over the global batch even when local
        batches differ (``None``: plain average, valid for equal local batches).
        """

    def place_batch(self, batch: tuple[Any, ...]) -> tuple[Any, ...]:
        """Return the (native) batch arrays placed for a step (JAX: sharded)."""
        return batch

    def barrier(self) -> None:
        """Wait until every process reaches this point."""

    def close(self) -> None:
        """Release the engine (torch: destroy the process group ``init`` created)."""

    def _set_batch_norm(self, net: Net, sync: bool) -> None:
        """Configure every BatchNorm of ``net`` for this world."""

    def _replicate(self, net: Net) -> None:
        """Give every replica rank 0's parameter values."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(backend={self.backend!r}, rank={self.rank}, "
            f"processes={self.processes}, replicas={self.replicas})"
        )


class LocalWorld(World):
    """A world of one replica without communication (NumPy, MXNet, or any backend
    when asked for explicitly): a step is exactly the single-process step."""

    def __init__(self, backend: str) -> None:
        self.backend = backend


def _launched_processes() -> int:
    """The process count a launcher announced (torchrun's ``WORLD_SIZE``, MXNet's
    ``DMLC_NUM_WORKER``), 1 without a launcher."""
    for var in ("WORLD_SIZE", "DMLC_NUM_WORKER"):
        if os.environ.get(var):
            return int(os.environ[var])
    return 1


def init(
    backend: str | None = None,
    *,
    rank: int | None = None,
    processes: int | None = None,
    address: str | None = None,
    engine: str | None = None,
    timeout: float = 300.0,
) -> World:
    """Join (or create) the data-parallel world of ``backend`` (default: the active
    backend) and return it.

    Arguments:
        backend: ``"torch"``, ``"jax"``, ``"numpy"`` or ``"mxnet"``.
        rank: this process's index; default from the launcher (torchrun's ``RANK``).
        processes: how many processes; default from the launcher (``WORLD_SIZE``),
            1 without one.
        address: ``"host:port"`` of rank 0 (torch ``init_method="tcp://..."``, JAX
            ``coordinator_address``); default from the launcher (``MASTER_ADDR``,
            ``MASTER_PORT``).
        engine: torch's process-group backend, ``"gloo"`` or ``"nccl"`` (default:
            nccl when CUDA is available, gloo otherwise).
        timeout: seconds a collective may wait for the other processes.

    NumPy and MXNet return a :class:`LocalWorld`; asking them for more than one
    process raises :class:`DistributedUnsupportedError`.
    """
    name = backend or _backend.current_backend().name
    if name == "torch":
        from unified.distributed.torch_world import TorchWorld

        return TorchWorld(rank, processes, address, engine, timeout)
    if name == "jax":
        from unified.distributed.jax_world import JaxWorld

        return JaxWorld(rank, processes, address)
    wanted = processes if processes is not None else _launched_processes()
    if wanted > 1:
        raise DistributedUnsupportedError(
            f"data-parallel training over {wanted} processes is not supported on the "
            f"{name!r} backend: unified.distributed runs on {' and '.join(SUPPORTED)} "
            "(torch.distributed, JAX sharding). MXNet's kvstore needs one parameter "
            "copy per context (Gluon's split_and_load) or a ps-lite launcher for "
            "'dist_sync', neither of which the MXNet adapter provides. Port the net "
            "with unified.port(net, 'torch') or 'jax'."
        )
    return LocalWorld(name)
