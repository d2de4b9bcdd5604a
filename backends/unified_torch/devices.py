"""Devices of the PyTorch backend: ``"cpu"`` and one ``"cuda:i"`` per visible GPU.

``to_device`` is ``Tensor.to(device)`` (a no-op returning the tensor itself when it
is already there); host data goes through ``torch.as_tensor(..., device=...)``, one
copy straight to the device. The CPU is the default device, as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unified import hookimpl
from unified.hookspecs import Array

_DEVICES: dict[str, torch.device] = {}


def _native(name: str) -> torch.device:
    found = _DEVICES.get(name)
    if found is None:
        found = _DEVICES[name] = torch.device(name)
    return found


@hookimpl
def devices() -> list[str]:
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


@hookimpl
def to_device(x: Any, device: str) -> Array:
    target = _native(device)
    if isinstance(x, np.ndarray):
        if not (x.flags.c_contiguous and x.flags.writeable):
            x = np.array(x, order="C", copy=True)
        return torch.as_tensor(x, device=target)
    return x.to(target)


@hookimpl
def device_of(x: Array) -> str:
    device = x.device
    return "cpu" if device.type == "cpu" else f"{device.type}:{device.index or 0}"
