"""Selection, comparison, shape and indexing hooks of the PyTorch backend.

Each hook is a direct torch call; the few adaptations to the contract:

* ``where``: a condition that is not ``bool`` (a 0/1 float mask) is compared with 0;
  a Python scalar operand is passed as a wrapped number, so float32 stays float32.
* ``clip``: ``torch.clamp``, whose gradient is 1 on the closed interval.
* ``split``: ``torch.tensor_split`` at ``numpy.split``'s cut points (an ``int``
  that does not divide the axis is rejected, as NumPy does).
* ``pad``: ``torch.nn.functional.pad`` (its pad list runs from the last axis).
* ``take``: ``index_select`` on the flattened indices, reshaped to NumPy's result
  shape; its backward is ``index_add``, so repeated indices add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from unified import hookimpl
from unified.hookspecs import Array


def _operand(x: Any) -> Any:
    """Pass tensors and Python scalars through; wrap anything else (NumPy)."""
    if isinstance(x, torch.Tensor | int | float):
        return x
    return torch.as_tensor(x)


@hookimpl
def where(cond: Array, a: Array, b: Array) -> Array:
    cond = torch.as_tensor(cond)
    if cond.dtype is not torch.bool:
        cond = cond != 0
    return torch.where(cond, _operand(a), _operand(b))


def _compare(op: Any, a: Any, b: Any) -> Array:
    if isinstance(a, torch.Tensor):
        return op(a, _operand(b))
    if isinstance(b, torch.Tensor):
        return op(torch.as_tensor(a, dtype=b.dtype, device=b.device), b)
    return op(torch.as_tensor(a), torch.as_tensor(b))


@hookimpl
def greater(a: Array, b: Array) -> Array:
    return _compare(torch.gt, a, b)


@hookimpl
def less(a: Array, b: Array) -> Array:
    return _compare(torch.lt, a, b)


@hookimpl
def equal(a: Array, b: Array) -> Array:
    return _compare(torch.eq, a, b)


@hookimpl
def clip(x: Array, lo: float | None, hi: float | None) -> Array:
    # clamp's backward passes the gradient where lo <= x <= hi (bounds included).
    return torch.clamp(x, lo, hi)


@hookimpl
def erf(x: Array) -> Array:
    return torch.erf(x)


@hookimpl
def concatenate(arrays: Sequence[Array], axis: int) -> Array:
    return torch.cat(list(arrays), axis)


@hookimpl
def stack(arrays: Sequence[Array], axis: int) -> Array:
    return torch.stack(list(arrays), axis)


@hookimpl
def split(x: Array, sections: int | Sequence[int], axis: int) -> list[Array]:
    if isinstance(sections, int):
        n = x.shape[axis]
        if sections <= 0 or n % sections:
            raise ValueError(
                f"split: {sections} sections do not divide an axis of length {n}"
            )
        return list(torch.tensor_split(x, sections, axis))
    return list(torch.tensor_split(x, [int(i) for i in sections], axis))


@hookimpl
def pad(x: Array, pad_width: Sequence[tuple[int, int]], value: float = 0.0) -> Array:
    flat: list[int] = []
    for before, after in reversed(list(pad_width)):
        flat += [int(before), int(after)]
    return F.pad(x, flat, mode="constant", value=value)


@hookimpl
def take(x: Array, indices: Array, axis: int = 0) -> Array:
    idx = torch.as_tensor(indices)
    if idx.dtype is not torch.int64:
        idx = idx.long()
    axis %= x.ndim
    out = torch.index_select(x, axis, idx.reshape(-1))
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1 :]
    return out.reshape(shape)


@hookimpl
def argmax(x: Array, axis: int) -> Array:
    # torch returns the first maximal index, int64.
    return torch.argmax(x, axis)


@hookimpl
def slice_axis(x: Array, axis: int, begin: int, end: int | None) -> Array:
    axis %= x.ndim
    start, stop, _ = slice(begin, end).indices(x.shape[axis])
    return torch.narrow(x, axis, start, max(stop - start, 0))
