"""Initializers, drawn on the host with NumPy so every backend gets the same bits.

Each parameter gets its own stream,
``Generator(Philox(SeedSequence([seed, epoch, crc32(name)])))``: ``seed`` is set by
:func:`seed`, ``epoch`` counts ``initialize`` calls since then, and ``name`` is the
parameter's structural name. Values are drawn in float64 and rounded once to the
parameter's dtype, so the same seed gives bitwise-identical weights on every backend,
whatever the construction order and whether shapes were known at once or inferred.

Example::

    >>> import numpy as np
    >>> from unified import init
    >>> class Halves(init.Initializer):
    ...     def _init_weight(self, name, arr):
    ...         arr[:] = 0.5
    >>> Halves().draw("0.weight", (2, 2), "float32", seed=0, epoch=0, own=True)
    array([[0.5, 0.5],
           [0.5, 0.5]], dtype=float32)
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from unified.validation import number, one_of

__all__ = [
    "Constant",
    "Initializer",
    "MSRAPrelu",
    "Normal",
    "Ones",
    "Orthogonal",
    "Uniform",
    "Xavier",
    "Zeros",
    "create",
    "kaiming_normal",
    "kaiming_uniform",
    "rng_for",
    "seed",
    "xavier_normal",
    "xavier_uniform",
]

_seed: int = int(np.random.SeedSequence().entropy % (2**63))  # type: ignore[operator]
_epoch: int = 0
_seed_calls: int = 0
"""How many times :func:`seed` was called (forward randomness restarts at each)."""


def seed(n: int) -> None:
    """Seed every later initialization: same seed, same weights on every backend.

    Without a call the seed is drawn from the operating system once per process (as
    NumPy and Gluon do). Resets the ``initialize`` epoch counter to 0, and every
    layer's count of training forwards (dropout masks, SPEC 12) too.
    """
    global _seed, _epoch, _seed_calls
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"seed must be a non-negative integer, got {n!r}")
    _seed, _epoch = int(n), 0
    _seed_calls += 1


def get_seed() -> int:
    """Return the seed in force (the one given to :func:`seed`, or the process's)."""
    return _seed


def seed_calls() -> int:
    """Return how many times :func:`seed` has been called in this process."""
    return _seed_calls


def next_epoch() -> tuple[int, int]:
    """Return ``(seed, epoch)`` for one ``initialize`` call and advance the epoch."""
    global _epoch
    key = (_seed, _epoch)
    _epoch += 1
    return key


def rng_for(seed: int, epoch: int, name: str) -> np.random.Generator:
    """Return the generator of parameter ``name`` (SPEC 3): Philox keyed by all
    three."""
    sequence = np.random.SeedSequence([seed, epoch, zlib.crc32(name.encode("utf-8"))])
    return np.random.Generator(np.random.Philox(sequence))


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight of ``shape`` (at least 2 dims)."""
    if len(shape) < 2:
        raise ValueError(
            "a fan-based initializer needs a parameter with at least 2 dims, got "
            f"shape {shape}; give this parameter another initializer "
            "(e.g. Zeros or Normal)"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base class: fill a float64 NumPy array in place, once for every backend.

    Subclasses override :meth:`_init_weight` (and optionally :meth:`_init_bias`),
    writing into ``arr`` as in Gluon (``arr[:] = ...``) and drawing randomness from
    :attr:`rng`. A global initializer (``net.initialize(init)``) is dispatched by the
    parameter name's suffix: ``weight`` -> ``_init_weight``, ``bias`` ->
    ``_init_bias`` (zeros), anything else -> ``_init_default`` (``_init_weight``).
    An initializer given to a parameter or layer (``weight_initializer=``) always
    uses ``_init_weight``.
    """

    _rng: np.random.Generator | None = None

    @property
    def rng(self) -> np.random.Generator:
        """The parameter's own generator, valid while the initializer runs."""
        if self._rng is None:
            raise RuntimeError("Initializer.rng is only available while initializing")
        return self._rng

    def draw(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: str,
        *,
        seed: int,
        epoch: int,
        own: bool,
    ) -> np.ndarray:
        """Return the values of parameter ``name``: drawn in float64, cast once."""
        arr = np.zeros(shape, dtype=np.float64)
        self._rng = rng_for(seed, epoch, name)
        try:
            if own or name.endswith("weight"):
                self._init_weight(name, arr)
            elif name.endswith("bias"):
                self._init_bias(name, arr)
            else:
                self._init_default(name, arr)
        finally:
            self._rng = None
        return arr.astype(dtype)

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _init_weight(name, arr)"
        )

    def _init_bias(self, name: str, arr: np.ndarray) -> None:
        arr[...] = 0.0

    def _init_default(self, name: str, arr: np.ndarray) -> None:
        self._init_weight(name, arr)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "_rng")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


