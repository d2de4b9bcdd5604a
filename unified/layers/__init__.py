"""Layers, one module per family, each written only in ``unified.ops``."""

from __future__ import annotations

from unified.layers.activations import Activation, ReLU, Sigmoid, Tanh
from unified.layers.dense import Dense
from unified.layers.dropout import Dropout
from unified.layers.norm import BatchNorm, GroupNorm, LayerNorm

__all__ = [
    "Activation",
    "BatchNorm",
    "Dense",
    "Dropout",
    "GroupNorm",
    "LayerNorm",
    "ReLU",
    "Sigmoid",
    "Tanh",
]
