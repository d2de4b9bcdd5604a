"""Optimizers with torch.optim's formulas, written once in backend ops (SPEC 6).

Each update has two halves: ``coefficients`` runs on the host in float64 (learning
rate times ``lr_mult``, bias corrections, the step count) and ``rule`` applies them
with backend ops. The coefficients are Python floats cast once by the backend op,
or, in a compiled JAX step, inputs of the compiled function, so changing ``lr`` or
``lr_mult`` between steps is always honoured.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> net = U.Dense(1, in_units=2); net.initialize(U.init.Ones())
    >>> opt = U.optim.SGD(net.params(), lr=0.1, momentum=0.9)
    >>> _ = U.value_and_grad(lambda n: U.ops.sum(n.weight.data()))(net)
    >>> opt.step(); net.weight.numpy().tolist()
    [[0.8999999761581421, 0.8999999761581421]]
"""

from __future__ import annotations

from unified.optim.adam import Adam, AdamW
from unified.optim.base import Optimizer, lr_groups
from unified.optim.rmsprop import RMSProp, RMSprop
from unified.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSProp", "RMSprop", "lr_groups"]
