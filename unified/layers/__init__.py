"""Layers, one module per family, each written only in ``unified.ops``."""

from __future__ import annotations

from unified.layers.activations import (
    ELU,
    GELU,
    SELU,
    Activation,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    SoftReLU,
    Swish,
    Tanh,
)
from unified.layers.dense import Dense

__all__ = [
    "Activation",
    "Dense",
    "ELU",
    "GELU",
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "ReLU6",
    "SELU",
    "SiLU",
    "Sigmoid",
    "SoftReLU",
    "Softmax",
    "Softplus",
    "Swish",
    "Tanh",
]
