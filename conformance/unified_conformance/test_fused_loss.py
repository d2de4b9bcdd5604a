"""The optional fused ``softmax_cross_entropy`` hook (issue 15, item 2).

The hook itself against a float64 formula (value and gradient, every reduction,
2-d and 3-d logits, int32 and int64 labels), and ``unified.losses`` with the hook
against the same loss with the capability hidden (the composition of
``log_softmax``, ``take``, ``negative`` and ``mean``): both close to float64, and to
each other. On JAX the compiled ``Trainer`` step takes the hook for labels passed
as a batch argument (checked on the host): its trajectory equals the eager one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unified as U

from .helpers import Logits, assert_close, host, native

RNG = np.random.default_rng(47)
HOOK = "softmax_cross_entropy"


def _oracle(logits: np.ndarray, labels: np.ndarray, reduction: str):
    """Loss and its gradient with respect to ``logits``, class axis last, float64."""
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    onehot = np.eye(z.shape[-1])[labels.astype(np.int64)]
    per = -(logp * onehot).sum(-1)
    grad = np.exp(logp) - onehot
    if reduction == "mean":
        return per.mean(), grad / per.size
    if reduction == "sum":
        return per.sum(), grad
    return per, grad


SHAPES = {"2d": (6, 5), "3d": (3, 4, 7)}


def _case(shape: tuple[int, ...], label_dtype: str) -> tuple[np.ndarray, np.ndarray]:
    logits = (RNG.standard_normal(shape) * 3).astype(np.float32)
    labels = RNG.integers(0, shape[-1], shape[:-1]).astype(label_dtype)
    return logits, labels


@pytest.mark.only_backends("numpy", "torch", "jax", "mxnet")
def test_every_builtin_backend_has_the_fused_loss(backend: Any) -> None:
    assert HOOK in backend.capabilities


@pytest.mark.requires(HOOK)
@pytest.mark.parametrize("label_dtype", ["int64", "int32"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_hook_matches_float64(
    backend: Any, shape: str, reduction: str, label_dtype: str
) -> None:
    logits, labels = _case(SHAPES[shape], label_dtype)
    want, want_grad = _oracle(logits, labels, reduction)
    y = native(backend, labels, label_dtype)
    got = backend.softmax_cross_entropy(native(backend, logits), y, reduction)
    assert host(backend, got).shape == np.shape(want)
    assert_close(host(backend, got), want, f"{shape} {reduction} value", rtol=1e-5)

    weights = RNG.standard_normal(labels.shape) if reduction == "none" else None

    def loss_fn(n: U.Net) -> Any:
        out = backend.softmax_cross_entropy(n(), y, reduction)
        if weights is not None:
            out = U.ops.sum(U.ops.multiply(out, native(backend, weights)))
        return out

    _, grads = U.value_and_grad(loss_fn)(Logits(logits))
    if weights is not None:
        want_grad = want_grad * weights[..., None]
    assert_close(host(backend, grads["z"]), want_grad, f"{shape} {reduction} grad")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_fused_loss_equals_composition(
    backend: Any, monkeypatch: pytest.MonkeyPatch, shape: str, reduction: str
) -> None:
    logits, labels = _case(SHAPES[shape], "int64")
    want, want_grad = _oracle(logits, labels, reduction)
    results = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(backend, "capabilities", backend.capabilities - {HOOK})

        def loss_fn(n: U.Net) -> Any:
            return U.ops.sum(U.losses.softmax_cross_entropy(n(), labels, reduction))

        loss, grads = U.value_and_grad(loss_fn)(Logits(logits))
        results.append((host(backend, loss), host(backend, grads["z"])))
    for (loss, grad), how in zip(results, ("fused", "composed"), strict=True):
        assert_close(loss, np.sum(want), f"{how} loss", rtol=1e-5)
        assert_close(grad, want_grad, f"{how} gradient")
    (fused_loss, fused_grad), (comp_loss, comp_grad) = results
    assert_close(fused_loss, comp_loss, "fused vs composed loss", rtol=1e-5)
    assert_close(fused_grad, comp_grad, "fused vs composed gradient")


def test_fused_loss_keeps_the_label_check(backend: Any) -> None:
    logits = np.zeros((2, 4), np.float32)
    with pytest.raises(IndexError, match="class label 4"):
        U.losses.softmax_cross_entropy(logits, np.array([0, 4]))


@pytest.mark.parametrize("compile", [True, False])
def test_trainer_trajectory_with_fused_loss_equals_composed(
    backend: Any, monkeypatch: pytest.MonkeyPatch, compile: bool
) -> None:
    """Five SGD-momentum steps of a small MLP: the fused loss (inside a compiled
    step on JAX, labels a batch argument) against the composition, eager."""
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    y = RNG.integers(0, 3, 4)

    def loss_fn(n: U.Net, xs: Any, ys: Any) -> Any:
        return U.losses.softmax_cross_entropy(n(xs), ys)

    runs = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(backend, "capabilities", backend.capabilities - {HOOK})
        U.seed(5)
        net = U.Sequential(U.Dense(8, activation="relu"), U.Dense(3))
        net.initialize()
        trainer = U.Trainer(
            net, U.SGD(net.params(), lr=0.1, momentum=0.9), compile=compile and fused
        )
        losses = [float(trainer.step(loss_fn, x, y)) for _ in range(5)]
        runs.append((losses, [p.numpy() for p in net.params().values()]))
        with pytest.raises(IndexError, match="class label 3"):
            trainer.step(loss_fn, x, np.array([0, 1, 2, 3]))
    (fused_losses, fused_ws), (comp_losses, comp_ws) = runs
    assert_close(np.array(fused_losses), np.array(comp_losses), "losses", rtol=1e-5)
    for a, b in zip(fused_ws, comp_ws, strict=True):
        assert_close(a, b, "weights after 5 steps", rtol=1e-5, atol=1e-6)
