"""The PyTorch world: a ``torch.distributed`` process group (gloo or nccl).

Gradients travel as one flat buffer per dtype and step: a single ``all_reduce``
(the whole model is one bucket, as DDP with one bucket), in the fixed order of the
net's parameter listing, so every rank receives bitwise the same sum and the
replicas stay bitwise identical.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn

from unified import modes
from unified.distributed.world import World
from unified.layers.norm import BatchNorm
from unified.nets import Net
from unified.parameters import Parameter


class TorchWorld(World):
    """``torch.distributed`` over ``processes`` processes, one replica each."""

    backend = "torch"

    def __init__(
        self,
        rank: int | None,
        processes: int | None,
        address: str | None,
        engine: str | None,
        timeout: float,
    ) -> None:
        self._owned = False
        if not dist.is_initialized():
            self._start(rank, processes, address, engine, timeout)
            self._owned = True
        self.rank = dist.get_rank()
        self.processes = self.replicas = dist.get_world_size()
        # dropout masks: this process's rows of the whole batch's mask
        modes.set_replica(self.rank, self.processes)

    def _start(
        self,
        rank: int | None,
        processes: int | None,
        address: str | None,
        engine: str | None,
        timeout: float,
    ) -> None:
        engine = engine or ("nccl" if torch.cuda.is_available() else "gloo")
        wait = datetime.timedelta(seconds=timeout)
        launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
        if rank is None and processes is None and address is None and not launched:
            # No launcher: a world of one process, still a real process group.
            dist.init_process_group(
                engine, store=dist.HashStore(), rank=0, world_size=1, timeout=wait
            )
            return
        rank = int(os.environ["RANK"]) if rank is None else rank
        processes = int(os.environ["WORLD_SIZE"]) if processes is None else processes
        method = f"tcp://{address}" if address else "env://"
        dist.init_process_group(
            engine, init_method=method, rank=rank, world_size=processes, timeout=wait
        )

    # -- replicas ----------------------------------------------------------------------
    def _replicate(self, net: Net) -> None:
        params = [p for p in net._listing().values() if p._data is not None]
        if self.processes == 1 or not params:
            return
        for group in _by_dtype(params):
            flat = torch.cat([p._data.detach().reshape(-1) for p in group])
            dist.broadcast(flat, src=0)
            with torch.no_grad():
                for p, chunk in zip(group, _split(flat, group)):
                    p._data.copy_(chunk)

    def _set_batch_norm(self, net: Net, sync: bool) -> None:
        for sub in net._nets():
            if isinstance(sub, BatchNorm):
                # per replica: each process's statistics are its own already
                sub.replica_mean = (
                    self._average if sync and self.processes > 1 else None
                )

    def _average(self, mean: Any, count: int) -> tuple[Any, int]:
        """The mean over every process's rows of per-process means of ``count``
        rows each: one differentiable all-reduce (its backward all-reduces too).

        The local batches must be equal (the gradient average weighs the
        replicas' losses, not the statistics' backward): checked with the sums of
        the counts and of their squares, which every rank sees alike."""
        counts = mean.new_tensor([count, count * count], dtype=torch.float64)
        flat = torch.cat([mean.reshape(-1).double(), counts])
        total = dist_fn.all_reduce(flat)
        rows, squares = int(total[-2].item()), int(total[-1].item())
        if squares * self.processes != rows * rows:
            raise ValueError(
                "BatchNorm with synchronized statistics needs equal local batches "
                f"on every process; this one has {count} rows of {rows}"
            )
        return (total[:-2] / self.processes).to(mean.dtype).view(mean.shape), rows

    # -- a step ------------------------------------------------------------------------
    def reduce_gradients(self, net: Net, rows: int | None = None) -> None:
        if self.processes == 1:
            return
        params = [
            p
            for p in net._listing().values()
            if p.trainable and not p.frozen and p._grad is not None
        ]
        for group in _by_dtype(params):
            parts = [p._grad.reshape(-1) for p in group]
            if rows is None:
                flat = torch.cat(parts)
                dist.all_reduce(flat)
                flat /= self.processes
            else:  # weight by the local rows; the total rows ride along
                weight = torch.full((1,), float(rows), dtype=parts[0].dtype)
                flat = torch.cat([*parts, weight.to(parts[0].device)])
                flat[:-1] *= float(rows)
                dist.all_reduce(flat)
                flat = flat[:-1] / flat[-1]
            for p, chunk in zip(group, _split(flat, group)):
                p._grad = chunk

    def barrier(self) -> None:
        if self.processes > 1:
            dist.barrier()

    def close(self) -> None:
        modes.set_replica(0, 1)
        if self._owned and dist.is_initialized():
            self.barrier()  # every rank destroys together (rank 0 hosts the store)
            dist.destroy_process_group()
            self._owned = False


def _by_dtype(params: list[Parameter]) -> list[list[Parameter]]:
    """The parameters grouped by dtype, in listing order (one flat buffer each)."""
    groups: dict[Any, list[Parameter]] = {}
    for p in params:
        groups.setdefault(p._data.dtype, []).append(p)
    return list(groups.values())


def _split(flat: Any, group: list[Parameter]) -> list[Any]:
    """Views of ``flat`` shaped as the parameters of ``group``."""
    chunks = torch.split(flat, [p._data.numel() for p in group])
    return [c.view(p._data.shape) for c, p in zip(chunks, group)]
