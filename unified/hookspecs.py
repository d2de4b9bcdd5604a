"""The backend contract: one pluggy hookspec per operation a backend provides.

A backend is a module (or any object) whose functions are marked with
:data:`unified.hookimpl` and carry the names below. It is registered through the
``unified.backends`` entry-point group, exactly like the four built-in backends::

    [project.entry-points."unified.backends"]
    mybackend = "my_package.backend"

The core never calls ``pm.hook.<name>(...)`` on the hot path. When a backend is
selected, each of its implementations is looked up once and stored in a
:class:`unified.plugins.BackendTable`; ``unified.ops.<name>`` and the layers call the
table directly. Every hook below is required unless it is listed in
:data:`OPTIONAL_HOOKS`; a backend missing any is rejected with the full list.

Conventions shared by every hook:

* *native array*: the backend's own array type (``np.ndarray``, ``torch.Tensor``,
  ``jax.Array``, ``mx.nd.NDArray``). Inside :func:`value_and_grad` a backend may hand
  its traced stand-ins (tape nodes, tracers) to the math hooks instead; every math
  hook must accept them.
* *scalar*: a Python ``float`` or ``int``. Binary math hooks accept a scalar in
  either position; the result keeps the array's dtype (float32 stays float32).
* *dtype*: a NumPy dtype name such as ``"float32"``.
* Math hooks never modify their inputs. Only :func:`assign` and :func:`axpby` write.
* Defaults users rely on through ``unified.ops`` (implementations must provide
  them): ``sum/mean/max(x, axis=None, keepdims=False)``, ``softmax/log_softmax(x,
  axis=-1)``, ``transpose(x, axes=None)``, ``linear(x, weight, bias=None)``,
  ``pad(x, pad_width, value=0.0)``, ``take(x, indices, axis=0)``.
* Capabilities: ``inplace`` (declared in ``BackendInfo``) means :func:`assign` and
  :func:`axpby` write into their target and return it; ``jit`` comes with the
  optional :func:`jit` hook. The conformance suite skips, with the reason, what a
  backend does not declare.
* Floating point is what the library uses and what the suite checks (float32 by
  default); integer arrays appear as labels (``one_hot``, losses). A backend that
  cannot hold a requested 64-bit dtype (JAX without x64) may return the 32-bit one.
* Reductions may return a 0-d array or the framework's scalar type; both count as
  native arrays. ``value_and_grad`` differentiates float inputs only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("unified")

Array = Any
"""A native array of the backend (or, inside ``value_and_grad``, its traced
stand-in)."""

Axis = int | tuple[int, ...] | None

# ----------------------------------------------------------------------------------
# Identity and conversion
# ----------------------------------------------------------------------------------


@hookspec
def backend_info() -> Any:
    """Describe the backend.

    :returns: a :class:`unified.plugins.BackendInfo` with the backend's ``name``
        (the entry-point name), the ``framework`` it wraps and its ``version``, and
        the ``capabilities`` it declares (for example ``{"jit"}``).
    """


@hookspec
def is_array(x: Any) -> bool:
    """Tell whether ``x`` is a native array of this backend (or a traced stand-in).

    :param x: any object.
    :returns: ``True`` for the backend's own array type.
    """


@hookspec
def asarray(x: Any, dtype: str) -> Array:
    """Convert host data to a native array of ``dtype``.

    :param x: a ``numpy.ndarray``, a Python scalar, or a native array of this backend.
        The caller owns ``x`` and never writes to it afterwards, so the result may
        share its memory (zero-copy) where the framework allows.
    :param dtype: the NumPy name of the result's dtype.
    :returns: a native array with ``x``'s shape and the given dtype.
    """


@hookspec
def to_numpy(x: Array) -> Any:
    """Return the values of a native array as a ``numpy.ndarray``.

    :param x: a native array (never a traced stand-in).
    :returns: a NumPy array with the same shape and dtype. It may share memory with
        ``x``; callers that keep it make their own copy.
    """


@hookspec
def zeros(shape: tuple[int, ...], dtype: str) -> Array:
    """Return a new native array of zeros.

    :param shape: the shape, every dimension known.
    :param dtype: the NumPy name of the dtype.
    """


@hookspec
def zeros_like(x: Array) -> Array:
    """Return a new native array of zeros with ``x``'s shape and dtype."""