class Zeros(Initializer):
    """All zeros."""

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        arr[...] = 0.0


class Ones(Initializer):
    """All ones."""

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        arr[...] = 1.0


class Constant(Initializer):
    """Every element ``value`` (a scalar, or an array broadcastable to the shape)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        arr[...] = np.asarray(self.value, dtype=np.float64)


class Uniform(Initializer):
    """``U[-scale, scale)``; the default initializer with ``scale=0.07``."""

    def __init__(self, scale: float = 0.07) -> None:
        self.scale = number(scale, "scale", "Uniform", low=0.0)

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        arr[...] = self.rng.uniform(-self.scale, self.scale, size=arr.shape)


class Normal(Initializer):
    """``N(0, sigma**2)``, not truncated."""

    def __init__(self, sigma: float = 0.01) -> None:
        self.sigma = number(sigma, "sigma", "Normal", low=0.0)

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        arr[...] = self.rng.normal(0.0, self.sigma, size=arr.shape)


def _random(
    rng: np.random.Generator, kind: str, bound: float, shape: tuple[int, ...]
) -> np.ndarray:
    """Uniform on ``(-bound, bound)`` or normal with std ``bound``."""
    if kind == "uniform":
        return rng.uniform(-bound, bound, size=shape)
    if kind == "gaussian":
        return rng.normal(0.0, bound, size=shape)
    raise ValueError(f"rnd_type must be 'uniform' or 'gaussian', got {kind!r}")


class Xavier(Initializer):
    """Gluon's Xavier: ``s = sqrt(magnitude / factor)``, ``U(-s, s)`` or ``N(0, s**2)``.

    ``factor_type`` picks ``factor``: ``"avg"`` (fan_in + fan_out) / 2, ``"in"``
    fan_in, ``"out"`` fan_out.
    """

    def __init__(
        self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3
    ) -> None:
        one_of(factor_type, ("avg", "in", "out"), "factor_type", "Xavier")
        one_of(rnd_type, ("uniform", "gaussian"), "rnd_type", "Xavier")
        self.rnd_type, self.factor_type, self.magnitude = (
            rnd_type,
            factor_type,
            number(magnitude, "magnitude", "Xavier", low=0.0),
        )

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        fan_in, fan_out = fans(arr.shape)
        factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}
        scale = math.sqrt(self.magnitude / factor[self.factor_type])
        arr[...] = _random(self.rng, self.rnd_type, scale, arr.shape)


class MSRAPrelu(Xavier):
    """He initialization: ``Xavier("gaussian", factor_type, 2 / (1 + slope**2))``."""

    def __init__(self, factor_type: str = "avg", slope: float = 0.25) -> None:
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope**2))
        self.slope = slope


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``scale``: QR of a standard normal,
    sign-fixed."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = number(scale, "scale", "Orthogonal")

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        if arr.ndim < 2:
            raise ValueError(
                "Orthogonal needs a parameter with at least 2 dims, got shape "
                f"{arr.shape}"
            )
        rows, cols = arr.shape[0], math.prod(arr.shape[1:])
        flat = self.rng.standard_normal((rows, cols))
        transpose = rows < cols
        q, r = np.linalg.qr(flat.T if transpose else flat)
        q = q * np.sign(np.diag(r))
        arr[...] = (self.scale * (q.T if transpose else q)).reshape(arr.shape)


_GAINS = {
    "linear": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4,
}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's gain table (``torch.nn.init.calculate_gain``)."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        raise ValueError(
            f"unknown nonlinearity {nonlinearity!r}; expected one of "
            f"{sorted([*_GAINS, 'leaky_relu'])}"
        )
    return _GAINS[nonlinearity]


class _TorchStyle(Initializer):
    rnd_type = "uniform"

    def _bound(self, shape: tuple[int, ...]) -> float:
        raise NotImplementedError

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        arr[...] = _random(self.rng, self.rnd_type, self._bound(arr.shape), arr.shape)


class xavier_uniform(_TorchStyle):  # noqa: N801 - torch's name
    """``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))`` (torch.nn.init)."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = number(gain, "gain", type(self).__name__, low=0.0)

    def _bound(self, shape: tuple[int, ...]) -> float:
        fan_in, fan_out = fans(shape)
        return self.gain * math.sqrt(6.0 / (fan_in + fan_out))


