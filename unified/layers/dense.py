"""``Dense``: the fully connected layer, written only in ``unified.ops``.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> layer = U.Dense(3, activation="relu", in_units=2)
    >>> layer.initialize()
    >>> U.to_numpy(layer(np.ones((4, 2), "float32"))).shape
    (4, 3)
"""

from __future__ import annotations

from typing import Any

from unified import ops
from unified.errors import ShapeError
from unified.init import Initializer
from unified.layers.activations import activation_fn, check_activation
from unified.nets import Net
from unified.parameters import ParamDict, Parameter
from unified.validation import positive_int


class Dense(Net):
    """Fully connected layer: ``activation(x @ weight.T + bias)``.

    Arguments:
        units: the output size.
        activation: a name of ``unified.layers.activations.ACTIVATIONS``
            (``"relu"``, ``"gelu"``, ...) or ``None``; part of this layer, not a
            separate child.
        in_units: the input size; when ``None`` the weight is ``(units, -1)`` and the
            first forward infers it.
        use_bias: whether to add a bias.
        weight_initializer, bias_initializer: the layer's own initializers (they win
            over the one passed to ``initialize``); the bias defaults to zeros.
        params: a ``ParamDict`` with ``weight`` (and ``bias``) to share, e.g.
            ``other.params()``.
        dtype: the parameters' dtype.
        flatten: reshape inputs ``(N, ...)`` to ``(N, -1)`` first, as Gluon's
            ``Dense`` does by default; the default ``False`` applies the layer to
            the last axis, as PyTorch's ``Linear`` does.
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        in_units: int | None = None,
        use_bias: bool = True,
        weight_initializer: Initializer | str | None = None,
        bias_initializer: Initializer | str | None = "zeros",
        params: ParamDict | None = None,
        dtype: str = "float32",
        flatten: bool = False,
    ) -> None:
        super().__init__()
        self.units = positive_int(units, "units", "Dense")
        if in_units is not None:
            in_units = positive_int(in_units, "in_units", "Dense")
        self.activation = check_activation(activation)
        self.flatten = bool(flatten)
        if params is not None:
            self._adopt(params, use_bias, in_units)
            return
        self.weight = Parameter(
            "weight", (self.units, in_units or -1), dtype, weight_initializer
        )
        self.bias: Parameter | None = (
            Parameter("bias", (self.units,), dtype, bias_initializer)
            if use_bias
            else None
        )

    def _adopt(self, params: ParamDict, use_bias: bool, in_units: int | None) -> None:
        weight = params["weight"]
        expected = (self.units, in_units or -1)
        if weight.shape[0] != self.units or (
            in_units is not None and weight.shape[1] not in (-1, in_units)
        ):
            raise ShapeError(
                f"Dense({self.units}) cannot share a weight of shape {weight.shape}: "
                f"expected {expected}. Share parameters between layers of the same "
                "size."
            )
        self.weight = weight
        self.bias = params["bias"] if use_bias else None

    def forward(self, x: Any) -> Any:
        if self.flatten and len(x.shape) != 2:
            x = ops.reshape(x, (x.shape[0], -1))
        weight, bias = self.weight, self.bias
        data = weight._data
        bias_data = None if bias is None else bias._data
        if (
            data is None
            or x.shape[-1] != weight._shape[1]
            or (bias is not None and bias_data is None)
        ):
            self._prepare(x)
            data = weight._data
            bias_data = None if bias is None else bias.data()
        y = ops.linear(x, data, bias_data)
        if self.activation is not None:
            y = activation_fn(self.activation)(y)
        return y

    def _prepare(self, x: Any) -> None:
        """First forward (infer the input size) or a mismatching input (explain)."""
        where = f"{self._describe_short()}"
        features = int(x.shape[-1])
        self.weight._infer((self.units, features), where)
        if self.bias is not None and self.bias._data is None:
            self.bias._infer((self.units,), where)  # raises if never initialized

    def _describe_short(self) -> str:
        return (
            f"Dense({self.weight._shape[1]} -> {self.units}) "
            f"with weight {self.weight.name!r}"
        )

    def _describe(self) -> str:
        act = self.activation or "linear"
        bias = "" if self.bias is not None else ", no bias"
        return (
            f"{self.weight.shape[1]} -> {self.units}, {act}, "
            f"weight {self.weight.shape}{bias}"
        )
