"""Activation layers: ``Activation(name)`` and one class per activation of SPEC 13.

Every activation is a function of :mod:`unified.functional`; the layers and the
``activation=`` strings of ``Activation`` and ``Dense`` resolve through
:func:`activation_fn`. The names: ``relu``, ``sigmoid``, ``tanh``, ``softrelu`` /
``softplus``, ``leaky_relu`` (alpha 0.01), ``elu`` (alpha 1.0), ``selu``, ``gelu``
(erf form), ``gelu_tanh``, ``silu`` / ``swish``, ``relu6``, ``softmax`` and
``log_softmax`` (last axis).

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> U.to_numpy(U.ReLU()(np.array([[-1.0, 2.0]], "float32"))).tolist()
    [[0.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unified import functional as F
from unified.nets import Net


def _gelu_tanh(x: Any) -> Any:
    return F.gelu(x, "tanh")


_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "softrelu": F.softplus,
    "softplus": F.softplus,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "gelu_tanh": _gelu_tanh,
    "silu": F.silu,
    "swish": F.silu,
    "relu6": F.relu6,
    "softmax": F.softmax,
    "log_softmax": F.log_softmax,
}

ACTIVATIONS = tuple(_FUNCTIONS)
"""Every name accepted as ``activation=`` (with the defaults of SPEC 13)."""


def check_activation(name: str | None) -> str | None:
    """Return ``name`` if it names a known activation (or is ``None``); else raise."""
    if name is not None and name not in _FUNCTIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")
    return name


def activation_fn(name: str) -> Callable[[Any], Any]:
    """Return the function of the activation ``name`` (a :data:`ACTIVATIONS` entry).

    It calls the active backend's ops when called, so it can be kept across
    backend switches.
    """
    try:
        return _FUNCTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {ACTIVATIONS}"
        ) from None


class Activation(Net):
    """Apply an activation by name, one of :data:`ACTIVATIONS`."""

    def __init__(self, activation: str) -> None:
        super().__init__()
        self.activation = check_activation(activation)

    def forward(self, x: Any) -> Any:
        return _FUNCTIONS[self.activation](x)  # type: ignore[index]

    def _describe(self) -> str:
        return str(self.activation) if type(self) is Activation else ""


class ReLU(Activation):
    """``max(x, 0)``."""

    def __init__(self) -> None:
        super().__init__("relu")


class Sigmoid(Activation):
    """``1 / (1 + exp(-x))``."""

    def __init__(self) -> None:
        super().__init__("sigmoid")


class Tanh(Activation):
    """Hyperbolic tangent."""

    def __init__(self) -> None:
        super().__init__("tanh")


class Softplus(Activation):
    """``log(1 + exp(x))``, computed stably (Gluon's ``softrelu``)."""

    def __init__(self) -> None:
        super().__init__("softplus")


SoftReLU = Softplus
"""Gluon's name of :class:`Softplus`."""


class LeakyReLU(Activation):
    """``x if x > 0 else alpha * x`` (``alpha`` 0.01 by default)."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__("leaky_relu")
        self.alpha = float(alpha)

    def forward(self, x: Any) -> Any:
        return F.leaky_relu(x, self.alpha)

    def _describe(self) -> str:
        return f"alpha={self.alpha}"


class ELU(Activation):
    """``x if x > 0 else alpha * (exp(x) - 1)`` (``alpha`` 1.0 by default)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__("elu")
        self.alpha = float(alpha)

    def forward(self, x: Any) -> Any:
        return F.elu(x, self.alpha)

    def _describe(self) -> str:
        return f"alpha={self.alpha}"


class SELU(Activation):
    """``scale * elu(x, alpha)`` with SELU's fixed constants."""

    def __init__(self) -> None:
        super().__init__("selu")


class GELU(Activation):
    """Gaussian error linear unit: the erf form, or ``approximate="tanh"``."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}"
            )
        super().__init__("gelu" if approximate == "none" else "gelu_tanh")
        self.approximate = approximate

    def _describe(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Activation):
    """``x * sigmoid(x)`` (also called swish)."""

    def __init__(self) -> None:
        super().__init__("silu")


Swish = SiLU
"""The other name of :class:`SiLU`."""


class ReLU6(Activation):
    """``min(max(x, 0), 6)``."""

    def __init__(self) -> None:
        super().__init__("relu6")


class Softmax(Activation):
    """Softmax along ``axis`` (the last by default)."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__("softmax")
        self.axis = int(axis)

    def forward(self, x: Any) -> Any:
        return F.softmax(x, self.axis)

    def _describe(self) -> str:
        return f"axis={self.axis}"


class LogSoftmax(Activation):
    """Log-softmax along ``axis`` (the last by default)."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__("log_softmax")
        self.axis = int(axis)

    def forward(self, x: Any) -> Any:
        return F.log_softmax(x, self.axis)

    def _describe(self) -> str:
        return f"axis={self.axis}"
