"""The neural-network kernels: convolution, pooling, the recurrent layer, batch
normalization and the fused softmax cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

from unified.hookspecs.base import Array, hookspec

# ----------------------------------------------------------------------------------
# Neural-network kernels
# ----------------------------------------------------------------------------------
#
# Layouts are channels-first: ``(N, C, W)`` or ``(N, C, H, W)`` (1 or 2 spatial
# dimensions; other ranks raise ``ValueError``). Every tuple argument has one entry
# per spatial dimension, in that order. The formulas are PyTorch's;
# :mod:`unified.windows` computes them for adapters that assemble a kernel from parts.


@hookspec
def conv(
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> Array:
    """Return the cross-correlation of ``x`` with ``weight`` (a convolution layer).

    ``out[n, o, i] = bias[o] + sum over c, k of w[o, c, k] * xp[n, g*C_in/groups + c,
    i*s + k*d]``, where ``g = o // (C_out/groups)`` is the output channel's group and
    ``xp`` is ``x`` zero-padded by ``p`` on both sides of each spatial dimension. The
    output length of a spatial dimension of size ``in`` is
    ``floor((in + 2p - d(k-1) - 1) / s) + 1``.

    :param x: ``(N, C_in, *spatial)`` with 1 or 2 spatial dimensions.
    :param weight: ``(C_out, C_in // groups, *kernel)``.
    :param bias: ``(C_out,)`` or ``None`` for no bias.
    :param stride: the step between windows, each >= 1.
    :param padding: symmetric zero padding, each >= 0.
    :param dilation: the spacing of kernel taps, each >= 1.
    :param groups: the number of channel groups; ``C_in`` and ``C_out`` are
        multiples of it (``groups == C_in`` is a depthwise convolution).
    :returns: ``(N, C_out, *out_spatial)``, differentiable in ``x``, ``weight`` and
        ``bias``.
    """


@hookspec
def conv_transpose(
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> Array:
    """Return the transposed convolution: the gradient of :func:`conv` w.r.t. its input.

    Each input position ``i`` scatters ``x[n, c, i] * weight[c, o, k]`` to position
    ``i*s + k*d - p`` of the output (positions outside it are dropped), then ``bias``
    is added. The output length of a spatial dimension of size ``in`` is
    ``(in - 1)s - 2p + d(k-1) + output_padding + 1``; ``output_padding`` only adds
    positions on the right (it picks one of the input sizes a strided conv maps to
    ``in``) and must be smaller than the stride (Gluon's rule; PyTorch would also
    accept values below the dilation). Invalid values raise ``ValueError``.

    :param x: ``(N, C_in, *spatial)`` with 1 or 2 spatial dimensions.
    :param weight: ``(C_in, C_out // groups, *kernel)``, the layout of Gluon and
        PyTorch (the same array as the weight of the conv it transposes).
    :param bias: ``(C_out,)`` or ``None``.
    :param stride: as :func:`conv`.
    :param padding: as :func:`conv`: removed from both ends of the output.
    :param output_padding: extra output positions on the right, each >= 0.
    :param dilation: as :func:`conv`.
    :param groups: as :func:`conv`; ``C_in`` and ``C_out`` are multiples of it.
    :returns: ``(N, C_out, *out_spatial)``, differentiable in ``x``, ``weight`` and
        ``bias``.
    """


@hookspec
def pool(
    x: Array,
    mode: str,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    ceil_mode: bool,
    count_include_pad: bool,
) -> Array:
    """Return max or average pooling over windows, with PyTorch's definitions.

    Along a spatial dimension of size ``in`` there are
    ``floor((in + 2p - k) / s) + 1`` windows, or with ``ceil_mode`` ``ceil(...) + 1``
    less one if the last window would then start in the right padding (at or beyond
    ``in + p``): every window starts inside the input or the left padding. Window
    ``o`` covers ``[o*s - p, o*s - p + k)``.

    * ``"max"``: the maximum of the real elements of the window (padding is
      ``-inf``, so it never wins). Gradient rule on ties: the whole gradient of a
      window goes to its *first* maximum in row-major window order (PyTorch's rule);
      overlapping windows add up.
    * ``"avg"``: the sum of the window's real elements divided, with
      ``count_include_pad``, by the window's size clipped to the padded input
      ``[-p, in + p)`` (so the extra ``ceil_mode`` part is never counted), and
      otherwise by the number of real elements in the window.

    :param x: ``(N, C, *spatial)`` with 1 or 2 spatial dimensions.
    :param mode: ``"max"`` or ``"avg"``.
    :param kernel: the window size.
    :param stride: the step between windows.
    :param padding: implicit padding on both sides, each at most half the kernel.
    :param ceil_mode: round the number of windows up instead of down.
    :param count_include_pad: for ``"avg"``: whether padding counts in the divisor
        (ignored for ``"max"``).
    :returns: ``(N, C, *out_spatial)``, differentiable in ``x``.
    """


@hookspec
def rnn_layer(
    mode: str,
    x: Array,
    states: Sequence[Array],
    weights: Sequence[Array],
    bidirectional: bool,
) -> tuple[Array, list[Array]]:
    """Optional: one fused recurrent layer over a whole sequence, both directions.

    A faster kernel for what ``unified.layers.recurrent`` composes from ``linear``,
    ``sigmoid``, ``tanh``, ``split`` and ``stack``; the layers call it when the
    backend implements it (capability ``rnn_layer``), one layer at a time, so
    dropout between layers stays host-drawn. The formulas and gate orders are
    PyTorch's and Gluon's: LSTM gates i, f, g, o with ``c' = σ(f) c + σ(i) tanh(g)``,
    ``h' = σ(o) tanh(c')``; GRU gates r, z, n with
    ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``;
    RNN ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``. The reverse direction reads
    the sequence from the last step to the first.

    :param mode: ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"`` or ``"gru"``.
    :param x: the input, time-major ``(T, N, C)``.
    :param states: ``[h]`` (``[h, c]`` for ``"lstm"``), each ``(D, N, H)`` with
        ``D = 2`` if ``bidirectional`` else 1 (forward direction first).
    :param weights: for the forward direction, then the reverse one:
        ``i2h_weight (G*H, C)``, ``h2h_weight (G*H, H)``, ``i2h_bias (G*H,)``,
        ``h2h_bias (G*H,)``, where ``G`` is 1, 4 or 3 gates (PyTorch's
        ``_flat_weights`` order for one layer).
    :param bidirectional: whether ``weights`` and ``states`` hold a reverse
        direction.
    :returns: ``(output, new_states)``: ``output`` ``(T, N, D*H)`` (the reverse
        direction's features after the forward ones) and the states after the last
        step of each direction, like ``states``; differentiable in ``x``,
        ``states`` and ``weights``.
    """


@hookspec
def batch_norm(
    x: Array, gamma: Array | None, beta: Array | None, axis: int, eps: float
) -> tuple[Array, Array, Array]:
    """Optional: fused training-mode batch normalization with batch statistics.

    A faster kernel for what ``unified.layers.norm.BatchNorm`` composes from
    ``mean``, ``subtract``, ``square``, ``sqrt``, ``divide``, ``multiply`` and
    ``add``; the layer calls it in training mode when the backend implements it
    (capability ``batch_norm``) and keeps the running-statistics update itself.
    With ``R`` the axes other than ``axis``, ``mean = mean_R(x)``,
    ``var = mean_R((x - mean)**2)`` (biased) and
    ``y = (x - mean) / sqrt(var + eps) * gamma + beta``.

    :param x: the input, at least 2-d.
    :param gamma: the scale, shape ``(C,)`` with ``C = x.shape[axis]``; ``None``
        means ones (no scale).
    :param beta: the shift, shape ``(C,)``; ``None`` means zeros (no shift).
    :param axis: the channel axis, ``0 <= axis < x.ndim``.
    :param eps: added to the variance.
    :returns: ``(y, mean, var)``: ``y`` of ``x``'s shape, differentiable in ``x``,
        ``gamma`` and ``beta``; ``mean`` and the biased ``var``, each ``(C,)``,
        whose gradients are not needed (the layer only blends them into its
        running statistics).
    """


@hookspec
def batch_norm_inference(
    x: Array,
    mean: Array,
    var: Array,
    gamma: Array | None,
    beta: Array | None,
    axis: int,
    eps: float,
) -> Array:
    """Optional: fused inference-mode batch normalization with given statistics.

    A faster kernel for ``unified.layers.norm.BatchNorm`` in inference mode (or with
    ``use_global_stats=True``), which otherwise folds the running statistics into a
    per-channel ``scale = gamma / sqrt(var + eps)`` and
    ``shift = beta - mean * scale`` and computes ``x * scale + shift`` in two
    full-size operations; the layer calls the hook instead when the backend
    implements it (capability ``batch_norm_inference``). With the ``(C,)`` vectors
    broadcast along ``axis``, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``,
    equal to the folded composition within float32 rounding.

    :param x: the input, at least 2-d.
    :param mean: the statistics' mean (the running mean), shape ``(C,)`` with
        ``C = x.shape[axis]``.
    :param var: the statistics' variance (the running variance), shape ``(C,)``.
    :param gamma: the scale, shape ``(C,)``; ``None`` means ones (no scale).
    :param beta: the shift, shape ``(C,)``; ``None`` means zeros (no shift).
    :param axis: the channel axis, ``0 <= axis < x.ndim``.
    :param eps: added to the variance.
    :returns: ``y`` of ``x``'s shape and dtype, differentiable in ``x``
        (``dx = g * gamma / sqrt(var + eps)``), ``gamma``
        (``sum(g * (x - mean)) / sqrt(var + eps)``) and ``beta`` (``sum(g)``), the
        sums over every axis but ``axis``; ``mean`` and ``var`` need no gradient
        (the layer's running statistics are not trainable).
    """


@hookspec
def softmax_cross_entropy(logits: Array, labels: Array, reduction: str) -> Array:
    """Optional: fused softmax cross-entropy with integer class labels.

    A faster kernel for what :func:`unified.losses.softmax_cross_entropy` composes
    from ``log_softmax``, ``take``, ``negative`` and ``mean``/``sum``; the loss
    calls it (capability ``softmax_cross_entropy``) when the labels are integer
    class indices, the class axis is last, and the labels were already checked to
    lie in ``[0, C)`` (on the host, or by the compiled step's host check of a batch
    argument). Per sample ``loss[i] = -log_softmax(logits[i])[labels[i]]``.

    :param logits: floating, shape ``(..., C)``, the class axis last.
    :param labels: integer class indices, shape ``logits.shape[:-1]``, each in
        ``[0, C)``.
    :param reduction: ``"mean"`` (over every sample), ``"sum"`` or ``"none"``.
    :returns: the loss in ``logits``' dtype: 0-d for ``"mean"`` and ``"sum"``, of
        ``labels``' shape for ``"none"``; differentiable in ``logits``, with the
        gradient ``softmax(logits) - one_hot(labels)`` times the incoming gradient
        (divided by the number of samples for ``"mean"``).
    """
