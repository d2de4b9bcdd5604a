"""Every backend against the NumPy reference: same bits at init, same numbers after.

Initial weights must be bitwise equal; outputs and gradients agree within float32
tolerance; 10-step optimizer trajectories within rtol 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

from .helpers import RTOL_F32, assert_bitwise, assert_close

X = np.random.default_rng(3).standard_normal((8, 12)).astype(np.float32)
Y = np.random.default_rng(4).integers(0, 5, 8)


def _build(table, seed=0, deferred=True):
    with U.use_backend(table.name):
        U.seed(seed)
        net = U.Sequential(
            U.Dense(16, activation="relu", in_units=None if deferred else 12),
            U.Dense(16, activation="tanh", weight_initializer=U.init.Xavier()),
            U.Dense(5, weight_initializer=U.init.kaiming_normal()),
        )
        net.initialize()
        net.infer_shape(X.shape)
    return net


def _loss(net, x, y):
    return U.losses.softmax_cross_entropy(net(x), y)


def _args(table):
    return table.asarray(X, "float32"), table.asarray(Y, "int64")


def test_initial_weights_bitwise_equal(backend_pair):
    """Headline: the same seed gives bitwise-identical weights on both backends."""
    ref, other = backend_pair
    a, b = _build(ref), _build(other, deferred=False)
    for name, p in a.params().items():
        assert_bitwise(b.params()[name].numpy(), p.numpy(), f"{name} on {other.name}")


def test_outputs_and_gradients_agree(backend_pair):
    """Outputs, loss and every gradient agree within float32 tolerance."""
    ref, other = backend_pair
    results = []
    for table in (ref, other):
        net = _build(table)
        with U.use_backend(table.name):
            out = table.to_numpy(net(table.asarray(X, "float32")))
            loss, grads = U.value_and_grad(_loss)(net, *_args(table))
        results.append(
            (
                np.asarray(out),
                float(table.to_numpy(loss)),
                {k: np.asarray(table.to_numpy(g)) for k, g in grads.items()},
            )
        )
    (out_a, loss_a, grads_a), (out_b, loss_b, grads_b) = results
    assert_close(out_b, out_a, f"output on {other.name}")
    assert_close(loss_b, loss_a, f"loss on {other.name}")
    for name in grads_a:
        assert_close(
            grads_b[name],
            grads_a[name],
            f"grad {name} on {other.name}",
            atol=1e-6,
            rtol=1e-4,
        )


OPTIMIZERS = {
    "sgd-momentum": lambda p: U.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov": lambda p: U.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: U.Adam(p, lr=1e-2),
    "adamw-amsgrad": lambda p: U.AdamW(p, lr=1e-2, amsgrad=True),
    "rmsprop-centered": lambda p: U.RMSProp(p, lr=1e-3, centered=True, momentum=0.5),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("use_trainer", [False, True], ids=["eager", "trainer"])
def test_trajectories_agree(backend_pair, name, use_trainer):
    """10 training steps: every parameter agrees within rtol 1e-5 after each step.

    Each backend computes its own gradients, eagerly or through ``Trainer`` (which
    compiles the whole step on a jit backend), so this checks the full training loop.
    """
    ref, other = backend_pair
    nets = [_build(t) for t in (ref, other)]
    opts = [OPTIMIZERS[name](n.params()) for n in nets]
    trainer = U.Trainer(nets[1], opts[1]) if use_trainer else None
    for step in range(10):
        with U.use_backend(ref.name):
            U.value_and_grad(_loss)(nets[0], *_args(ref))
        opts[0].step()
        with U.use_backend(other.name):
            if trainer is not None:
                trainer.step(_loss, *_args(other))
            else:
                U.value_and_grad(_loss)(nets[1], *_args(other))
                opts[1].step()
        for pname, p in nets[0].params().items():
            assert_close(
                nets[1].params()[pname].numpy(),
                p.numpy(),
                f"{pname} after step {step + 1} on {other.name}",
                rtol=RTOL_F32,
                atol=1e-6,
            )
