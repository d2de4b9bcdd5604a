"""The two CNNs of ``cnn_step.py``, written once per framework.

* ``lenet``: Conv2D 6@5x5 (pad 2) -> ReLU -> MaxPool 2 -> Conv2D 16@5x5 -> ReLU ->
  MaxPool 2 -> Flatten -> Dense 120 -> ReLU -> Dense 84 -> ReLU -> Dense 10.
* ``resnet``: stem Conv2D 16@3x3 (pad 1) + BatchNorm + ReLU; three stages (16, 32,
  64 channels; stride 2 in stages 2 and 3) of one residual block each: Conv3x3-BN-
  ReLU-Conv3x3-BN plus the shortcut (1x1 conv + BN where the shape changes), then
  ReLU; GlobalAvgPool, Flatten, Dense 10. Convolutions followed by BatchNorm have no
  bias.

Every version registers its parameters in the same order as the ``unified`` one
(BatchNorm: gamma/weight, beta/bias, running mean, running variance), so the
``unified`` initial weights are copied over in order (shapes are checked).
"""

from __future__ import annotations

from typing import Any

STAGES = ((16, 1), (32, 2), (64, 2))
"""(channels, stride) of the ResNet's residual blocks."""
EPS = 1e-5


# ----------------------------------------------------------------------------------
# unified
# ----------------------------------------------------------------------------------


def unified_net(model: str, unbiased_running_var: bool = True) -> Any:
    """The model written with unified layers, as a user would."""
    import unified as U
    from unified import ops

    if model == "lenet":
        return U.Sequential(
            U.Conv2D(6, kernel_size=5, padding=2, activation="relu"),
            U.MaxPool2D(2),
            U.Conv2D(16, kernel_size=5, activation="relu"),
            U.MaxPool2D(2),
            U.Flatten(),
            U.Dense(120, activation="relu"),
            U.Dense(84, activation="relu"),
            U.Dense(10),
        )

    def bn() -> Any:
        return U.BatchNorm(unbiased_running_var=unbiased_running_var)

    class Block(U.Net):
        def __init__(self, channels: int, strides: int, in_channels: int) -> None:
            super().__init__()
            self.conv1 = U.Conv2D(channels, 3, strides, padding=1, use_bias=False)
            self.bn1 = bn()
            self.conv2 = U.Conv2D(channels, 3, padding=1, use_bias=False)
            self.bn2 = bn()
            self.down: Any = None
            if strides != 1 or channels != in_channels:
                self.down = U.Conv2D(channels, 1, strides, use_bias=False)
                self.down_bn = bn()

        def forward(self, x: Any) -> Any:
            y = ops.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            shortcut = x if self.down is None else self.down_bn(self.down(x))
            return ops.relu(ops.add(y, shortcut))

    layers = [U.Conv2D(16, 3, padding=1, use_bias=False), bn(), U.ReLU()]
    in_channels = 16
    for channels, strides in STAGES:
        layers.append(Block(channels, strides, in_channels))
        in_channels = channels
    layers += [U.GlobalAvgPool2D(), U.Flatten(), U.Dense(10)]
    return U.Sequential(*layers)


# ----------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------


def torch_net(model: str) -> Any:
    """``torch.nn`` modules (BatchNorm ``momentum=0.1`` is unified's 0.9)."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    if model == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    class Block(nn.Module):
        def __init__(self, channels: int, stride: int, in_channels: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels, eps=EPS, momentum=0.1)
            self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels, eps=EPS, momentum=0.1)
            self.down: nn.Module | None = None
            if stride != 1 or channels != in_channels:
                self.down = nn.Conv2d(in_channels, channels, 1, stride, bias=False)
                self.down_bn = nn.BatchNorm2d(channels, eps=EPS, momentum=0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            shortcut = x if self.down is None else self.down_bn(self.down(x))
            return F.relu(y + shortcut)

    layers: list[nn.Module] = [
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16, eps=EPS, momentum=0.1),
        nn.ReLU(),
    ]
    in_channels = 16
    for channels, stride in STAGES:
        layers.append(Block(channels, stride, in_channels))
        in_channels = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def torch_slots(net: Any) -> list[Any]:
    """The tensors to copy the unified weights into, in unified's order."""
    return [t for k, t in net.state_dict().items() if "num_batches" not in k]


# ----------------------------------------------------------------------------------
# JAX (functional; parameters and running statistics keyed by unified's names)
# ----------------------------------------------------------------------------------


