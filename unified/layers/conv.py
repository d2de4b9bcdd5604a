"""Convolution layers: ``Conv1D``, ``Conv2D``, ``Conv2DTranspose`` (SPEC 13).

Written only in ``unified.ops`` (the ``conv`` and ``conv_transpose`` hooks).
Layouts are channels-first, ``(N, C, W)`` / ``(N, C, H, W)``; a conv weight is
``(channels, in_channels // groups, *kernel)`` and a transposed conv weight
``(in_channels, channels // groups, *kernel)``, as in Gluon and PyTorch. Without
``in_channels`` the unknown dim is ``-1`` until the first forward infers it (SPEC 4).

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> layer = U.Conv2D(4, kernel_size=3, padding=1)
    >>> layer.initialize()
    >>> U.to_numpy(layer(np.ones((2, 3, 8, 8), "float32"))).shape
    (2, 4, 8, 8)
    >>> layer.weight.shape
    (4, 3, 3, 3)
"""

from __future__ import annotations

from typing import Any

from unified import ops
from unified.errors import ShapeError
from unified.init import Initializer
from unified.layers.activations import activation_fn, check_activation
from unified.nets import Net
from unified.parameters import Parameter
from unified.validation import int_tuple, positive_int


class _Conv(Net):
    """The shared body of the convolution layers (``ndim`` spatial dimensions)."""

    ndim = 2
    transpose = False

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, ...],
        strides: int | tuple[int, ...],
        padding: int | tuple[int, ...],
        output_padding: int | tuple[int, ...],
        dilation: int | tuple[int, ...],
        groups: int,
        activation: str | None,
        use_bias: bool,
        in_channels: int,
        weight_initializer: Initializer | str | None,
        bias_initializer: Initializer | str | None,
        dtype: str,
        stride: int | tuple[int, ...] | None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        n = self.ndim
        if stride is not None:
            if strides != 1:
                raise TypeError(
                    f"{owner}: give strides= (Gluon) or stride= (PyTorch), not both"
                )
            strides = stride
        self.channels = positive_int(channels, "channels", owner)
        self.kernel_size = int_tuple(kernel_size, n, "kernel_size", owner)
        self.strides = int_tuple(strides, n, "strides", owner)
        self.padding = int_tuple(padding, n, "padding", owner, minimum=0)
        self.output_padding = int_tuple(
            output_padding, n, "output_padding", owner, minimum=0
        )
        self.dilation = int_tuple(dilation, n, "dilation", owner)
        self.groups = positive_int(groups, "groups", owner)
        in_channels = positive_int(in_channels, "in_channels", owner, minimum=0)
        self.activation = check_activation(activation)
        if self.channels % self.groups:
            raise ValueError(
                f"{owner}: channels ({self.channels}) must be a multiple of groups "
                f"({self.groups})"
            )
        if in_channels % self.groups:
            raise ValueError(
                f"{owner}: in_channels ({in_channels}) must be a multiple of groups "
                f"({self.groups})"
            )
        for op, s in zip(self.output_padding, self.strides):
            if op >= s:
                raise ValueError(
                    f"{owner}: output_padding {self.output_padding} must be smaller "
                    f"than strides {self.strides} in every dimension"
                )
        self.weight = Parameter(
            "weight", self._weight_shape(in_channels or -1), dtype, weight_initializer
        )
        self.bias: Parameter | None = (
            Parameter("bias", (self.channels,), dtype, bias_initializer)
            if use_bias
            else None
        )

    def _weight_shape(self, in_channels: int) -> tuple[int, ...]:
        if self.transpose:
            return (in_channels, self.channels // self.groups, *self.kernel_size)
        per_group = -1 if in_channels == -1 else in_channels // self.groups
        return (self.channels, per_group, *self.kernel_size)

    @property
    def in_channels(self) -> int:
        """The input channels (``-1`` until known)."""
        shape = self.weight._shape
        if self.transpose:
            return shape[0]
        return -1 if shape[1] == -1 else shape[1] * self.groups

    def forward(self, x: Any) -> Any:
        weight, bias = self.weight, self.bias
        data = weight._data
        bias_data = None if bias is None else bias._data
        if (
            data is None
            or len(x.shape) != self.ndim + 2
            or x.shape[1] != self.in_channels
            or (bias is not None and bias_data is None)
        ):
            self._prepare(x)
            data = weight._data
            bias_data = None if bias is None else bias.data()
        if self.transpose:
            y = ops.conv_transpose(
                x,
                data,
                bias_data,
                self.strides,
                self.padding,
                self.output_padding,
                self.dilation,
                self.groups,
            )
        else:
            y = ops.conv(
                x,
                data,
                bias_data,
                self.strides,
                self.padding,
                self.dilation,
                self.groups,
            )
        if self.activation is not None:
            y = activation_fn(self.activation)(y)
        return y

    def _prepare(self, x: Any) -> None:
        """First forward (infer ``in_channels``) or a mismatching input (explain)."""
        where = f"{type(self).__name__}({self._describe()})"
        shape = tuple(int(d) for d in x.shape)
        if len(shape) != self.ndim + 2:
            layout = "(N, C, W)" if self.ndim == 1 else "(N, C, H, W)"
            raise ShapeError(
                f"{where}: expected an input of {self.ndim + 2} dims {layout}, got "
                f"shape {shape}"
            )
        if shape[1] % self.groups:
            raise ShapeError(
                f"{where}: the input has {shape[1]} channels, not a multiple of "
                f"groups={self.groups}"
            )
        self.weight._infer(self._weight_shape(shape[1]), where)
        if self.bias is not None and self.bias._data is None:
            self.bias._infer((self.channels,), where)  # raises if never initialized

    def _describe(self) -> str:
        known = self.in_channels
        text = f"{known if known != -1 else '?'} -> {self.channels}, "
        text += f"kernel_size={self.kernel_size}, strides={self.strides}"
        if any(self.padding):
            text += f", padding={self.padding}"
        if any(self.output_padding):
            text += f", output_padding={self.output_padding}"
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.activation is not None:
            text += f", {self.activation}"
        if self.bias is None:
            text += ", no bias"
        return text


_ARGUMENTS = """
    Arguments:
        channels: the number of output channels (a multiple of ``groups``).
        kernel_size: the window size, an int or one int per spatial dimension.
        strides: the step between windows (``stride=`` is accepted as PyTorch's
            spelling of the same argument).
        padding: zero padding on both sides of each spatial dimension.
        dilation: the spacing of the kernel taps.
        groups: the number of channel groups (``groups == in_channels`` is a
            depthwise convolution).
        activation: a name of ``unified.layers.activations.ACTIVATIONS`` or ``None``.
        use_bias: whether to add a per-channel bias.
        in_channels: the input channels; ``0`` infers them at the first forward.
        weight_initializer, bias_initializer: the layer's own initializers (they
            win over the one passed to ``initialize``); the bias defaults to zeros.
            Fan-based schemes use ``fan_in = shape[1] * prod(kernel)``.
        dtype: the parameters' dtype.
"""


class _ForwardConv(_Conv):
    """The constructor shared by ``Conv1D`` and ``Conv2D`` (no ``output_padding``)."""

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, ...],
        strides: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        activation: str | None = None,
        use_bias: bool = True,
        in_channels: int = 0,
        weight_initializer: Initializer | str | None = None,
        bias_initializer: Initializer | str | None = "zeros",
        dtype: str = "float32",
        stride: int | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(
            channels,
            kernel_size,
            strides,
            padding,
            0,
            dilation,
            groups,
            activation,
            use_bias,
            in_channels,
            weight_initializer,
            bias_initializer,
            dtype,
            stride,
        )