@hookspec
def astype(x: Array, dtype: str) -> Array:
    """Return ``x`` cast to ``dtype`` (differentiable for float dtypes)."""


@hookspec
def assign(target: Array, value: Array) -> Array:
    """Store ``value`` in ``target``, in place where the framework allows.

    Used by optimizers and ``set_data``. Backends with mutable arrays (NumPy,
    PyTorch, MXNet) copy ``value`` into ``target`` and return ``target``, so
    references to the parameter's array stay valid; immutable backends (JAX)
    return ``value``.

    :param target: the parameter's current native array.
    :param value: a native array with the same shape and dtype.
    :returns: the array that now holds the parameter's value.
    """


@hookspec
def axpby(a: float, x: Array, b: float, y: Array) -> Array:
    """Return ``a * x + b * y``, written into ``y`` in place where the framework allows.

    The optimizers' fused update (not differentiable): ``y`` is always an array the
    caller owns (a parameter's value or optimizer state), so mutable backends update
    it in place (``y.mul_(b).add_(x, alpha=a)``) and return ``y``; immutable ones
    return a new array. Callers always use the returned array.

    :param a: scalar (a Python float; a 0-d array inside a compiled step).
    :param x: a native array, broadcastable to ``y``.
    :param b: scalar, as ``a``.
    :param y: the native array to update.
    :returns: the array holding ``a * x + b * y``.
    """


# ----------------------------------------------------------------------------------
# Devices (optional: a backend without them has the one device "cpu")
# ----------------------------------------------------------------------------------


@hookspec
def devices() -> list[str]:
    """List the devices this backend can place arrays on (optional: ``devices``).

    Names are ``"kind:index"`` strings (``"cpu:0"``, ``"cuda:1"``, ``"gpu:0"``; a
    framework with a single CPU device may call it ``"cpu"``). The first entry is
    the framework's default device: the one :func:`asarray` and :func:`zeros` use.
    :mod:`unified.placement` matches user spellings against these names (``"cpu"``
    is ``"cpu:0"``, ``"cuda"`` and ``"gpu"`` are one kind) and builds a table whose
    :func:`asarray` and :func:`zeros` place arrays on a non-default device through
    :func:`to_device`; every other hook follows its inputs' device.

    :returns: the device names, the default first; never empty.
    """


@hookspec
def to_device(x: Any, device: str) -> Array:
    """Return ``x`` on ``device`` (optional: comes with :func:`devices`).

    :param x: a native array, or a ``numpy.ndarray`` of host data, which is
        transferred directly (once) and keeps its dtype.
    :param device: one of the names :func:`devices` returns.
    :returns: a native array on ``device`` with ``x``'s values, shape and dtype;
        ``x`` itself when it is a native array already there. Not differentiable.
    """


@hookspec
def device_of(x: Array) -> str:
    """Name the device a native array lives on (optional: comes with :func:`devices`).

    :param x: a native array (never a traced stand-in).
    :returns: one of the names :func:`devices` returns.
    """


# ----------------------------------------------------------------------------------
# Differentiation
# ----------------------------------------------------------------------------------


@hookspec
def value_and_grad(
    fn: Callable[[list[Array]], Array], arrays: Sequence[Array]
) -> tuple[Array, list[Array]]:
    """Evaluate ``fn(arrays)`` and its gradient with respect to every array.

    :param fn: a function of a list of arrays returning a scalar (0-d) array. It may
        call any math hook, any number of times, on any of the arrays.
    :param arrays: the native arrays to differentiate with respect to. The backend
        may pass traced stand-ins of them to ``fn``; the originals must not be
        modified and must not carry gradient state afterwards.
    :returns: ``(value, grads)``: the value as a 0-d native array detached from any
        graph, and one native gradient per input, same shape and dtype, zeros for an
        input that ``fn`` did not use. No state leaks from one call to the next.
    """


