"""The math hooks: elementwise, activations, linear algebra, reductions, shapes,
selection and indexing (re-exported as ``unified.ops``)."""

from __future__ import annotations

from collections.abc import Sequence

from unified.hookspecs.base import Array, Axis, hookspec

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
