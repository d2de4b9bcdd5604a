"""Activation layers: ``Activation(name)`` and one class per activation.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> U.ReLU()(np.array([[-1.0, 2.0]], "float32")).tolist()
    [[0.0, 2.0]]
"""

from __future__ import annotations

from typing import Any

from unified import ops
from unified.nets import Net

ACTIVATIONS = ("relu", "sigmoid", "tanh")


def check_activation(name: str | None) -> str | None:
    """Return ``name`` if it names a known activation (or is ``None``); else raise."""
    if name is not None and name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")
    return name


class Activation(Net):
    """Apply an activation by name: ``"relu"``, ``"sigmoid"`` or ``"tanh"``."""

    def __init__(self, activation: str) -> None:
        super().__init__()
        self.activation = check_activation(activation)

    def forward(self, x: Any) -> Any:
        return getattr(ops, self.activation)(x)  # type: ignore[arg-type]

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