class xavier_normal(xavier_uniform):  # noqa: N801 - torch's name
    """``N(0, std**2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``
    (torch.nn.init)."""

    rnd_type = "gaussian"

    def _bound(self, shape: tuple[int, ...]) -> float:
        fan_in, fan_out = fans(shape)
        return self.gain * math.sqrt(2.0 / (fan_in + fan_out))


class kaiming_uniform(_TorchStyle):  # noqa: N801 - torch's name
    """``U(-b, b)``, ``b = gain * sqrt(3 / fan)`` (torch.nn.init.kaiming_uniform_)."""

    def __init__(
        self, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
    ) -> None:
        one_of(mode, ("fan_in", "fan_out"), "mode", type(self).__name__)
        calculate_gain(nonlinearity, a)  # an unknown nonlinearity fails now
        self.a, self.mode, self.nonlinearity = a, mode, nonlinearity

    def _std(self, shape: tuple[int, ...]) -> float:
        fan_in, fan_out = fans(shape)
        fan = fan_in if self.mode == "fan_in" else fan_out
        return calculate_gain(self.nonlinearity, self.a) / math.sqrt(fan)

    def _bound(self, shape: tuple[int, ...]) -> float:
        return math.sqrt(3.0) * self._std(shape)


class kaiming_normal(kaiming_uniform):  # noqa: N801 - torch's name
    """``N(0, std**2)``, ``std = gain / sqrt(fan)`` (torch.nn.init.kaiming_normal_)."""

    rnd_type = "gaussian"

    def _bound(self, shape: tuple[int, ...]) -> float:
        return self._std(shape)


Zero, One = Zeros, Ones
XavierUniform, XavierNormal = xavier_uniform, xavier_normal
KaimingUniform, KaimingNormal = kaiming_uniform, kaiming_normal

_BY_NAME: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "zero": Zeros,
    "ones": Ones,
    "one": Ones,
    "uniform": Uniform,
    "normal": Normal,
    "xavier": Xavier,
    "msraprelu": MSRAPrelu,
    "orthogonal": Orthogonal,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
}

DEFAULT: Initializer = Uniform(0.07)


def create(init: Initializer | str | None) -> Initializer | None:
    """Return ``init`` as an :class:`Initializer` (a name such as ``"zeros"`` works)."""
    if init is None or isinstance(init, Initializer):
        return init
    if isinstance(init, str) and init.lower() in _BY_NAME:
        return _BY_NAME[init.lower()]()
    raise ValueError(
        f"unknown initializer {init!r}; pass an unified.init.Initializer or one of "
        f"{sorted(_BY_NAME)}"
    )


# PyTorch's in-place spellings (normal_, xavier_uniform_, ...): they build on the
# classes above, so they are imported last.
from unified.init_inplace import *  # noqa: E402, F403
