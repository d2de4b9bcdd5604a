"""Layers, one module per family, each written only in ``unified.ops``."""

from __future__ import annotations

from unified.layers.activations import Activation, ReLU, Sigmoid, Tanh
from unified.layers.dense import Dense

__all__ = ["Activation", "Dense", "ReLU", "Sigmoid", "Tanh"]
