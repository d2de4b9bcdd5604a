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
from unified.layers.dropout import Dropout
from unified.layers.norm import BatchNorm, GroupNorm, LayerNorm

__all__ = [
    "Activation",
    "BatchNorm",
    "Dense",
    "Dropout",
    "ELU",
    "GELU",
    "GroupNorm",
    "LayerNorm",
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
