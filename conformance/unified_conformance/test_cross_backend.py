"""Every backend against the NumPy reference and the float64 oracle.

Initial weights must be bitwise equal to each other and to the SPEC 3 formula drawn
here from the Philox stream; outputs and gradients agree with each other within
float32 tolerance and with the hand-derived float64 MLP; 10-step optimizer
trajectories agree with each other within rtol 1e-5 and with the float64 oracle
(its own float64 gradients and torch.optim's formulas) within rtol 1e-4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import unified as U

from . import oracle
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


def _formula_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """The initial values of ``_build`` from SPEC 3, independently of unified.init."""

    def draw(name, shape, fill):
        return fill(oracle.stream(seed, 0, name), shape).astype(np.float32)

    xavier = math.sqrt(3 / ((16 + 16) / 2))  # Xavier(): uniform, avg, magnitude 3
    kaiming = math.sqrt(2) / math.sqrt(16)  # kaiming_normal(): leaky_relu a=0, fan_in
    return {
        "0.weight": draw("0.weight", (16, 12), lambda r, s: r.uniform(-0.07, 0.07, s)),
        "0.bias": np.zeros(16, np.float32),
        "1.weight": draw(
            "1.weight", (16, 16), lambda r, s: r.uniform(-xavier, xavier, s)
        ),
        "1.bias": np.zeros(16, np.float32),
        "2.weight": draw("2.weight", (5, 16), lambda r, s: r.normal(0, kaiming, s)),
        "2.bias": np.zeros(5, np.float32),
    }


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred", "eager"])
def test_initial_weights_equal_the_formula(backend, deferred):
    """S3.3: every backend draws exactly the SPEC 3 formula (Philox keyed by seed,
    epoch and name), for Uniform, Xavier and kaiming_normal."""
    net = _build(backend, deferred=deferred)
    want = _formula_weights()
    assert list(net.params()) == list(want)
    for name, p in net.params().items():
        assert_bitwise(p.numpy(), want[name], f"{name} on {backend.name}")


ACTS = ("relu", "tanh", None)


def _oracle_loss_and_grads(weights: dict[str, np.ndarray]):
    """Float64 loss and gradients of ``_loss`` by hand-derived backprop."""
    layers = [
        (weights[f"{i}.weight"], weights[f"{i}.bias"], a) for i, a in enumerate(ACTS)
    ]
    out, cache = oracle.mlp_forward(X, layers)
    loss, g_out = oracle.softmax_xent(out, Y)
    grads = oracle.mlp_backward(layers, cache, g_out)
    named = {}
    for i, (dw, db) in enumerate(grads):
        named[f"{i}.weight"], named[f"{i}.bias"] = dw, db
    return out, loss, named


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
    want_out, want_loss, want_grads = _oracle_loss_and_grads(_formula_weights())
    for table, (out, loss, grads) in zip((ref, other), results):
        assert_close(out, want_out, f"output on {table.name} vs oracle", rtol=1e-5)
        assert_close(loss, want_loss, f"loss on {table.name} vs oracle")
        for name, g in want_grads.items():
            assert_close(
                grads[name], g, f"grad {name} on {table.name} vs oracle", rtol=1e-4
            )
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


ORACLE_RULES = {
    "sgd-momentum": lambda w, g, s: oracle.sgd(w, g, s, 0.05, momentum=0.9, wd=1e-3),
    "sgd-nesterov": lambda w, g, s: oracle.sgd(
        w, g, s, 0.05, momentum=0.9, nesterov=True
    ),
    "adam": lambda w, g, s: oracle.adam(w, g, s, 1e-2),
    "adamw-amsgrad": lambda w, g, s: oracle.adam(
        w, g, s, 1e-2, wd=1e-2, amsgrad=True, decoupled=True
    ),
    "rmsprop-centered": lambda w, g, s: oracle.rmsprop(
        w, g, s, 1e-3, centered=True, momentum=0.5
    ),
}
ORACLE_RTOL, ORACLE_ATOL = 1e-4, 1e-5  # float32 training vs a float64 one, 10 steps

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
    want = {k: v.astype(np.float64) for k, v in _formula_weights().items()}
    states: dict[str, dict] = {k: {} for k in want}
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
        grads = _oracle_loss_and_grads(want)[2]
        for pname in want:
            want[pname] = ORACLE_RULES[name](want[pname], grads[pname], states[pname])
        for net, table in zip(nets, (ref, other)):
            for pname, p in net.params().items():
                assert_close(
                    p.numpy(),
                    want[pname],
                    f"{pname} after step {step + 1} on {table.name} vs oracle",
                    rtol=ORACLE_RTOL,
                    atol=ORACLE_ATOL,
                )
        for pname, p in nets[0].params().items():
            assert_close(
                nets[1].params()[pname].numpy(),
                p.numpy(),
                f"{pname} after step {step + 1} on {other.name}",
                rtol=RTOL_F32,
                atol=1e-6,
            )
