"""``unified.losses.softmax_cross_entropy`` against float64 formulas.

Integer class labels take a gather of the picked log-probabilities (concrete labels,
class axis last) or the one-hot product (other axes, float labels, traced labels);
both must give the float64 oracle's value and its gradient ``(softmax - onehot)``,
scaled by the reduction, for labels of any shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unified as U

from .helpers import Logits, assert_close, host, native

RNG = np.random.default_rng(31)


def _oracle(logits: np.ndarray, labels: np.ndarray, axis: int, reduction: str):
    """Value and gradient (of the reduced loss) in float64."""
    z = np.moveaxis(logits.astype(np.float64), axis, -1)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    onehot = np.eye(z.shape[-1])[labels.astype(np.int64)]
    per = -(logp * onehot).sum(-1)
    grad = np.exp(logp) - onehot
    if reduction == "mean":
        value, grad = per.mean(), grad / per.size
    elif reduction == "sum":
        value = per.sum()
    else:
        value = per
    return value, np.moveaxis(grad, -1, axis)


CASES = {
    "2d-int64": ((6, 5), -1, "int64"),
    "3d-int32": ((4, 3, 7), -1, "int32"),
    "3d-class-axis-1": ((4, 7, 3), 1, "int64"),
    "2d-float-labels": ((6, 5), -1, "float32"),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_softmax_cross_entropy_value_and_gradient(
    backend: Any, case: str, reduction: str
) -> None:
    shape, axis, label_dtype = CASES[case]
    logits = (RNG.standard_normal(shape) * 3).astype(np.float32)
    lshape = tuple(d for i, d in enumerate(shape) if i != axis % len(shape))
    labels = RNG.integers(0, shape[axis], lshape).astype(label_dtype)
    want, want_grad = _oracle(logits, labels, axis, reduction)
    got = U.losses.softmax_cross_entropy(logits, labels, reduction, axis)
    assert_close(host(backend, got), want, f"{case} {reduction} loss", rtol=1e-5)

    weights = RNG.standard_normal(lshape) if reduction == "none" else None
    net = Logits(logits)

    def loss_fn(n: U.Net) -> Any:
        out = U.losses.softmax_cross_entropy(n(), labels, reduction, axis)
        if weights is not None:
            out = U.ops.sum(U.ops.multiply(out, native(backend, weights)))
        return out

    _, grads = U.value_and_grad(loss_fn)(net)
    grad = grads["z"]
    if weights is not None:
        w = np.expand_dims(weights, axis % len(shape))
        want_grad = _oracle(logits, labels, axis, "sum")[1] * w
    assert_close(host(backend, grad), want_grad, f"{case} {reduction} d logits")


def test_out_of_range_label_raises(backend: Any) -> None:
    logits = np.zeros((2, 3, 4), np.float32)
    for bad in (4, -1):
        labels = np.array([[0, 1, 2], [3, bad, 0]])
        with pytest.raises(IndexError, match=str(bad)):
            U.losses.softmax_cross_entropy(native(backend, logits), labels)
