"""Shape layers: ``Flatten`` (SPEC 13), written only in ``unified.ops``.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> U.to_numpy(U.Flatten()(np.ones((4, 3, 2, 2), "float32"))).shape
    (4, 12)
"""

from __future__ import annotations

from typing import Any

from unified import ops
from unified.nets import Net


class Flatten(Net):
    """Reshape ``(N, ...)`` to ``(N, -1)``, keeping the first (batch) axis.

    As Gluon's ``nn.Flatten`` and PyTorch's ``nn.Flatten()`` with its defaults
    (``start_dim=1``); a 1-D input ``(N,)`` becomes ``(N, 1)``.

    Arguments:
        none: the layer has no options and no parameters.

    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> U.to_numpy(U.Flatten()(np.zeros((2, 3, 4), "float32"))).shape
        (2, 12)
    """

    def forward(self, x: Any) -> Any:
        return ops.reshape(x, (int(x.shape[0]), -1))
