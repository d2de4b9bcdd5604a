"""Pooling layers: max, average and global pooling over 1 or 2 spatial dims (SPEC 13).

Written only in ``unified.ops`` (the ``pool`` hook, ``mean`` and ``max``). Layouts
are channels-first; the window formulas are PyTorch's (see the ``pool`` hookspec).
Global pooling keeps the spatial axes with size 1, as Gluon does: ``(N, C, 1)`` and
``(N, C, 1, 1)``.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> x = np.arange(16, dtype="float32").reshape(1, 1, 4, 4)
    >>> U.to_numpy(U.MaxPool2D()(x))[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> U.to_numpy(U.GlobalAvgPool2D()(x)).shape
    (1, 1, 1, 1)
"""

from __future__ import annotations

from typing import Any

from unified import ops
from unified.errors import ShapeError
from unified.nets import Net
from unified.validation import int_tuple


def _check_rank(layer: Net, x: Any, ndim: int) -> None:
    if len(x.shape) != ndim + 2:
        layout = "(N, C, W)" if ndim == 1 else "(N, C, H, W)"
        raise ShapeError(
            f"{type(layer).__name__}: expected an input of {ndim + 2} dims {layout}, "
            f"got shape {tuple(int(d) for d in x.shape)}"
        )


class _Pool(Net):
    """The shared body of the window pooling layers."""

    ndim = 2
    mode = "max"

    def __init__(
        self,
        pool_size: int | tuple[int, ...],
        strides: int | tuple[int, ...] | None,
        padding: int | tuple[int, ...],
        ceil_mode: bool,
        count_include_pad: bool,
        stride: int | tuple[int, ...] | None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        n = self.ndim
        if stride is not None:
            if strides is not None:
                raise TypeError(
                    f"{owner}: give strides= (Gluon) or stride= (PyTorch), not both"
                )
            strides = stride
        self.pool_size = int_tuple(pool_size, n, "pool_size", owner)
        self.strides = (
            self.pool_size
            if strides is None
            else int_tuple(strides, n, "strides", owner)
        )
        self.padding = int_tuple(padding, n, "padding", owner, minimum=0)
        for p, k in zip(self.padding, self.pool_size):
            if 2 * p > k:
                raise ValueError(
                    f"{owner}: padding {self.padding} must be at most half of "
                    f"pool_size {self.pool_size} in every dimension"
                )
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x: Any) -> Any:
        _check_rank(self, x, self.ndim)
        return ops.pool(
            x,
            self.mode,
            self.pool_size,
            self.strides,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
        )

    def _describe(self) -> str:
        text = f"pool_size={self.pool_size}, strides={self.strides}"
        if any(self.padding):
            text += f", padding={self.padding}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        if self.mode == "avg" and not self.count_include_pad:
            text += ", count_include_pad=False"
        return text


_ARGUMENTS = """
    Arguments:
        pool_size: the window size, an int or one int per spatial dimension.
        strides: the step between windows; ``None`` means ``pool_size`` (``stride=``
            is accepted as PyTorch's spelling).
        padding: implicit padding on both sides, at most half of ``pool_size``.
        ceil_mode: round the number of windows up instead of down (a window never
            starts in the right padding).
"""

_COUNT = """        count_include_pad: whether padding counts in the divisor.
"""


class _MaxPool(_Pool):
    """The constructor shared by the max pooling layers."""

    def __init__(
        self,
        pool_size: int | tuple[int, ...] = 2,
        strides: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        stride: int | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(pool_size, strides, padding, ceil_mode, True, stride)


class MaxPool1D(_MaxPool):
    __doc__ = (
        """Max pooling of ``(N, C, W)`` inputs (padding never wins).
"""
        + _ARGUMENTS
        + """
    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> U.to_numpy(U.MaxPool1D(3, strides=1)(np.ones((4, 2, 5), "float32"))).shape
        (4, 2, 3)
    """
    )

    ndim = 1
    mode = "max"


class MaxPool2D(_MaxPool):
    __doc__ = (
        """Max pooling of ``(N, C, H, W)`` inputs (padding never wins).
"""
        + _ARGUMENTS
        + """
    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> U.to_numpy(U.MaxPool2D(2)(np.ones((4, 3, 7, 7), "float32"))).shape
        (4, 3, 3, 3)
    """
    )

    ndim = 2
    mode = "max"


class _AvgPool(_Pool):
    """The constructor shared by the average pooling layers."""

    def __init__(
        self,
        pool_size: int | tuple[int, ...] = 2,
        strides: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        stride: int | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(
            pool_size, strides, padding, ceil_mode, count_include_pad, stride
        )


class AvgPool1D(_AvgPool):
    __doc__ = (
        """Average pooling of ``(N, C, W)`` inputs.
"""
        + _ARGUMENTS
        + _COUNT
        + """
    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> x = np.array([[[1.0, 2.0, 3.0, 4.0]]], "float32")
        >>> U.to_numpy(U.AvgPool1D(2)(x))
        array([[[1.5, 3.5]]], dtype=float32)
    """
    )

    ndim = 1
    mode = "avg"


class AvgPool2D(_AvgPool):
    __doc__ = (
        """Average pooling of ``(N, C, H, W)`` inputs.
"""
        + _ARGUMENTS
        + _COUNT
        + """
    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> pool = U.AvgPool2D(3, strides=2, padding=1, count_include_pad=False)
        >>> U.to_numpy(pool(np.ones((4, 3, 8, 8), "float32"))).shape
        (4, 3, 4, 4)
    """
    )

    ndim = 2
    mode = "avg"


class _GlobalPool(Net):
    """Reduce every spatial axis, keeping it with size 1 (Gluon's output shape)."""

    ndim = 2
    mode = "avg"

    def forward(self, x: Any) -> Any:
        _check_rank(self, x, self.ndim)
        axes = tuple(range(2, 2 + self.ndim))
        if self.mode == "avg":
            return ops.mean(x, axes, True)
        return ops.max(x, axes, True)


def _global_doc(what: str, ndim: int) -> str:
    layout, out = (
        ("(N, C, W)", "(N, C, 1)") if ndim == 1 else ("(N, C, H, W)", "(N, C, 1, 1)")
    )
    shape = "(4, 3, 5)" if ndim == 1 else "(4, 3, 5, 5)"
    name = f"Global{'Avg' if what == 'mean' else 'Max'}Pool{ndim}D"
    result = "(4, 3, 1)" if ndim == 1 else "(4, 3, 1, 1)"
    return f"""The {what} over the spatial axes of ``{layout}`` inputs, shape ``{out}``.

    Gluon's output shape (PyTorch's ``AdaptiveAvgPool``/``AdaptiveMaxPool`` with
    output size 1 gives the same).

    Arguments:
        none: the layer has no options and no parameters.

    Example::

        >>> import numpy as np
        >>> import unified as U
        >>> U.to_numpy(U.{name}()(np.ones({shape}, "float32"))).shape
        {result}
    """


class GlobalAvgPool1D(_GlobalPool):
    __doc__ = _global_doc("mean", 1)
    ndim = 1
    mode = "avg"


class GlobalAvgPool2D(_GlobalPool):
    __doc__ = _global_doc("mean", 2)
    ndim = 2
    mode = "avg"


class GlobalMaxPool1D(_GlobalPool):
    __doc__ = _global_doc("maximum", 1)
    ndim = 1
    mode = "max"


class GlobalMaxPool2D(_GlobalPool):
    __doc__ = _global_doc("maximum", 2)
    ndim = 2
    mode = "max"