class Conv1D(_ForwardConv):
    __doc__ = (
        """1-D convolution (cross-correlation) of ``(N, C, W)`` inputs.

    The weight is ``(channels, in_channels // groups, k)``; parameters ``weight``
    and ``bias``.
"""
        + _ARGUMENTS
        + """
    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> layer = U.Conv1D(2, kernel_size=3, strides=2)
        >>> layer.initialize()
        >>> U.to_numpy(layer(np.ones((4, 3, 9), "float32"))).shape
        (4, 2, 4)
    """
    )

    ndim = 1


class Conv2D(_ForwardConv):
    __doc__ = (
        """2-D convolution (cross-correlation) of ``(N, C, H, W)`` inputs.

    The weight is ``(channels, in_channels // groups, kh, kw)``; parameters
    ``weight`` and ``bias``.
"""
        + _ARGUMENTS
        + """
    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> layer = U.Conv2D(6, kernel_size=5, activation="relu")
        >>> layer.initialize()
        >>> U.to_numpy(layer(np.ones((4, 1, 28, 28), "float32"))).shape
        (4, 6, 24, 24)
        >>> layer.weight.shape
        (6, 1, 5, 5)
    """
    )

    ndim = 2


class Conv2DTranspose(_Conv):
    __doc__ = (
        """2-D transposed convolution (the gradient of ``Conv2D`` w.r.t. its input).

    The weight is ``(in_channels, channels // groups, kh, kw)`` as in Gluon and
    PyTorch; parameters ``weight`` and ``bias``. The output size of a spatial
    dimension is ``(in - 1) * strides - 2 * padding + dilation * (k - 1) +
    output_padding + 1``.
"""
        + _ARGUMENTS
        + """        output_padding: extra output positions on the right of each spatial
            dimension, smaller than ``strides``.

    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> layer = U.Conv2DTranspose(2, kernel_size=3, strides=2, output_padding=1)
        >>> layer.initialize()
        >>> U.to_numpy(layer(np.ones((4, 3, 5, 5), "float32"))).shape
        (4, 2, 12, 12)
        >>> layer.weight.shape
        (3, 2, 3, 3)
    """
    )

    ndim = 2
    transpose = True

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, ...],
        strides: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        activation: str | None = None,
        use_bias: bool = True,
        in_channels: int = 0,
        weight_initializer: Initializer | str | None = None,
        bias_initializer: Initializer | str | None = "zeros",
        dtype: str = "float32",
        stride: int | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(
            channels,
            kernel_size,
            strides,
            padding,
            output_padding,
            dilation,
            groups,
            activation,
            use_bias,
            in_channels,
            weight_initializer,
            bias_initializer,
            dtype,
            stride,
        )
