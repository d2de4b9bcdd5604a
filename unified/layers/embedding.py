"""``Embedding``: a lookup table of vectors, written only in ``unified.ops`` (SPEC 13).

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> emb = U.Embedding(10, 3)
    >>> emb.initialize()
    >>> U.to_numpy(emb(np.array([[1, 2], [3, 9]]))).shape
    (2, 2, 3)
"""

from __future__ import annotations

from typing import Any

from unified import ops
from unified.checks import check_indices
from unified.init import Initializer
from unified.nets import Net
from unified.parameters import Parameter
from unified.validation import positive_int


class Embedding(Net):
    """Map integer indices of shape ``S`` to rows of ``weight``: ``S + (output_dim,)``.

    The weight is ``(input_dim, output_dim)`` (Gluon's and PyTorch's layout),
    parameter ``weight``; its gradient adds up the output gradients of repeated
    indices. Indices are integers (NumPy integer arrays stay integers when passed
    in; floats holding whole numbers work too). An index outside
    ``[0, input_dim)`` raises :class:`IndexError` on every backend, also inside a
    compiled ``Trainer`` step (raised after it, before anything is written).

    Arguments:
        input_dim: the number of rows (the vocabulary size).
        output_dim: the size of each vector.
        weight_initializer: the layer's own initializer (it wins over the one
            passed to ``initialize``).
        dtype: the weight's dtype.

    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> emb = U.Embedding(4, 2, weight_initializer=U.init.Constant(1.0))
        >>> emb.initialize()
        >>> U.to_numpy(emb(np.array([0, 3])))
        array([[1., 1.],
               [1., 1.]], dtype=float32)
        >>> emb(np.array([4]))
        Traceback (most recent call last):
        ...
        IndexError: Embedding(4, 2): index 4 is outside [0, 4): ...
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        weight_initializer: Initializer | str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.input_dim = positive_int(input_dim, "input_dim", "Embedding")
        self.output_dim = positive_int(output_dim, "output_dim", "Embedding")
        self.weight = Parameter(
            "weight", (self.input_dim, self.output_dim), dtype, weight_initializer
        )

    def forward(self, x: Any) -> Any:
        check_indices(x, self.input_dim, f"Embedding({self._describe()})")
        return ops.take(self.weight.data(), x, 0)

    def _describe(self) -> str:
        return f"{self.input_dim}, {self.output_dim}"
