"""Attention layers: ``MultiHeadAttention`` and ``TransformerEncoderLayer`` (SPEC 13).

Written only in ``unified.ops`` and :mod:`unified.functional`, with PyTorch's
structure and parameter names, so a ``torch.nn.MultiheadAttention`` or
``torch.nn.TransformerEncoderLayer`` ``state_dict`` maps onto them name for name
(LayerNorm's ``weight``/``bias`` are ``gamma``/``beta`` here).

Layouts: ``layout="TNC"`` (the default, PyTorch's ``batch_first=False``) takes
``(L, N, E)`` sequences, ``"NTC"`` takes ``(N, L, E)``.

Masks follow ``torch.nn.MultiheadAttention``: a boolean ``key_padding_mask``
``(N, S)`` or ``attn_mask`` ``(L, S)`` / ``(N * num_heads, L, S)`` marks with
``True`` the keys a query must *not* attend to; a float mask is added to the
scores. (``unified.functional.scaled_dot_product_attention`` takes the opposite
boolean convention, PyTorch's ``F.scaled_dot_product_attention``'s: ``True`` =
take part.) A query whose every key is masked gets a zero output (PyTorch's
module gives NaN there).

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> mha = U.MultiHeadAttention(8, 2)
    >>> mha.initialize()
    >>> list(mha.params())
    ['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']
    >>> x = np.ones((4, 2, 8), "float32")                # (L, N, E)
    >>> out, weights = mha(x, need_weights=True)
    >>> U.to_numpy(out).shape, U.to_numpy(weights).shape  # weights (N, L, S)
    ((4, 2, 8), (2, 4, 4))
    >>> layer = U.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    >>> layer.initialize()
    >>> U.to_numpy(layer(x)).shape
    (4, 2, 8)
"""

from __future__ import annotations

from typing import Any

from unified import functional as F
from unified import ops
from unified.data import dtype_name
from unified.errors import ShapeError
from unified.init import Initializer
from unified.layers.activations import activation_fn, check_activation
from unified.layers.dense import Dense
from unified.layers.dropout import Dropout
from unified.layers.norm import LayerNorm
from unified.nets import Net
from unified.parameters import Parameter
from unified.validation import number, one_of, positive_int

__all__ = ["MultiHeadAttention", "TransformerEncoderLayer"]

LAYOUTS = ("TNC", "NTC")
"""The sequence layouts: ``(L, N, E)`` (default) and ``(N, L, E)``."""


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