@hookspec
def jit(fn: Callable[..., Any], donate: Sequence[int] = ()) -> Callable[..., Any]:
    """Compile a pure function of native arrays (optional: declares capability ``jit``).

    An attribute ``fn.donate_argnums`` (a tuple of argument positions, which ``fn``
    may set while it is traced) says the caller gives up those arguments' arrays:
    the compiled function may write its results into them. A backend may ignore it
    (only NumPy uses it; ``Trainer`` donates the parameters and optimizer state).

    :param fn: a function whose arguments and results are (nested lists of) native
        arrays and whose Python control flow does not depend on array values.
    :param donate: positions of arguments whose arrays the caller gives up: the
        compiled function may reuse their memory for results of the same shape
        and dtype, and the caller never reads them again. Passed only to a
        backend that declares the capability ``donate``, whose compiled callable
        also has ``trace(*args)``: trace for these arguments without running.
    :returns: a callable with the same signature, compiled once per input structure
        and shapes, and reused. A backend that runs some inputs eagerly instead
        (it could not compile them) may set the callable's attribute ``declined``
        to ``True`` after such a call: ``Trainer`` then steps eagerly (its own
        eager step is faster than an uncompiled pure step).
    """


# ----------------------------------------------------------------------------------
# Math: elementwise (binary ops broadcast as NumPy does)
# ----------------------------------------------------------------------------------


@hookspec
def add(a: Array, b: Array) -> Array:
    """Return ``a + b``."""


@hookspec
def subtract(a: Array, b: Array) -> Array:
    """Return ``a - b``."""


@hookspec
def multiply(a: Array, b: Array) -> Array:
    """Return ``a * b``."""


@hookspec
def divide(a: Array, b: Array) -> Array:
    """Return ``a / b`` (true division)."""


@hookspec
def maximum(a: Array, b: Array) -> Array:
    """Return the elementwise maximum; on ties the gradient is split in half."""


@hookspec
def minimum(a: Array, b: Array) -> Array:
    """Return the elementwise minimum; on ties the gradient is split in half."""


@hookspec
def power(x: Array, exponent: float) -> Array:
    """Return ``x ** exponent`` for a scalar exponent."""


@hookspec
def negative(x: Array) -> Array:
    """Return ``-x``."""


@hookspec
def exp(x: Array) -> Array:
    """Return ``e ** x``."""


@hookspec
def log(x: Array) -> Array:
    """Return the natural logarithm."""


@hookspec
def log1p(x: Array) -> Array:
    """Return ``log(1 + x)``, accurate for small ``x``."""


@hookspec
def sqrt(x: Array) -> Array:
    """Return the square root."""


@hookspec
def square(x: Array) -> Array:
    """Return ``x * x``."""


@hookspec
def abs(x: Array) -> Array:
    """Return ``|x|``; the gradient at 0 is 0."""


# ----------------------------------------------------------------------------------
# Math: activations
# ----------------------------------------------------------------------------------


@hookspec
def relu(x: Array) -> Array:
    """Return ``max(x, 0)``; the gradient at 0 is 0."""


@hookspec
def sigmoid(x: Array) -> Array:
    """Return ``1 / (1 + exp(-x))``."""


@hookspec
def tanh(x: Array) -> Array:
    """Return the hyperbolic tangent."""


@hookspec
def softmax(x: Array, axis: int) -> Array:
    """Return the softmax along ``axis`` (numerically stable)."""


@hookspec
def log_softmax(x: Array, axis: int) -> Array:
    """Return the log of the softmax along ``axis`` (numerically stable)."""


# ----------------------------------------------------------------------------------
# Math: linear algebra
# ----------------------------------------------------------------------------------


@hookspec
def matmul(a: Array, b: Array) -> Array:
    """Return the matrix product with NumPy's ``matmul`` semantics (batched, >= 2-d)."""


@hookspec
def linear(x: Array, weight: Array, bias: Array | None) -> Array:
    """Return ``x @ weight.T + bias``: the fully connected layer.

    :param x: input of shape ``(..., in_units)``.
    :param weight: ``(units, in_units)``, the (out, in) layout of Gluon and PyTorch.
    :param bias: ``(units,)`` or ``None`` for no bias.
    :returns: ``(..., units)``.
    """


# ----------------------------------------------------------------------------------
# Math: reductions and shapes
# ----------------------------------------------------------------------------------


