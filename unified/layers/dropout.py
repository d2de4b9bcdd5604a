"""``Dropout``: inverted dropout with host-drawn masks, identical on every backend.

In training mode each element is kept with probability ``1 - rate`` and kept values
are scaled by ``1 / (1 - rate)``; in inference mode the layer is the identity.
The mask of the layer's ``call``-th training forward since ``unified.seed`` is::

    u = Generator(Philox(SeedSequence([seed, 1, crc32(name), call]))).random(x.shape)
    mask = where(u >= rate, float32(1 / (1 - rate)), float32(0))
    y = x * mask

where ``name`` is the layer's structural name, recorded by ``net.initialize()`` on
the net it belongs to (``""`` for a layer never initialized as part of a net), so
the same seed gives bitwise-identical outputs on every backend.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> drop = U.Dropout(0.5)
    >>> x = np.ones((2, 3), "float32")
    >>> bool((U.to_numpy(drop(x)) == x).all())  # inference mode: the identity
    True
    >>> with U.training(True):
    ...     set(U.to_numpy(drop(x)).ravel().tolist()) <= {0.0, 2.0}
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unified import backend as _backend
from unified import modes, ops
from unified.nets import Net


class Dropout(Net):
    """Zero each element with probability ``rate`` in training mode (inverted
    scaling: kept values are divided by ``1 - rate``).

    Arguments:
        rate: the drop probability, in ``[0, 1)``.
        rng: ``"host"`` (default) draws the mask on the host from the Philox stream
            of SPEC 12, bitwise identical on every backend. ``"native"`` is reserved
            for a backend's own generator (documented as not identical across
            backends); no backend offers a native dropout hook yet, so it currently
            draws the same host mask.
        dtype: the dtype host inputs are cast to, and the mask's.

    Inside a compiled ``Trainer`` step (JAX) the masks are inputs of the compiled
    function, drawn on the host before each step from the same stream, so compiled
    and eager training see bitwise the same masks.
    """

    @property
    def draws_host_randomness(self) -> bool:
        """Tells the Trainer that forwards draw host masks (inputs of a compiled
        step); a ``Dropout(0.0)`` (e.g. a transformer built with ``dropout=0``)
        never does."""
        return self.rate > 0.0

    def __init__(self, rate: float = 0.5, rng: str = "host", dtype: str = "float32"):
        super().__init__()
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        if rng not in ("host", "native"):
            raise ValueError(f"Dropout rng must be 'host' or 'native', got {rng!r}")
        self.rate = float(rate)
        self.rng = rng
        self.dtype = np.dtype(dtype).name

    def forward(self, x: Any) -> Any:
        if self.rate == 0.0 or not modes.is_training(self):
            return x
        table = self._backend or _backend.current_backend()
        if not table.is_array(x):
            x = table.asarray(np.asarray(x, self.dtype), self.dtype)
        shape = tuple(int(d) for d in x.shape)
        mask = modes.dropout_mask(self, shape, self.rate, self.dtype, table)
        return ops.multiply(x, mask)

    def _describe(self) -> str:
        return f"rate={self.rate}"