def jax_forward(model: str, params: dict[str, Any], state: dict[str, Any], x: Any):
    """``(logits, new_state)``; BatchNorm in training mode (batch statistics, the
    running ones blended with momentum 0.9, unbiased variance like unified/torch)."""
    import jax.numpy as jnp
    from jax import lax

    def conv(h: Any, name: str, stride: int, pad: int, bias: bool = True) -> Any:
        y = lax.conv_general_dilated(
            h,
            params[name + ".weight"],
            (stride, stride),
            [(pad, pad), (pad, pad)],
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            precision=lax.Precision.HIGHEST,
        )
        if bias:
            y = y + params[name + ".bias"][None, :, None, None]
        return y

    def dense(h: Any, name: str) -> Any:
        w, b = params[name + ".weight"], params[name + ".bias"]
        return jnp.matmul(h, w.T, precision=lax.Precision.HIGHEST) + b

    def maxpool(h: Any) -> Any:
        return lax.reduce_window(
            h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID"
        )

    relu = jnp.maximum
    if model == "lenet":
        h = maxpool(relu(conv(x, "0", 1, 2), 0.0))
        h = maxpool(relu(conv(h, "2", 1, 0), 0.0))
        h = h.reshape(h.shape[0], -1)
        h = relu(dense(h, "5"), 0.0)
        h = relu(dense(h, "6"), 0.0)
        return dense(h, "7"), state

    new_state = {}

    def bn(h: Any, name: str) -> Any:
        mean = jnp.mean(h, axis=(0, 2, 3))
        centered = h - mean[None, :, None, None]
        var = jnp.mean(jnp.square(centered), axis=(0, 2, 3))
        y = centered / jnp.sqrt(var + EPS)[None, :, None, None]
        y = y * params[name + ".gamma"][None, :, None, None]
        y = y + params[name + ".beta"][None, :, None, None]
        n = h.size // h.shape[1]
        rm, rv = name + ".running_mean", name + ".running_var"
        new_state[rm] = 0.9 * state[rm] + 0.1 * mean
        new_state[rv] = 0.9 * state[rv] + 0.1 * var * (n / (n - 1))
        return y

    h = relu(bn(conv(x, "0", 1, 1, False), "1"), 0.0)
    in_channels = 16
    for i, (channels, stride) in enumerate(STAGES):
        b = str(3 + i)
        y = relu(bn(conv(h, b + ".conv1", stride, 1, False), b + ".bn1"), 0.0)
        y = bn(conv(y, b + ".conv2", 1, 1, False), b + ".bn2")
        if stride != 1 or channels != in_channels:
            h = bn(conv(h, b + ".down", stride, 0, False), b + ".down_bn")
        h = relu(y + h, 0.0)
        in_channels = channels
    h = jnp.mean(h, axis=(2, 3))
    return dense(h, "8"), new_state


# ----------------------------------------------------------------------------------
# MXNet Gluon
# ----------------------------------------------------------------------------------


def gluon_net(model: str) -> Any:
    """A ``HybridSequential`` (hybridize it or not); BatchNorm momentum 0.9."""
    from mxnet.gluon import nn

    net = nn.HybridSequential()
    if model == "lenet":
        net.add(
            nn.Conv2D(6, 5, padding=2, activation="relu"),
            nn.MaxPool2D(2),
            nn.Conv2D(16, 5, activation="relu"),
            nn.MaxPool2D(2),
            nn.Flatten(),
            nn.Dense(120, activation="relu"),
            nn.Dense(84, activation="relu"),
            nn.Dense(10),
        )
        return net

    class Block(nn.HybridBlock):
        def __init__(self, channels: int, strides: int, in_channels: int) -> None:
            super().__init__()
            with self.name_scope():
                self.conv1 = nn.Conv2D(channels, 3, strides, 1, use_bias=False)
                self.bn1 = nn.BatchNorm(momentum=0.9, epsilon=EPS)
                self.conv2 = nn.Conv2D(channels, 3, 1, 1, use_bias=False)
                self.bn2 = nn.BatchNorm(momentum=0.9, epsilon=EPS)
                self.down = None
                if strides != 1 or channels != in_channels:
                    self.down = nn.Conv2D(channels, 1, strides, use_bias=False)
                    self.down_bn = nn.BatchNorm(momentum=0.9, epsilon=EPS)

        def hybrid_forward(self, F: Any, x: Any) -> Any:  # noqa: N803
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            shortcut = x if self.down is None else self.down_bn(self.down(x))
            return F.relu(y + shortcut)

    net.add(
        nn.Conv2D(16, 3, padding=1, use_bias=False),
        nn.BatchNorm(momentum=0.9, epsilon=EPS),
        nn.Activation("relu"),
    )
    in_channels = 16
    for channels, strides in STAGES:
        net.add(Block(channels, strides, in_channels))
        in_channels = channels
    net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(10))
    return net
