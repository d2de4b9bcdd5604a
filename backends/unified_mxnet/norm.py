"""The optional ``batch_norm`` and ``batch_norm_inference`` hooks of the MXNet
backend: the fused ``BatchNorm`` operator.

``batch_norm_inference`` is one call with ``use_global_stats=True`` and
``fix_gamma=False``; it normalizes with the given statistics in either autograd mode,
differentiates into ``x``, ``gamma`` and ``beta``, and leaves the statistics
unwritten (checked on 1.9.1, recording in training and in predict mode). The rest of
this docstring is about ``batch_norm``.

``batch_norm`` is one ``mx.nd.BatchNorm`` call (the operator behind Gluon's
``nn.BatchNorm``) with ``fix_gamma=False``, ``use_global_stats=False`` and
``output_mean_var=True``, run in MXNet's training mode (the operator normalizes with
its moving statistics otherwise). MXNet 1.9 facts this relies on, checked on 1.9.1
(CPU, oneDNN and not):

* the second output is the batch mean, but the third is the *inverse standard
  deviation* ``1 / sqrt(var + eps)``, not the variance: the biased variance is
  recovered as ``invstd**-2 - eps`` (outside the recorded graph; a relative error
  of a few float32 ulps of ``var + eps``);
* the moving-statistic inputs are updated in the *backward* pass, not the forward
  (so they cannot serve to read the batch statistics); the ones passed here are
  scratch buffers shared per ``(channels, dtype, context)``, never read.

A missing ``gamma``/``beta`` is a shared constant ones/zeros vector.
"""

from __future__ import annotations

from typing import Any

import mxnet as mx

from unified import hookimpl
from unified_mxnet import _np_on, _np_restore

Array = Any
_nd = mx.nd
_SCRATCH: dict[tuple[int, str, str], tuple[Array, Array, Array, Array]] = {}


def _scratch(channels: int, x: Array) -> tuple[Array, Array, Array, Array]:
    """``(ones, zeros, moving_mean, moving_var)`` vectors of ``x``'s dtype/context."""
    key = (channels, str(x.dtype), str(x.context))
    hit = _SCRATCH.get(key)
    if hit is None:
        make = {"dtype": x.dtype, "ctx": x.context}
        hit = (
            _nd.ones((channels,), **make),
            _nd.zeros((channels,), **make),
            _nd.zeros((channels,), **make),
            _nd.ones((channels,), **make),
        )
        _SCRATCH[key] = hit
    return hit


@hookimpl
def batch_norm(
    x: Array, gamma: Array | None, beta: Array | None, axis: int, eps: float
) -> tuple[Array, Array, Array]:
    prev = _np_on()
    was_training = mx.autograd.is_training()
    if not was_training:
        mx.autograd.set_training(True)
    try:
        ones, zeros, moving_mean, moving_var = _scratch(int(x.shape[axis]), x)
        y, mean, invstd = _nd.BatchNorm(
            x,
            ones if gamma is None else gamma,
            zeros if beta is None else beta,
            moving_mean,
            moving_var,
            eps=eps,
            momentum=0.9,
            fix_gamma=False,
            use_global_stats=False,
            output_mean_var=True,
            axis=axis,
        )
        with mx.autograd.pause():
            var = 1.0 / (invstd * invstd) - eps
            mean = mean.detach()
        return y, mean, var
    finally:
        if not was_training:
            mx.autograd.set_training(False)
        _np_restore(prev)


@hookimpl
def batch_norm_inference(
    x: Array,
    mean: Array,
    var: Array,
    gamma: Array | None,
    beta: Array | None,
    axis: int,
    eps: float,
) -> Array:
    """One ``nd.BatchNorm`` call with ``use_global_stats=True`` (Gluon's inference
    path): ``fix_gamma=False`` (MXNet's default would ignore ``gamma``)."""
    prev = _np_on()
    try:
        ones, zeros, _, _ = _scratch(int(x.shape[axis]), x)
        return _nd.BatchNorm(
            x,
            ones if gamma is None else gamma,
            zeros if beta is None else beta,
            mean,
            var,
            eps=eps,
            fix_gamma=False,
            use_global_stats=True,
            axis=axis,
        )
    finally:
        _np_restore(prev)