@hookspec
def sum(x: Array, axis: Axis, keepdims: bool) -> Array:
    """Return the sum over ``axis`` (all axes when ``None``)."""


@hookspec
def mean(x: Array, axis: Axis, keepdims: bool) -> Array:
    """Return the mean over ``axis`` (all axes when ``None``)."""


@hookspec
def max(x: Array, axis: Axis, keepdims: bool) -> Array:
    """Return the maximum over ``axis``; the gradient is shared evenly among ties."""


@hookspec
def reshape(x: Array, shape: tuple[int, ...]) -> Array:
    """Return ``x`` with a new shape (one dimension may be ``-1``)."""


@hookspec
def transpose(x: Array, axes: tuple[int, ...] | None) -> Array:
    """Return ``x`` with its axes permuted (reversed when ``axes`` is ``None``)."""


@hookspec
def one_hot(indices: Array, depth: int, dtype: str) -> Array:
    """Return one-hot rows for integer ``indices`` (not differentiable).

    :param indices: integer labels of shape ``(n,)`` (any integer or float dtype
        holding whole numbers), each in ``[0, depth)``; other values are
        unspecified (backends differ: zero rows or an error).
    :param depth: the number of classes.
    :returns: ``(n, depth)`` array of ``dtype``.
    """


# ----------------------------------------------------------------------------------
# Math: selection, comparison, shapes and indexing (the layers' general vocabulary)
# ----------------------------------------------------------------------------------


@hookspec
def where(cond: Array, a: Array, b: Array) -> Array:
    """Return ``a`` where ``cond`` holds and ``b`` elsewhere (NumPy broadcasting).

    :param cond: a boolean native array (as :func:`greater` returns) or a 0/1 array
        of any dtype (nonzero counts as true); not differentiated.
    :param a: a native array or a scalar.
    :param b: a native array or a scalar; at least one of ``a`` and ``b`` is an
        array, and a scalar takes the other operand's dtype.
    :returns: the broadcast shape of the three operands. The gradient reaches ``a``
        where ``cond`` holds and ``b`` elsewhere, summed back to each shape.
    """


@hookspec
def greater(a: Array, b: Array) -> Array:
    """Return the boolean array ``a > b`` (not differentiable).

    :param a: a native array or a scalar.
    :param b: a native array or a scalar (at least one operand is an array).
    :returns: a native array of dtype ``bool`` with the broadcast shape.
    """


@hookspec
def less(a: Array, b: Array) -> Array:
    """Return the boolean array ``a < b`` (not differentiable); as :func:`greater`."""


@hookspec
def equal(a: Array, b: Array) -> Array:
    """Return the boolean array ``a == b`` (not differentiable); as :func:`greater`."""


@hookspec
def clip(x: Array, lo: float | None, hi: float | None) -> Array:
    """Return ``x`` limited to ``[lo, hi]``.

    :param x: a native array.
    :param lo: the lower bound, a scalar, or ``None`` for none.
    :param hi: the upper bound, a scalar, or ``None`` for none.
    :returns: ``min(max(x, lo), hi)`` with ``x``'s dtype. The gradient is 1 where
        ``lo <= x <= hi`` (bounds included, ``torch.clamp``'s rule) and 0 outside.
    """


@hookspec
def erf(x: Array) -> Array:
    """Return the error function ``2/sqrt(pi) * integral_0^x exp(-t**2) dt``.

    :param x: a native float array.
    :returns: ``erf(x)``, same shape and dtype; the gradient is
        ``2/sqrt(pi) * exp(-x**2)``.
    """


@hookspec
def concatenate(arrays: Sequence[Array], axis: int) -> Array:
    """Join arrays along an existing axis.

    :param arrays: one or more native arrays of one dtype whose shapes agree
        except along ``axis``.
    :param axis: the axis to join along (negative counts from the end).
    :returns: the joined array; each input gets its slice of the gradient.
    """


@hookspec
def stack(arrays: Sequence[Array], axis: int) -> Array:
    """Join arrays of one shape along a new axis.

    :param arrays: one or more native arrays of the same shape and dtype.
    :param axis: the position of the new axis in the result (negative counts
        from the end of the result's axes).
    :returns: an array with one more axis, of length ``len(arrays)``.
    """