class MultiHeadAttention(Net):
    """Multi-head attention with PyTorch's ``nn.MultiheadAttention`` parameters.

    ``out_proj(concat_h softmax(q_h k_h^T / sqrt(head_dim) + mask) v_h)``, where
    ``q``, ``k``, ``v`` are the in-projections of query, key and value split into
    ``num_heads`` heads of ``head_dim = embed_dim // num_heads``.

    Arguments:
        embed_dim: the model size ``E`` (of the query and the output).
        num_heads: the number of heads; must divide ``embed_dim``.
        dropout: drop probability of the attention weights in training mode (a
            :class:`~unified.Dropout` child named ``dropout``, host masks of SPEC
            12).
        bias: whether the in- and out-projections have biases.
        kdim, vdim: the key and value sizes (``embed_dim`` when ``None``).
        layout: ``"TNC"`` (``(L, N, E)``, default) or ``"NTC"`` (``(N, L, E)``).
        weight_initializer: the projections' weight initializer (``None``: the one
            passed to ``initialize``; PyTorch uses Xavier-uniform on
            ``in_proj_weight``); biases start at zero, as in PyTorch.
        dtype: the parameters' dtype.

    Parameters: ``in_proj_weight (3E, E)`` when ``kdim == vdim == embed_dim``
    (rows ``[0:E]`` project the query, ``[E:2E]`` the key, ``[2E:3E]`` the value),
    else ``q_proj_weight (E, E)``, ``k_proj_weight (E, kdim)``, ``v_proj_weight
    (E, vdim)``; ``in_proj_bias (3E,)``; ``out_proj.weight (E, E)``,
    ``out_proj.bias (E,)``: the keys and order of PyTorch's ``state_dict``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        layout: str = "TNC",
        weight_initializer: Initializer | str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        owner = "MultiHeadAttention"
        e = positive_int(embed_dim, "embed_dim", owner)
        h = positive_int(num_heads, "num_heads", owner)
        if e % h:
            raise ValueError(
                f"{owner}: embed_dim ({e}) must be divisible by num_heads ({h}); "
                "choose num_heads dividing embed_dim."
            )
        self.embed_dim, self.num_heads, self.head_dim = e, h, e // h
        self.kdim = e if kdim is None else positive_int(kdim, "kdim", owner)
        self.vdim = e if vdim is None else positive_int(vdim, "vdim", owner)
        self.layout = one_of(layout, LAYOUTS, "layout", owner)
        rate = number(dropout, "dropout", owner, 0.0, 1.0, high_open=True)
        self.packed = self.kdim == e and self.vdim == e
        init = weight_initializer
        self.in_proj_weight: Parameter | None = None
        self.q_proj_weight: Parameter | None = None
        self.k_proj_weight: Parameter | None = None
        self.v_proj_weight: Parameter | None = None
        if self.packed:
            self.in_proj_weight = Parameter("in_proj_weight", (3 * e, e), dtype, init)
        else:
            self.q_proj_weight = Parameter("q_proj_weight", (e, e), dtype, init)
            self.k_proj_weight = Parameter("k_proj_weight", (e, self.kdim), dtype, init)
            self.v_proj_weight = Parameter("v_proj_weight", (e, self.vdim), dtype, init)
        self.in_proj_bias: Parameter | None = (
            Parameter("in_proj_bias", (3 * e,), dtype, "zeros") if bias else None
        )
        self.out_proj = Dense(
            e, in_units=e, use_bias=bool(bias), weight_initializer=init, dtype=dtype
        )
        self.dropout = Dropout(rate, dtype=dtype)
        self.dtype = dtype

    # -- forward ----------------------------------------------------------------------
    def forward(
        self,
        query: Any,
        key: Any = None,
        value: Any = None,
        key_padding_mask: Any = None,
        attn_mask: Any = None,
        need_weights: bool = False,
        average_attn_weights: bool = True,
    ) -> Any:
        """Attend from ``query`` to ``key``/``value``.

        :param query: ``(L, N, E)`` (``"NTC"``: ``(N, L, E)``).
        :param key: ``(S, N, kdim)``; ``None``: ``query`` (self-attention).
        :param value: ``(S, N, vdim)``; ``None``: ``key``.
        :param key_padding_mask: ``(N, S)``; boolean ``True`` = ignore that key,
            or float, added to the scores.
        :param attn_mask: ``(L, S)`` or ``(N * num_heads, L, S)``; boolean ``True``
            = not allowed, or float, added to the scores.
        :param need_weights: also return the attention weights (after dropout).
        :param average_attn_weights: average the returned weights over the heads
            (``(N, L, S)``), else ``(N, num_heads, L, S)``.
        :returns: the output, ``(L, N, E)`` (``"NTC"``: ``(N, L, E)``), or
            ``(output, weights)`` when ``need_weights``.
        """
        key = query if key is None else key
        value = key if value is None else value
        fused = key is query and value is query
        q_in, k_in, v_in = (self._batch_first(x) for x in (query, key, value))
        n, lq, sk = self._check(q_in, k_in, v_in)
        q, k, v = self._project(q_in, k_in, v_in, fused)
        h, d = self.num_heads, self.head_dim
        q, k, v = (
            ops.transpose(ops.reshape(t, (n, t_len, h, d)), (0, 2, 1, 3))
            for t, t_len in ((q, lq), (k, sk), (v, sk))
        )
        mask = self._mask(key_padding_mask, attn_mask, n, lq, sk)
        weights = F.attention_weights(q, k, mask)  # (N, H, L, S)
        weights = self.dropout(weights)
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        out = self.out_proj(ops.reshape(out, (n, lq, self.embed_dim)))
        if self.layout == "TNC":
            out = ops.transpose(out, (1, 0, 2))
        if not need_weights:
            return out
        if average_attn_weights:
            weights = ops.mean(weights, 1, False)
        return out, weights

    def _batch_first(self, x: Any) -> Any:
        if len(x.shape) != 3:
            raise ShapeError(
                f"MultiHeadAttention (layout {self.layout!r}) takes 3-d sequences "
                f"{'(L, N, E)' if self.layout == 'TNC' else '(N, L, E)'}, got shape "
                f"{_shape(x)}. Add a batch axis of 1 to a single sequence."
            )
        return ops.transpose(x, (1, 0, 2)) if self.layout == "TNC" else x

    def _check(self, q: Any, k: Any, v: Any) -> tuple[int, int, int]:
        """``(N, L, S)``, or a ShapeError naming the inputs and the expected sizes."""
        (n, lq, eq), (nk, sk, ek), (nv, sv, ev) = _shape(q), _shape(k), _shape(v)
        if (
            (eq, ek, ev) != (self.embed_dim, self.kdim, self.vdim)
            or n != nk
            or n != nv
            or sk != sv
        ):
            raise ShapeError(
                f"MultiHeadAttention(embed_dim={self.embed_dim}, kdim={self.kdim}, "
                f"vdim={self.vdim}): got query/key/value of batch-first shapes "
                f"{(n, lq, eq)}, {(nk, sk, ek)}, {(nv, sv, ev)}; expected (N, L, "
                f"{self.embed_dim}), (N, S, {self.kdim}), (N, S, {self.vdim}) "
                f"(layout {self.layout!r} puts the batch on axis "
                f"{1 if self.layout == 'TNC' else 0})."
            )
        return n, lq, sk

    def _project(self, q: Any, k: Any, v: Any, fused: bool) -> tuple[Any, Any, Any]:
        """The in-projections ``x @ W_i^T + b_i``."""
        bias = None if self.in_proj_bias is None else self.in_proj_bias.data()
        biases = [None] * 3 if bias is None else ops.split(bias, 3, 0)
        if self.in_proj_weight is not None:
            weight = self.in_proj_weight.data()
            if fused:  # self-attention: one product with the packed weight
                qkv = ops.linear(q, weight, bias)
                parts = ops.split(qkv, 3, 2)
                return parts[0], parts[1], parts[2]
            weights = ops.split(weight, 3, 0)
        else:
            weights = [
                p.data()
                for p in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
                if p is not None
            ]
        return (
            ops.linear(q, weights[0], biases[0]),
            ops.linear(k, weights[1], biases[1]),
            ops.linear(v, weights[2], biases[2]),
        )

    def _mask(
        self, key_padding_mask: Any, attn_mask: Any, n: int, lq: int, sk: int
    ) -> Any:
        """Both masks as one float mask added to the ``(N, H, L, S)`` scores."""
        h = self.num_heads
        total = None
        if key_padding_mask is not None:
            if _shape(key_padding_mask) != (n, sk):
                raise ShapeError(
                    f"MultiHeadAttention: key_padding_mask must be (N, S) = "
                    f"{(n, sk)}, got {_shape(key_padding_mask)}"
                )
            total = ops.reshape(self._additive(key_padding_mask), (n, 1, 1, sk))
        if attn_mask is not None:
            shape = _shape(attn_mask)
            if shape == (lq, sk):
                extra = self._additive(attn_mask)
            elif shape == (n * h, lq, sk):
                extra = ops.reshape(self._additive(attn_mask), (n, h, lq, sk))
            else:
                raise ShapeError(
                    f"MultiHeadAttention: attn_mask must be (L, S) = {(lq, sk)} or "
                    f"(N * num_heads, L, S) = {(n * h, lq, sk)}, got {shape}"
                )
            total = extra if total is None else ops.add(total, extra)
        return total

    def _additive(self, mask: Any) -> Any:
        """A boolean mask (``True`` = not allowed) as ``-inf``/0; a float one as is."""
        kind = dtype_name(getattr(mask, "dtype", None))
        if kind == "bool":
            return ops.where(mask, float("-inf"), ops.zeros(_shape(mask), self.dtype))
        if kind != self.dtype:
            return ops.astype(mask, self.dtype)
        return mask

    def _describe(self) -> str:
        dims = "" if self.packed else f", kdim={self.kdim}, vdim={self.vdim}"
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}{dims}, "
            f"dropout={self.dropout.rate}, layout={self.layout!r}"
        )


class TransformerEncoderLayer(Net):
    """One transformer encoder block with ``torch.nn.TransformerEncoderLayer``'s
    structure and parameter names.

    Post-norm (``norm_first=False``, PyTorch's default)::

        x = norm1(x + dropout1(self_attn(x)))
        x = norm2(x + dropout2(linear2(dropout(activation(linear1(x))))))

    pre-norm (``norm_first=True``)::

        x = x + dropout1(self_attn(norm1(x)))
        x = x + dropout2(linear2(dropout(activation(linear1(norm2(x))))))

    Arguments:
        d_model: the model size ``E``.
        nhead: the attention heads (must divide ``d_model``).
        dim_feedforward: the hidden size of the feed-forward block.
        dropout: the drop probability of the attention weights and of the three
            ``Dropout`` children (training mode only).
        activation: ``"relu"`` (default) or ``"gelu"`` as in PyTorch (any name of
            ``unified.layers.activations.ACTIVATIONS`` is accepted).
        layer_norm_eps: the LayerNorms' epsilon.
        norm_first: pre-norm instead of post-norm.
        layout: ``"TNC"`` (``(L, N, E)``, default) or ``"NTC"`` (``batch_first``).
        bias: whether the linear layers and the LayerNorms have biases.
        dtype: the parameters' dtype.

    Parameters: ``self_attn.*`` (see :class:`MultiHeadAttention`),
    ``linear1.weight (F, E)``, ``linear1.bias``, ``linear2.weight (E, F)``,
    ``linear2.bias``, ``norm1.gamma``, ``norm1.beta``, ``norm2.gamma``,
    ``norm2.beta``: PyTorch's keys and order, its ``normK.weight``/``normK.bias``
    being ``normK.gamma``/``normK.beta``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        norm_first: bool = False,
        layout: str = "TNC",
        bias: bool = True,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        owner = "TransformerEncoderLayer"
        e = positive_int(d_model, "d_model", owner)
        ff = positive_int(dim_feedforward, "dim_feedforward", owner)
        rate = number(dropout, "dropout", owner, 0.0, 1.0, high_open=True)
        eps = number(layer_norm_eps, "layer_norm_eps", owner, 0.0)
        if not isinstance(activation, str):
            raise TypeError(
                f"{owner}: activation must be a name such as 'relu' or 'gelu', got "
                f"{activation!r}"
            )
        check_activation(activation)
        self.activation: str = activation
        self.norm_first = bool(norm_first)
        self.self_attn = MultiHeadAttention(
            e, nhead, dropout=rate, bias=bias, layout=layout, dtype=dtype
        )
        self.linear1 = Dense(ff, in_units=e, use_bias=bool(bias), dtype=dtype)
        self.dropout = Dropout(rate, dtype=dtype)
        self.linear2 = Dense(e, in_units=ff, use_bias=bool(bias), dtype=dtype)
        self.norm1 = LayerNorm(
            epsilon=eps, center=bool(bias), in_channels=e, dtype=dtype
        )
        self.norm2 = LayerNorm(
            epsilon=eps, center=bool(bias), in_channels=e, dtype=dtype
        )
        self.dropout1 = Dropout(rate, dtype=dtype)
        self.dropout2 = Dropout(rate, dtype=dtype)

    def forward(
        self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None
    ) -> Any:
        """Encode ``src`` (``(L, N, E)``; ``"NTC"``: ``(N, L, E)``).

        :param src_mask: the attention's ``attn_mask``, ``(L, L)`` or
            ``(N * nhead, L, L)``, boolean ``True`` = not allowed, or float (added).
        :param src_key_padding_mask: ``(N, L)``, boolean ``True`` = padding.
        :returns: the encoded sequence, shaped as ``src``.
        """
        x = src
        if self.norm_first:
            x = ops.add(x, self._attend(self.norm1(x), src_mask, src_key_padding_mask))
            return ops.add(x, self._feed_forward(self.norm2(x)))
        x = self.norm1(ops.add(x, self._attend(x, src_mask, src_key_padding_mask)))
        return self.norm2(ops.add(x, self._feed_forward(x)))

    def _attend(self, x: Any, mask: Any, padding: Any) -> Any:
        y = self.self_attn(x, attn_mask=mask, key_padding_mask=padding)
        return self.dropout1(y)

    def _feed_forward(self, x: Any) -> Any:
        hidden = activation_fn(self.activation)(self.linear1(x))
        return self.dropout2(self.linear2(self.dropout(hidden)))

    def _describe(self) -> str:
        return (
            f"d_model={self.self_attn.embed_dim}, nhead={self.self_attn.num_heads}, "
            f"activation={self.activation!r}, norm_first={self.norm_first}"
        )
