"""PyTorch's ``nn.init`` spellings: ``normal_(p, std=0.01)`` fills a parameter now.

Each function draws on the host, like every unified initializer: the stream is keyed
by ``(seed, epoch, p.name)`` (``p.name`` is the structural name once a net has
initialized the parameter), so the values are bitwise identical on every backend.
A parameter whose shape is not known yet (a deferred ``Dense``) keeps the scheme as
its own initializer and draws it when the shape is known. Re-exported from
:mod:`unified.init`.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> net = U.Sequential(U.Dense(3, in_units=2)); net.initialize()
    >>> def init_weights(m):
    ...     if isinstance(m, U.Dense):
    ...         U.init.normal_(m.weight, std=0.01)
    ...         U.init.zeros_(m.bias)
    >>> _ = net.apply(init_weights)
    >>> float(np.abs(net[0].bias.numpy()).sum())
    0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unified import init as _init
from unified.parameters import ParamDict, Parameter
from unified.validation import number

__all__ = [
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]


class _Between(_init.Initializer):
    """``U[a, b)`` (torch.nn.init.uniform_)."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = a, b

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        arr[...] = self.rng.uniform(self.a, self.b, size=arr.shape)


class _Gaussian(_init.Initializer):
    """``N(mean, std**2)`` (torch.nn.init.normal_)."""

    def __init__(self, mean: float, std: float) -> None:
        self.mean, self.std = mean, std

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        arr[...] = self.rng.normal(self.mean, self.std, size=arr.shape)


def _fill(target: Parameter | ParamDict, scheme: _init.Initializer) -> Any:
    """Draw ``scheme`` into ``target`` now (or when its shape becomes known)."""
    if isinstance(target, ParamDict):
        for p in target.values():
            _fill(p, scheme)
        return target
    if not isinstance(target, Parameter):
        raise TypeError(
            f"unified.init.*_ functions take a Parameter (e.g. layer.weight) or a "
            f"ParamDict, got {type(target).__name__}"
        )
    if -1 in target.shape:
        target._own_init = scheme  # drawn when the first forward infers the shape
        return target
    seed, epoch = _init.next_epoch()
    values = scheme.draw(
        target.name, target.shape, target.dtype, seed=seed, epoch=epoch, own=True
    )
    target.set_data(values)
    return target


def uniform_(p: Any, a: float = 0.0, b: float = 1.0) -> Any:
    """Fill with ``U[a, b)``."""
    return _fill(p, _Between(number(a, "a", "uniform_"), number(b, "b", "uniform_")))


def normal_(p: Any, mean: float = 0.0, std: float = 1.0) -> Any:
    """Fill with ``N(mean, std**2)``."""
    std = number(std, "std", "normal_", low=0.0)
    return _fill(p, _Gaussian(number(mean, "mean", "normal_"), std))


def constant_(p: Any, val: float) -> Any:
    """Fill with ``val``."""
    return _fill(p, _init.Constant(number(val, "val", "constant_")))


def zeros_(p: Any) -> Any:
    """Fill with zeros."""
    return _fill(p, _init.Zeros())


def ones_(p: Any) -> Any:
    """Fill with ones."""
    return _fill(p, _init.Ones())


def xavier_uniform_(p: Any, gain: float = 1.0) -> Any:
    """Fill with :class:`unified.init.xavier_uniform`."""
    return _fill(p, _init.xavier_uniform(gain))


def xavier_normal_(p: Any, gain: float = 1.0) -> Any:
    """Fill with :class:`unified.init.xavier_normal`."""
    return _fill(p, _init.xavier_normal(gain))


def kaiming_uniform_(
    p: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Any:
    """Fill with :class:`unified.init.kaiming_uniform`."""
    return _fill(p, _init.kaiming_uniform(a, mode, nonlinearity))


def kaiming_normal_(
    p: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Any:
    """Fill with :class:`unified.init.kaiming_normal`."""
    return _fill(p, _init.kaiming_normal(a, mode, nonlinearity))


def orthogonal_(p: Any, gain: float = 1.0) -> Any:
    """Fill with :class:`unified.init.Orthogonal` (``scale=gain``)."""
    return _fill(p, _init.Orthogonal(gain))
