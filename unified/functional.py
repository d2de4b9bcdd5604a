"""Activation functions, written once as compositions of :mod:`unified.ops`.

Each function works on every backend and inside ``value_and_grad`` (the gradient is
that of the composition). Defaults follow SPEC 13: ``leaky_relu`` alpha 0.01,
``elu`` alpha 1.0, ``gelu`` the erf form, ``softmax``/``log_softmax`` over the last
axis.

Gradients at the kinks (a single point each): ``relu``, ``leaky_relu`` and ``elu``
take the left side at 0 (0, ``alpha``, ``alpha``), as PyTorch does; ``relu6`` and
``hard_tanh`` pass no gradient at either bound (PyTorch's ``hardtanh`` rule), while
:func:`clip` passes it on the closed interval (``torch.clamp``'s rule).

Attention: :func:`scaled_dot_product_attention` (PyTorch's
``torch.nn.functional.scaled_dot_product_attention`` semantics) and
:func:`attention_weights`, compositions of ``matmul``, ``softmax`` and ``where``
(no hook: a backend offers nothing special for them yet).

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> from unified import functional as F
    >>> U.to_numpy(F.leaky_relu(np.array([-1.0, 2.0], "float32"), 0.1)).tolist()
    [-0.10000000149011612, 2.0]
    >>> q = np.ones((2, 3, 4), "float32")      # (batch, L, E)
    >>> v = np.arange(24, dtype="float32").reshape(2, 3, 4)
    >>> y = F.scaled_dot_product_attention(q, q, v, is_causal=True)
    >>> U.to_numpy(y)[0, 0].tolist()            # the first query sees only key 0
    [0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unified import init as _init
from unified import modes, ops
from unified.data import asarray, dtype_name

__all__ = [
    "attention_weights",
    "clip",
    "elu",
    "gelu",
    "hard_tanh",
    "leaky_relu",
    "log_softmax",
    "relu",
    "relu6",
    "scaled_dot_product_attention",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "softrelu",
    "swish",
    "tanh",
]

SELU_ALPHA = 1.6732632423543772848170429916717
"""``alpha`` of SELU (Klambauer et al., 2017)."""
SELU_SCALE = 1.0507009873554804934193349852946
"""``scale`` (lambda) of SELU."""

_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def relu(x: Any) -> Any:
    """``max(x, 0)``; gradient 0 at 0 (the ``relu`` hook)."""
    return ops.relu(x)


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` (the ``sigmoid`` hook)."""
    return ops.sigmoid(x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent (the ``tanh`` hook)."""
    return ops.tanh(x)


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x), axis)``, stable (the ``softmax`` hook)."""
    return ops.softmax(x, axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - log(sum(exp(x), axis))``, stable (the ``log_softmax`` hook)."""
    return ops.log_softmax(x, axis)


def leaky_relu(x: Any, alpha: float = 0.01) -> Any:
    """``x if x > 0 else alpha * x``; gradient ``alpha`` at 0 (as PyTorch)."""
    return ops.where(ops.greater(x, 0.0), x, ops.multiply(x, alpha))


def _expm1_nonpositive(x: Any) -> Any:
    """``exp(x) - 1`` for ``x <= 0``, accurate near 0: ``2t / (1 - t)``, ``t =
    tanh(x / 2)`` (no cancellation; ``1 - t`` is in ``[1, 2]``)."""
    t = ops.tanh(ops.multiply(x, 0.5))
    return ops.divide(ops.multiply(t, 2.0), ops.subtract(1.0, t))


def elu(x: Any, alpha: float = 1.0) -> Any:
    """``x if x > 0 else alpha * (exp(x) - 1)``; gradient ``alpha`` at 0.

    The exponential only ever sees ``min(x, 0)`` (selected with ``where``, so the
    gradient of large positive inputs never meets an overflow).
    """
    positive = ops.greater(x, 0.0)
    negative = ops.where(positive, 0.0, x)
    return ops.where(positive, x, ops.multiply(_expm1_nonpositive(negative), alpha))


def selu(x: Any) -> Any:
    """``scale * elu(x, alpha)`` with SELU's constants :data:`SELU_SCALE` and
    :data:`SELU_ALPHA`."""
    return ops.multiply(elu(x, SELU_ALPHA), SELU_SCALE)


def gelu(x: Any, approximate: str = "none") -> Any:
    """Gaussian error linear unit.

    ``approximate="none"`` (default): ``0.5 * x * (1 + erf(x / sqrt(2)))``;
    ``approximate="tanh"``: ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 *
    x**3)))``, PyTorch's and Gluon's ``gelu_tanh`` approximation.
    """
    if approximate == "none":
        inner = ops.erf(ops.multiply(x, _SQRT_HALF))
    elif approximate == "tanh":
        cube = ops.multiply(ops.multiply(x, x), x)
        poly = ops.add(x, ops.multiply(cube, 0.044715))
        inner = ops.tanh(ops.multiply(poly, _SQRT_2_OVER_PI))
    else:
        raise ValueError(
            f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}"
        )
    return ops.multiply(ops.multiply(x, 0.5), ops.add(inner, 1.0))


def softplus(x: Any) -> Any:
    """``log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))`` (no
    overflow). ``maximum`` (not ``relu``) splits its gradient at 0, so the
    gradient there is the exact ``sigmoid(0) = 0.5``. Gluon calls it softrelu."""
    return ops.add(ops.maximum(x, 0.0), ops.log1p(ops.exp(ops.negative(ops.abs(x)))))


softrelu = softplus


def silu(x: Any) -> Any:
    """``x * sigmoid(x)`` (also called swish)."""
    return ops.multiply(x, ops.sigmoid(x))


swish = silu


def clip(x: Any, lo: float | None, hi: float | None) -> Any:
    """``min(max(x, lo), hi)``; gradient 1 on the closed interval (the ``clip``
    hook)."""
    return ops.clip(x, lo, hi)


def hard_tanh(x: Any, lo: float = -1.0, hi: float = 1.0) -> Any:
    """``lo if x <= lo, hi if x >= hi, else x``; gradient 1 only strictly inside
    (PyTorch's ``hardtanh`` rule)."""
    inner = ops.where(ops.less(x, hi), x, hi)
    return ops.where(ops.greater(x, lo), inner, lo)


def relu6(x: Any) -> Any:
    """``min(max(x, 0), 6)``: ``hard_tanh(x, 0, 6)``; gradient 0 at 0 and at 6."""
    return hard_tanh(x, 0.0, 6.0)


# -- attention ----------------------------------------------------------------------
_NEG_INF = float("-inf")
_sdpa_calls = (-1, 0)
"""``(seed epoch, count)`` of the calls of :func:`scaled_dot_product_attention` that
drew a dropout mask since :func:`unified.seed`."""


def _native(x: Any) -> Any:
    """Host data (NumPy, lists) as a native array (SPEC 10); native arrays pass."""
    from unified.backend import current_backend

    if isinstance(x, np.ndarray) or not current_backend().is_array(x):
        return asarray(x)
    return x


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def attention_weights(
    query: Any,
    key: Any,
    attn_mask: Any = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> Any:
    """``softmax(query @ key^T * scale + mask)`` over the keys: the attention
    weights of :func:`scaled_dot_product_attention` (before dropout).

    :param query: ``(..., L, E)``.
    :param key: ``(..., S, E)``; the leading axes broadcast with ``query``'s.
    :param attn_mask: ``None``, a boolean mask broadcastable to ``(..., L, S)``
        where ``True`` means the key *takes part* (PyTorch's
        ``scaled_dot_product_attention`` convention; ``nn.MultiheadAttention``'s is
        the opposite), or a float mask added to the scores (``-inf`` excludes).
    :param is_causal: mask key ``j > i`` for query ``i`` (the lower-triangular
        ``(L, S)`` mask aligned at the top left, as PyTorch); not together with
        ``attn_mask``.
    :param scale: the factor of the scores, ``1 / sqrt(E)`` when ``None``.
    :returns: ``(..., L, S)`` weights, each row summing to 1. A row whose every key
        is masked gets weights 0 (so a zero output), as recent PyTorch's
        ``scaled_dot_product_attention`` does; no NaN reaches the values or the
        gradients.
    """
    query, key = _native(query), _native(key)
    qs, ks = _shape(query), _shape(key)
    if len(qs) < 2 or len(ks) < 2 or qs[-1] != ks[-1]:
        raise ValueError(
            f"attention: query (..., L, E) and key (..., S, E) must have >= 2 axes "
            f"and the same E, got shapes {qs} and {ks}"
        )
    if is_causal and attn_mask is not None:
        raise ValueError(
            "attention: give either attn_mask or is_causal=True, not both (as "
            "PyTorch); fold the causal mask into attn_mask instead."
        )
    axes = tuple(range(len(ks) - 2)) + (len(ks) - 1, len(ks) - 2)
    factor = 1.0 / math.sqrt(qs[-1]) if scale is None else float(scale)
    scores = ops.multiply(ops.matmul(query, ops.transpose(key, axes)), factor)
    if is_causal:
        from unified.backend import current_backend

        causal = np.tril(np.ones((qs[-2], ks[-2]), dtype=bool))
        scores = ops.where(current_backend().asarray(causal, "bool"), scores, _NEG_INF)
        return ops.softmax(scores, -1)  # row i always keeps key 0: no empty rows
    if attn_mask is None:
        return ops.softmax(scores, -1)
    mask = _native(attn_mask)
    kind = dtype_name(getattr(mask, "dtype", None))
    if kind == "bool":
        scores = ops.where(mask, scores, _NEG_INF)
    else:
        wanted = dtype_name(getattr(scores, "dtype", None)) or "float32"
        if kind != wanted:
            from unified.backend import current_backend

            mask = current_backend().astype(mask, wanted)
        scores = ops.add(scores, mask)
    # A row whose every score is -inf: softmax of zeros instead (no NaN), then 0.
    live = ops.greater(ops.max(scores, -1, True), _NEG_INF)
    weights = ops.softmax(ops.where(live, scores, 0.0), -1)
    return ops.where(live, weights, 0.0)


def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Any:
    """Attention ``attention_weights(query, key, ...) @ value``, PyTorch's
    ``torch.nn.functional.scaled_dot_product_attention``.

    :param query: ``(..., L, E)``, e.g. ``(N, heads, L, E)``.
    :param key: ``(..., S, E)``.
    :param value: ``(..., S, Ev)``.
    :param attn_mask: boolean (``True`` = the key takes part) or float (added to
        the scores), broadcastable to ``(..., L, S)``; see :func:`attention_weights`.
    :param dropout_p: drop probability of the weights, applied whenever it is > 0
        (as PyTorch: pass ``0.0`` in inference). The mask is drawn on the host from
        ``Philox(SeedSequence([seed, 1, crc32("scaled_dot_product_attention"),
        call]))``, ``call`` counting the calls with ``dropout_p > 0`` since
        :func:`unified.seed`, so it is identical on every backend; inside a
        compiled function it would be fixed at trace time, so trained nets use
        :class:`unified.MultiHeadAttention` (a ``Dropout`` child) instead.
    :param is_causal: the causal mask (see :func:`attention_weights`).
    :param scale: the factor of the scores, ``1 / sqrt(E)`` when ``None``.
    :returns: ``(..., L, Ev)``.
    """
    global _sdpa_calls
    if not 0.0 <= float(dropout_p) < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    weights = attention_weights(query, key, attn_mask, is_causal, scale)
    if dropout_p > 0.0:
        from unified.backend import current_backend

        epoch, count = _sdpa_calls
        if epoch != _init.seed_calls():
            count = 0
        _sdpa_calls = (_init.seed_calls(), count + 1)
        dtype = dtype_name(getattr(weights, "dtype", None)) or "float32"
        generator = modes.host_generator("scaled_dot_product_attention", count)
        mask = modes.host_mask(generator, _shape(weights), float(dropout_p), dtype)
        weights = ops.multiply(weights, current_backend().asarray(mask, dtype))
    return ops.matmul(weights, _native(value))
