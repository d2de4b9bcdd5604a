"""Normalization layers: ``BatchNorm``, ``LayerNorm``, ``GroupNorm`` (SPEC 13).

Written only in ``unified.ops``. Channel counts may be left unknown (``in_channels=0``)
and are inferred at the first forward (SPEC 4). BatchNorm's running statistics are
state parameters (``trainable=False``), written in training-mode forwards (SPEC 12).

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> bn = U.BatchNorm()
    >>> bn.initialize()
    >>> x = np.arange(8, dtype="float32").reshape(4, 2)
    >>> list(bn.params())
    ['gamma', 'beta', 'running_mean', 'running_var']
    >>> with U.training(True):
    ...     y = bn(x)
    >>> bn.running_mean.numpy().astype("float64").round(2).tolist()
    [0.3, 0.4]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from unified import backend as _backend
from unified import modes, ops
from unified.nets import Net
from unified.parameters import Parameter


class _Affine(Net):
    """The shared part: per-channel ``gamma``/``beta`` and deferred channel counts."""

    def __init__(
        self,
        in_channels: int,
        center: bool,
        scale: bool,
        dtype: str,
        gamma_initializer: Any = "ones",
        beta_initializer: Any = "zeros",
    ) -> None:
        super().__init__()
        shape = (int(in_channels) or -1,)
        self.dtype = dtype
        self.gamma: Parameter | None = (
            Parameter("gamma", shape, dtype, gamma_initializer) if scale else None
        )
        self.beta: Parameter | None = (
            Parameter("beta", shape, dtype, beta_initializer) if center else None
        )

    def _channel_params(self) -> list[Parameter]:
        return [p for p in self._entries.values() if isinstance(p, Parameter)]

    def _prepare(self, channels: int) -> None:
        """Infer the channel count at the first forward (or explain a mismatch)."""
        where = f"{type(self).__name__}({channels} channels)"
        for p in self._channel_params():
            if p._data is None or p._shape != (channels,):
                p._infer((channels,), where)

    def _affine(self, y: Any, shape: tuple[int, ...]) -> Any:
        """``y * gamma + beta``, the vectors reshaped to ``shape`` to broadcast."""
        if self.gamma is not None:
            y = ops.multiply(y, ops.reshape(self.gamma.data(), shape))
        if self.beta is not None:
            y = ops.add(y, ops.reshape(self.beta.data(), shape))
        return y

    def _ready(self, channels: int) -> None:
        first = self.gamma if self.gamma is not None else self.beta
        if first is None:
            return
        if first._data is None or first._shape[0] != channels:
            self._prepare(channels)


def _normalize(x: Any, mean: Any, var: Any, epsilon: float) -> Any:
    return ops.divide(ops.subtract(x, mean), ops.sqrt(ops.add(var, epsilon)))


class BatchNorm(_Affine):
    """Batch normalization over every axis but ``axis`` (the channel axis).

    Training mode normalizes with the batch's mean and biased variance and updates
    ``running = momentum * running + (1 - momentum) * batch`` (Gluon's and Flax's
    convention; PyTorch's ``momentum=0.1`` is ``0.9`` here), the variance term being
    the unbiased batch variance (PyTorch) or, with ``unbiased_running_var=False``, the
    biased one (Gluon, Flax). Inference mode, or ``use_global_stats=True``,
    normalizes with the running statistics and updates nothing.

    Arguments:
        axis: the channel axis (1: channels-first).
        momentum: weight of the old running value.
        epsilon: added to the variance.
        center, scale: whether to have ``beta`` / ``gamma``.
        use_global_stats: always use (and never update) the running statistics.
        unbiased_running_var: see above.
        in_channels: the channel count; ``0`` infers it at the first forward.

    In training mode the layer calls the backend's fused ``batch_norm`` kernel when
    the backend offers one (capability ``batch_norm``: PyTorch, MXNet, NumPy) and
    composes ``unified.ops`` otherwise (JAX, where ``jax.jit`` fuses the
    composition). A batch with one value per channel is always composed. In
    inference mode the layer calls the backend's ``batch_norm_inference`` kernel
    (capability ``batch_norm_inference``: all four built-in backends) or else folds
    the running statistics into one per-channel scale and shift. ``fused = False``
    on an instance forces the compositions.
    """

    fused = True
    """Use the backend's fused ``batch_norm`` / ``batch_norm_inference`` kernels when
    it offers them."""

    replica_groups = 1
    """Data parallel in one process (set by :mod:`unified.distributed` on JAX): the
    batch (axis 0) holds this many equal replica shares and training-mode statistics
    are computed per share, as each replica would alone; the running statistics
    follow the first share (replica 0)."""

    replica_mean: Callable[[Any, int], tuple[Any, int]] | None = None
    """Data parallel over processes with synchronized statistics (set by
    :mod:`unified.distributed` on torch): ``(local mean, local count) -> (global
    mean, global count)``, a differentiable all-reduce weighted by the counts; the
    batch moments go through it."""

    def __init__(
        self,
        axis: int = 1,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        use_global_stats: bool = False,
        unbiased_running_var: bool = True,
        in_channels: int = 0,
        dtype: str = "float32",
    ) -> None:
        super().__init__(in_channels, center, scale, dtype)
        shape = (int(in_channels) or -1,)
        self.running_mean = Parameter(
            "running_mean", shape, dtype, "zeros", trainable=False
        )
        self.running_var = Parameter(
            "running_var", shape, dtype, "ones", trainable=False
        )
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.use_global_stats = bool(use_global_stats)
        self.unbiased_running_var = bool(unbiased_running_var)

    def _ready(self, channels: int) -> None:
        p = self.running_mean
        if p._data is None or p._shape[0] != channels:
            self._prepare(channels)

    def forward(self, x: Any) -> Any:
        ndim = len(x.shape)
        axis = self.axis % ndim
        channels = int(x.shape[axis])
        self._ready(channels)
        shape = tuple(channels if i == axis else 1 for i in range(ndim))
        if self.use_global_stats or not modes.is_training(self):
            return self._inference(x, axis, shape)
        reduce = tuple(i for i in range(ndim) if i != axis)
        count = math.prod(int(x.shape[i]) for i in reduce)
        if self.replica_groups > 1 or self.replica_mean is not None:
            return self._replica_forward(x, axis, reduce, count, shape)
        kernel = self._kernel() if count > 1 else None  # one value: y is beta
        if kernel is not None:
            gamma = None if self.gamma is None else self.gamma.data()
            beta = None if self.beta is None else self.beta.data()
            y, mean, var = kernel(x, gamma, beta, axis, self.epsilon)
            self._update(mean, var, count)
            return y
        mean = ops.mean(x, reduce, True)
        centered = ops.subtract(x, mean)
        var = ops.mean(ops.square(centered), reduce, True)
        y = ops.divide(centered, ops.sqrt(ops.add(var, self.epsilon)))
        self._update(mean, var, count)
        return self._affine(y, shape)

    def _replica_forward(
        self,
        x: Any,
        axis: int,
        reduce: tuple[int, ...],
        count: int,
        shape: tuple[int, ...],
    ) -> Any:
        """Training-mode forward of a data-parallel replica (see ``replica_groups``
        and ``replica_mean``)."""
        groups = self.replica_groups
        if groups > 1:
            rows = int(x.shape[0])
            if axis == 0 or rows % groups:
                raise ValueError(
                    f"BatchNorm with per-replica statistics over {groups} replicas "
                    f"needs the batch axis 0 (not the channel axis {axis}) to split "
                    f"into {groups} equal shares, got {rows} rows"
                )
            xg = ops.reshape(x, (groups, rows // groups, *x.shape[1:]))
            inner = tuple(i + 1 for i in reduce)
            mean = ops.mean(xg, inner, True)
            centered = ops.subtract(xg, mean)
            var = ops.mean(ops.square(centered), inner, True)
            y = ops.divide(centered, ops.sqrt(ops.add(var, self.epsilon)))
            y = ops.reshape(y, tuple(x.shape))
            first = (ops.slice_axis(mean, 0, 0, 1), ops.slice_axis(var, 0, 0, 1))
            self._update(first[0], first[1], count // groups)
            return self._affine(y, shape)
        average: Any = self.replica_mean
        mean, total = average(ops.mean(x, reduce, True), count)
        centered = ops.subtract(x, mean)
        var, _ = average(ops.mean(ops.square(centered), reduce, True), count)
        y = ops.divide(centered, ops.sqrt(ops.add(var, self.epsilon)))
        self._update(mean, var, total)
        return self._affine(y, shape)

    def _kernel(self, name: str = "batch_norm") -> Callable[..., Any] | None:
        """The backend's optional fused hook ``name`` (``batch_norm`` or
        ``batch_norm_inference``), if it has one and ``fused`` is on."""
        if not self.fused:
            return None
        table = self._backend or _backend.current_backend()
        if name not in table.capabilities:
            return None
        kernel: Callable[..., Any] = getattr(table, name)
        return kernel

    def _inference(self, x: Any, axis: int, shape: tuple[int, ...]) -> Any:
        """Normalize with the running statistics: one call of the backend's fused
        ``batch_norm_inference`` kernel when it has one, else ``x * scale + shift``
        with the statistics folded into per-channel vectors (two full-size
        operations instead of five)."""
        kernel = self._kernel("batch_norm_inference")
        if kernel is not None:
            return kernel(
                x,
                self.running_mean.data(),
                self.running_var.data(),
                None if self.gamma is None else self.gamma.data(),
                None if self.beta is None else self.beta.data(),
                axis,
                self.epsilon,
            )
        scale = ops.divide(
            1.0, ops.sqrt(ops.add(self.running_var.data(), self.epsilon))
        )
        if self.gamma is not None:
            scale = ops.multiply(scale, self.gamma.data())
        shift = ops.negative(ops.multiply(self.running_mean.data(), scale))
        if self.beta is not None:
            shift = ops.add(shift, self.beta.data())
        return ops.add(
            ops.multiply(x, ops.reshape(scale, shape)), ops.reshape(shift, shape)
        )

    def _update(self, mean: Any, var: Any, count: int) -> None:
        """Blend the batch statistics into the running ones."""
        m = self.momentum
        channels = (int(self.running_mean._shape[0]),)
        if self.unbiased_running_var and count > 1:
            var = ops.multiply(var, count / (count - 1))
        for p, batch in ((self.running_mean, mean), (self.running_var, var)):
            old = modes.read_state(p)
            new = ops.add(
                ops.multiply(old, m), ops.multiply(ops.reshape(batch, channels), 1 - m)
            )
            modes.write_state(p, new)

    def _describe(self) -> str:
        return (
            f"axis={self.axis}, momentum={self.momentum}, eps={self.epsilon}, "
            f"channels={self.running_mean.shape[0]}"
        )


class LayerNorm(_Affine):
    """Normalize over ``axis`` (the last by default) with per-channel gamma/beta.

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``, mean and (biased)
    variance over ``axis`` only, as Gluon's ``LayerNorm``; PyTorch's
    ``layer_norm(x, (C,))`` is the same for the last axis. No mode dependence.

    Arguments:
        axis: the normalized axis; ``gamma``/``beta`` have its length.
        epsilon: added to the variance.
        center, scale: whether to have ``beta`` / ``gamma``.
        in_channels: the axis' length; ``0`` infers it at the first forward.
    """

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        in_channels: int = 0,
        dtype: str = "float32",
    ) -> None:
        super().__init__(in_channels, center, scale, dtype)
        self.axis = int(axis)
        self.epsilon = float(epsilon)

    def forward(self, x: Any) -> Any:
        ndim = len(x.shape)
        axis = self.axis % ndim
        channels = int(x.shape[axis])
        self._ready(channels)
        mean = ops.mean(x, axis, True)
        centered = ops.subtract(x, mean)
        var = ops.mean(ops.square(centered), axis, True)
        y = ops.divide(centered, ops.sqrt(ops.add(var, self.epsilon)))
        shape = tuple(channels if i == axis else 1 for i in range(ndim))
        return self._affine(y, shape)

    def _describe(self) -> str:
        return f"axis={self.axis}, eps={self.epsilon}"


class GroupNorm(_Affine):
    """Split the channels (axis 1) into ``num_groups`` groups and normalize each
    group of each sample over its channels and positions, then apply per-channel
    ``gamma``/``beta`` (PyTorch's ``group_norm`` layout).

    Arguments:
        num_groups: must divide the channel count.
        epsilon: added to the (biased) variance.
        center, scale: whether to have ``beta`` / ``gamma``.
        in_channels: the channel count; ``0`` infers it at the first forward.
    """

    def __init__(
        self,
        num_groups: int = 1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        in_channels: int = 0,
        dtype: str = "float32",
    ) -> None:
        super().__init__(in_channels, center, scale, dtype)
        if int(num_groups) < 1:
            raise ValueError(f"num_groups must be positive, got {num_groups!r}")
        self.num_groups = int(num_groups)
        self.epsilon = float(epsilon)

    def forward(self, x: Any) -> Any:
        shape = tuple(int(d) for d in x.shape)
        if len(shape) < 2 or shape[1] % self.num_groups:
            raise ValueError(
                f"GroupNorm({self.num_groups}) needs an input (N, C, ...) whose C is "
                f"a multiple of {self.num_groups}, got shape {shape}. Choose "
                "num_groups dividing the channel count."
            )
        channels = shape[1]
        self._ready(channels)
        grouped = ops.reshape(x, (shape[0], self.num_groups, -1))
        mean = ops.mean(grouped, 2, True)
        centered = ops.subtract(grouped, mean)
        var = ops.mean(ops.square(centered), 2, True)
        y = ops.divide(centered, ops.sqrt(ops.add(var, self.epsilon)))
        y = ops.reshape(y, shape)
        return self._affine(y, (1, channels) + (1,) * (len(shape) - 2))

    def _describe(self) -> str:
        return f"num_groups={self.num_groups}, eps={self.epsilon}"
