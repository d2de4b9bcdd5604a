"""unified: neural-network code written once, run on NumPy, PyTorch, MXNet and JAX.

Importing this package imports no framework: a backend is imported when selected.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> U.seed(0)
    >>> net = U.Sequential(U.Dense(8, activation="relu"), U.Dense(2))
    >>> net.initialize()
    >>> U.to_numpy(net(np.ones((1, 4)))).shape
    (1, 2)
"""

from __future__ import annotations

from unified import callbacks, distributed, functional, init, losses, modes, ops, optim
from unified.autodiff import value_and_grad
from unified.backend import backends, current_backend, set_backend, use_backend
from unified.callbacks import EarlyStopping, ModelCheckpoint
from unified.checkpoint import load, port, save
from unified.data import asarray, to_numpy
from unified.errors import (
    BackendNotAvailableError,
    BackendPluginError,
    CheckpointError,
    DeferredInitializationError,
    DeviceNotAvailableError,
    FrozenParameterError,
    NothingToDifferentiateError,
    ParameterNotInitializedError,
    ShapeError,
    StructureError,
    UnifiedError,
)
from unified.init import seed
from unified.interop import (
    ConversionError,
    from_flax,
    from_gluon,
    from_torch,
    load_native,
)
from unified.layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    SELU,
    Activation,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GroupNorm,
    LayerNorm,
    LeakyReLU,
    LogSoftmax,
    MaxPool1D,
    MaxPool2D,
    MultiHeadAttention,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    SoftReLU,
    Swish,
    Tanh,
    TransformerEncoderLayer,
)
from unified.modes import training
from unified.nets import Net, Sequential
from unified.optim import SGD, Adam, AdamW, RMSProp, lr_groups
from unified.parameters import ParamDict, Parameter
from unified.placement import devices
from unified.plugins import BackendInfo, hookimpl
from unified.sharing import average, freeze, share, unfreeze
from unified.trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Adam",
    "AdamW",
    "AvgPool1D",
    "AvgPool2D",
    "BackendInfo",
    "BackendNotAvailableError",
    "BackendPluginError",
    "BatchNorm",
    "CheckpointError",
    "ConversionError",
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "DeferredInitializationError",
    "DeviceNotAvailableError",
    "EarlyStopping",
    "Dense",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "FrozenParameterError",
    "GELU",
    "GRU",
    "GroupNorm",
    "LSTM",
    "LayerNorm",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "LeakyReLU",
    "LogSoftmax",
    "MaxPool1D",
    "MaxPool2D",
    "ModelCheckpoint",
    "MultiHeadAttention",
    "Net",
    "NothingToDifferentiateError",
    "ParamDict",
    "Parameter",
    "ParameterNotInitializedError",
    "RMSProp",
    "RNN",
    "ReLU",
    "ReLU6",
    "SELU",
    "SGD",
    "Sequential",
    "ShapeError",
    "SiLU",
    "Sigmoid",
    "SoftReLU",
    "Softmax",
    "Softplus",
    "StructureError",
    "Swish",
    "Tanh",
    "Trainer",
    "TransformerEncoderLayer",
    "UnifiedError",
    "asarray",
    "average",
    "backends",
    "callbacks",
    "current_backend",
    "devices",
    "distributed",
    "freeze",
    "from_flax",
    "from_gluon",
    "from_torch",
    "functional",
    "hookimpl",
    "init",
    "load",
    "load_native",
    "losses",
    "lr_groups",
    "modes",
    "ops",
    "optim",
    "port",
    "save",
    "seed",
    "set_backend",
    "share",
    "to_numpy",
    "training",
    "unfreeze",
    "use_backend",
    "value_and_grad",
]