@hookspec
def split(x: Array, sections: int | Sequence[int], axis: int) -> list[Array]:
    """Split an array along an axis, as ``numpy.split`` does.

    :param x: a native array.
    :param sections: an ``int`` number of equal parts (it must divide the axis
        length), or an increasing list of indices in ``[0, n]`` at which to cut
        (``[2, 5]`` gives ``x[:2]``, ``x[2:5]``, ``x[5:]`` along ``axis``).
    :param axis: the axis to split.
    :returns: a list of native arrays (views or copies), each differentiable.
    """


@hookspec
def pad(x: Array, pad_width: Sequence[tuple[int, int]], value: float) -> Array:
    """Pad an array with a constant.

    :param x: a native array.
    :param pad_width: one ``(before, after)`` pair of non-negative ints per axis
        of ``x``.
    :param value: the constant written into the padding (default ``0.0``, which
        implementations provide).
    :returns: the padded array, ``x``'s dtype; the gradient of ``x`` is the
        output gradient's interior.
    """


@hookspec
def take(x: Array, indices: Array, axis: int) -> Array:
    """Gather entries of ``x`` along ``axis`` (``numpy.take``; Embedding's lookup).

    :param x: a native array.
    :param indices: a native integer array of any shape (whole numbers stored in
        a float array are accepted too). The caller guarantees every index is in
        ``[0, x.shape[axis])``: out-of-range indices are unspecified (backends
        clip, wrap, fill or raise) and are not checked, to keep the lookup fast.
    :param axis: the axis of ``x`` to index (default ``0``, which implementations
        provide).
    :returns: an array of shape ``x.shape[:axis] + indices.shape +
        x.shape[axis + 1:]``. The gradient of ``x`` scatter-adds the output
        gradient (an index that appears several times gets the sum).
    """


@hookspec
def argmax(x: Array, axis: int) -> Array:
    """Return the index of the maximum along ``axis`` (not differentiable).

    :param x: a native array.
    :param axis: the axis to reduce.
    :returns: an integer native array (``int64``, or ``int32`` on a backend
        without 64-bit integers) with ``axis`` removed; ties give the first index.
    """


@hookspec
def slice_axis(x: Array, axis: int, begin: int, end: int | None) -> Array:
    """Return ``x[begin:end]`` along ``axis`` (differentiable).

    :param x: a native array.
    :param axis: the axis to slice.
    :param begin: the first index (negative counts from the end).
    :param end: one past the last index (negative counts from the end), or
        ``None`` for the end of the axis. Bounds are clipped as Python slices are.
    :returns: the slice, with ``x``'s number of axes; its gradient is scattered
        back into zeros of ``x``'s shape.
    """


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


OPTIONAL_HOOKS: frozenset[str] = frozenset(
    {
        "batch_norm",
        "batch_norm_inference",
        "device_of",
        "devices",
        "jit",
        "rnn_layer",
        "softmax_cross_entropy",
        "to_device",
    }
)
"""Hooks a backend may leave out; each one it implements adds a capability."""

NN_HOOKS: tuple[str, ...] = ("conv", "conv_transpose", "pool")
"""The neural-network kernels (convolution and pooling)."""

MATH_HOOKS: tuple[str, ...] = (
    "add",
    "subtract",
    "multiply",
    "divide",
    "maximum",
    "minimum",
    "power",
    "negative",
    "exp",
    "log",
    "log1p",
    "sqrt",
    "square",
    "abs",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "matmul",
    "linear",
    "sum",
    "mean",
    "max",
    "reshape",
    "transpose",
    "one_hot",
    "astype",
    "zeros",
    "zeros_like",
    "where",
    "greater",
    "less",
    "equal",
    "clip",
    "erf",
    "concatenate",
    "stack",
    "split",
    "pad",
    "take",
    "argmax",
    "slice_axis",
    *NN_HOOKS,
)
"""The hooks re-exported as ``unified.ops``: the math a custom ``forward`` may use."""


def hook_names() -> tuple[str, ...]:
    """Return the name of every hookspec in this module, in definition order."""
    return tuple(
        name
        for name, obj in globals().items()
        if callable(obj) and hasattr(obj, "unified_spec")
    )
