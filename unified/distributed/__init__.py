"""Data-parallel training on the frameworks' own engines.

``init()`` returns the :class:`World` of the active backend: on PyTorch a
``torch.distributed`` process group (gloo on CPU, nccl on GPU; set up from the
``torchrun`` environment variables or from explicit ``rank``/``processes``/``address``),
on JAX a ``Mesh`` over ``jax.devices()`` whose compiled steps shard the batch (several
hosts: ``jax.distributed.initialize``, called by ``init(address=...)``). NumPy and
MXNet have a world of one replica only (no communication); asking them for more
raises :class:`DistributedUnsupportedError`.

A step under a world equals the single-process step on the concatenated batch
(float32 tolerance): every replica starts from rank 0's weights, gradients are
averaged over the global batch, BatchNorm statistics are per replica unless
``prepare(net, sync_batch_norm=True)``. See docs/scaling.md.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> world = U.distributed.init()
    >>> net = U.Dense(1, in_units=2); net.initialize(U.init.Ones())
    >>> net = world.prepare(net)
    >>> trainer = U.Trainer(net, U.optim.SGD(net.params(), lr=0.1), world=world)
    >>> x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")
    >>> def loss_fn(net, x, y):
    ...     return U.losses.mse_loss(net(x), y)
    >>> float(trainer.step(loss_fn, *world.shard(x, y)))
    1.0
    >>> world.close()
"""

from __future__ import annotations

from unified.distributed.world import (
    DistributedUnsupportedError,
    LocalWorld,
    World,
    init,
)

__all__ = ["DistributedUnsupportedError", "LocalWorld", "World", "init"]
