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
from unified.layers.attention import MultiHeadAttention, TransformerEncoderLayer
from unified.layers.conv import Conv1D, Conv2D, Conv2DTranspose
from unified.layers.dense import Dense
from unified.layers.dropout import Dropout
from unified.layers.embedding import Embedding
from unified.layers.norm import BatchNorm, GroupNorm, LayerNorm
from unified.layers.pooling import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    MaxPool1D,
    MaxPool2D,
)
from unified.layers.recurrent import GRU, LSTM, RNN
from unified.layers.shape import Flatten

__all__ = [
    "ELU",
    "GELU",
    "GRU",
    "SELU",
    "Activation",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm",
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GroupNorm",
    "LSTM",
    "LayerNorm",
    "LeakyReLU",
    "LogSoftmax",
    "MaxPool1D",
    "MaxPool2D",
    "MultiHeadAttention",
    "RNN",
    "ReLU",
    "ReLU6",
    "SiLU",
    "Sigmoid",
    "SoftReLU",
    "Softmax",
    "Softplus",
    "Swish",
    "Tanh",
    "TransformerEncoderLayer",
]
