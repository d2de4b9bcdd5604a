"""SPEC 6: optimizers follow torch.optim's formulas, checked against a float64 oracle.

The loss is ``sum(a*w) + 0.5*sum(b*w*w)`` per parameter, so the oracle's gradient is
``a + b*w``; every trajectory is compared step by step for 10 steps at rtol 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import unified as U

from . import oracle
from .helpers import RTOL_F32, assert_close, native

STEPS = 10
RNG = np.random.default_rng(7)
INIT = {
    "w": RNG.uniform(-1, 1, (3, 4)).astype(np.float32),
    "v": RNG.uniform(-1, 1, (4,)).astype(np.float32),
}
COEF_A = {k: RNG.uniform(-1, 1, v.shape) for k, v in INIT.items()}
COEF_B = {k: RNG.uniform(0.5, 1.5, v.shape) for k, v in INIT.items()}


class Quad(U.Net):
    def __init__(self) -> None:
        super().__init__()
        self.w = U.Parameter("w", (3, 4))
        self.v = U.Parameter("v", (4,))


def _loss(uses: dict[str, int]) -> Callable[..., Any]:
    """Loss using parameter k ``uses[k]`` times (0: not reached, 2: used twice)."""

    def loss(net, a, b):
        total = 0.0
        for name, count in uses.items():
            w = getattr(net, name).data()
            term = U.ops.add(
                U.ops.sum(U.ops.multiply(a[name], w)),
                U.ops.multiply(
                    U.ops.sum(U.ops.multiply(b[name], U.ops.square(w))), 0.5
                ),
            )
            for _ in range(count):
                total = U.ops.add(total, term)
        return total

    return loss


def _net(backend):
    net = Quad()
    net.initialize()
    for name, value in INIT.items():
        net.params()[name].set_data(value)
    return net


def _oracle_grad(name: str, w: np.ndarray, uses: dict[str, int]) -> np.ndarray:
    return uses.get(name, 0) * (COEF_A[name] + COEF_B[name] * w)


def _run(backend, make_opt, oracle_step, uses=None, before_step=None, trainer=False):
    """Run unified and the oracle side by side; compare after every step.

    With ``trainer=True`` each step is ``Trainer.step`` (one compiled function on a
    jit backend) instead of ``value_and_grad`` followed by ``opt.step()``.
    """
    uses = uses or {"w": 1, "v": 1}
    net = _net(backend)
    opt = make_opt(net)
    a = {k: native(backend, v) for k, v in COEF_A.items()}
    b = {k: native(backend, v) for k, v in COEF_B.items()}
    loss = _loss(uses)
    grad_fn = U.value_and_grad(loss)
    runner = U.Trainer(net, opt) if trainer else None
    ref = {k: v.astype(np.float64) for k, v in INIT.items()}
    states: dict[str, dict[str, Any]] = {k: {} for k in ref}
    settings: dict[str, Any] = {"frozen": set(), "lr_mult": {}, "lr": None}
    for step in range(1, STEPS + 1):
        if before_step is not None:
            before_step(step, net, opt, settings)
        if runner is not None:
            runner.step(loss, a, b)
        else:
            grad_fn(net, a, b)
            opt.step()
        for name in ref:
            if name in settings["frozen"]:
                continue
            g = _oracle_grad(name, ref[name], uses)
            ref[name] = oracle_step(name, ref[name], g, states[name], step, settings)
        for name, value in ref.items():
            assert_close(
                net.params()[name].numpy(),
                value,
                f"{name} after step {step}",
                rtol=RTOL_F32,
            )
    return net


def _lr(settings, name, base):
    lr = settings["lr"] if settings["lr"] is not None else base
    return lr * settings["lr_mult"].get(name, 1.0)


CASES = {
    "sgd": (
        lambda n: U.SGD(n.params(), lr=0.1),
        lambda k, w, g, s, t, o: oracle.sgd(w, g, s, _lr(o, k, 0.1)),
    ),
    "sgd-momentum-dampening": (
        lambda n: U.SGD(n.params(), lr=0.1, momentum=0.9, dampening=0.1),
        lambda k, w, g, s, t, o: oracle.sgd(w, g, s, 0.1, momentum=0.9, dampening=0.1),
    ),
    "sgd-nesterov-weight-decay": (
        lambda n: U.SGD(
            n.params(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1
        ),
        lambda k, w, g, s, t, o: oracle.sgd(
            w, g, s, 0.05, momentum=0.9, nesterov=True, wd=0.1
        ),
    ),
    "adam-eps-0.1": (
        lambda n: U.Adam(n.params(), lr=0.05, eps=0.1),
        lambda k, w, g, s, t, o: oracle.adam(w, g, s, 0.05, eps=0.1),
    ),
    "adam-amsgrad-weight-decay": (
        lambda n: U.Adam(
            n.params(), lr=0.05, betas=(0.8, 0.9), amsgrad=True, weight_decay=0.05
        ),
        lambda k, w, g, s, t, o: oracle.adam(
            w, g, s, 0.05, betas=(0.8, 0.9), amsgrad=True, wd=0.05
        ),
    ),
    "adamw": (
        lambda n: U.AdamW(n.params(), lr=0.05, weight_decay=0.1),
        lambda k, w, g, s, t, o: oracle.adam(w, g, s, 0.05, wd=0.1, decoupled=True),
    ),
    "rmsprop-eps-1e-2": (
        lambda n: U.RMSProp(n.params(), lr=0.01, eps=1e-2),
        lambda k, w, g, s, t, o: oracle.rmsprop(w, g, s, 0.01, eps=1e-2),
    ),
    "rmsprop-centered-momentum-wd": (
        lambda n: U.RMSProp(
            n.params(),
            lr=0.01,
            alpha=0.9,
            momentum=0.5,
            centered=True,
            weight_decay=0.01,
        ),
        lambda k, w, g, s, t, o: oracle.rmsprop(
            w, g, s, 0.01, alpha=0.9, momentum=0.5, centered=True, wd=0.01
        ),
    ),
}


MODES = pytest.mark.parametrize("trainer", [False, True], ids=["eager", "trainer"])


@MODES
@pytest.mark.parametrize("case", sorted(CASES))
def test_trajectory_matches_oracle(backend, case, trainer):
    """S6.1: 10-step trajectories equal torch.optim's formulas (float64) at
    rtol 1e-5, eagerly and through Trainer (compiled on jit backends)."""
    make_opt, step = CASES[case]
    _run(backend, make_opt, step, trainer=trainer)


def test_lr_is_required(backend):
    """S6.1: lr has no default."""
    with pytest.raises(TypeError):
        U.SGD(_net(backend).params())  # type: ignore[call-arg]


@MODES
def test_lr_and_lr_mult_changed_between_steps(backend, trainer):
    """S6.1: momentum SGD honours lr and lr_mult changed after the optimizer was
    built."""

    def before(step, net, opt, settings):
        if step == 4:
            opt.lr = settings["lr"] = 0.02
        if step == 6:
            net.w.lr_mult = 3.0
            settings["lr_mult"]["w"] = 3.0

    _run(
        backend,
        lambda n: U.SGD(n.params(), lr=0.1, momentum=0.9),
        lambda k, w, g, s, t, o: oracle.sgd(w, g, s, _lr(o, k, 0.1), momentum=0.9),
        before_step=before,
        trainer=trainer,
    )


@MODES
def test_wd_mult_scales_weight_decay(backend, trainer):
    """S2.3/S6.1: weight decay is wd * wd_mult (biases included; 0 turns it off)."""

    def before(step, net, opt, settings):
        if step == 1:
            net.v.wd_mult = 0.0

    _run(
        backend,
        lambda n: U.SGD(n.params(), lr=0.1, weight_decay=0.5),
        lambda k, w, g, s, t, o: oracle.sgd(w, g, s, 0.1, wd=0.5 if k == "w" else 0.0),
        before_step=before,
        trainer=trainer,
    )


@MODES
def test_frozen_parameter_with_momentum_and_decay_does_not_move(backend, trainer):
    """S6.3: a frozen parameter is skipped entirely; its state is kept for
    unfreezing."""

    def before(step, net, opt, settings):
        if step == 4:
            net.w.frozen = True
            settings["frozen"].add("w")
        if step == 8:
            net.w.frozen = False
            settings["frozen"].discard("w")

    _run(
        backend,
        lambda n: U.Adam(n.params(), lr=0.05, weight_decay=0.5),
        lambda k, w, g, s, t, o: oracle.adam(w, g, s, 0.05, wd=0.5),
        before_step=before,
        trainer=trainer,
    )
    net = _net(backend)
    opt = U.SGD(net.params(), lr=0.1, momentum=0.9, weight_decay=0.5)
    a = {k: native(backend, v) for k, v in COEF_A.items()}
    b = {k: native(backend, v) for k, v in COEF_B.items()}
    U.value_and_grad(_loss({"w": 1, "v": 1}))(net, a, b)
    opt.step()
    net.w.frozen = True
    frozen_value = net.w.numpy()
    for _ in range(3):
        U.value_and_grad(_loss({"w": 1, "v": 1}))(net, a, b)
        opt.step()
    np.testing.assert_array_equal(net.w.numpy(), frozen_value)


@MODES
def test_shared_parameter_used_twice(backend, trainer):
    """S6.2/S7.1: used twice, the gradient is the sum and the update happens once."""
    _run(
        backend,
        lambda n: U.SGD(n.params(), lr=0.05, momentum=0.5),
        lambda k, w, g, s, t, o: oracle.sgd(w, g, s, 0.05, momentum=0.5),
        uses={"w": 2, "v": 1},
        trainer=trainer,
    )


@MODES
def test_parameter_the_loss_does_not_reach_is_stepped(backend, trainer):
    """S6.4: a trainable parameter with zero gradient is still stepped (decay
    applies)."""
    _run(
        backend,
        lambda n: U.SGD(n.params(), lr=0.1, momentum=0.9, weight_decay=0.1),
        lambda k, w, g, s, t, o: oracle.sgd(w, g, s, 0.1, momentum=0.9, wd=0.1),
        uses={"w": 1},
        trainer=trainer,
    )


def test_parameter_passed_twice_is_updated_once(backend):
    """S6.2: a parameter in two groups (or listed twice) is updated once."""
    _run(
        backend,
        lambda n: U.Adam(
            [n.params(), n.params("w"), {"params": n.params("v")}], lr=0.05
        ),
        lambda k, w, g, s, t, o: oracle.adam(w, g, s, 0.05),
    )


def test_lr_groups_first_match_wins(backend):
    """S6.2: lr_groups builds groups from patterns; unmatched keep the base lr."""
    net = _net(backend)
    groups = U.lr_groups(net, {"w": 0.5, "[wv]": 0.25})
    assert [(list(g["params"]), g.get("lr")) for g in groups] == [
        (["w"], 0.5),
        (["v"], 0.25),
    ]
    assert [list(g["params"]) for g in U.lr_groups(net, {"w": 0.5})] == [["w"], ["v"]]

    def lr(k):
        return 0.5 if k == "w" else 0.1

    _run(
        backend,
        lambda n: U.SGD(U.lr_groups(n, {"w": 0.5}), lr=0.1, momentum=0.9),
        lambda k, w, g, s, t, o: oracle.sgd(w, g, s, lr(k), momentum=0.9),
    )


def test_state_dict_round_trip_continues_identically(backend):
    """S6.5: optimizer state is keyed by name and can be saved and restored."""
    a = {k: native(backend, v) for k, v in COEF_A.items()}
    b = {k: native(backend, v) for k, v in COEF_B.items()}
    loss = U.value_and_grad(_loss({"w": 1, "v": 1}))
    net = _net(backend)
    opt = U.Adam(net.params(), lr=0.05)
    for _ in range(3):
        loss(net, a, b)
        opt.step()
    saved = opt.state_dict()
    assert set(saved["state"]) == {"w", "v"} and saved["state"]["w"]["step"] == 3
    twin = _net(backend)
    for name, p in net.params().items():
        twin.params()[name].set_data(p.numpy())
    twin_opt = U.Adam(twin.params(), lr=0.05)
    twin_opt.load_state_dict(saved)
    for _ in range(3):
        loss(net, a, b)
        opt.step()
        loss(twin, a, b)
        twin_opt.step()
    for name, p in net.params().items():
        np.testing.assert_array_equal(twin.params()[name].numpy(), p.numpy())


@MODES
def test_group_options_override_defaults(backend, trainer):
    """S6.2: a group dict's lr and weight_decay override the optimizer's."""

    def step(k, w, g, s, t, o):
        if k == "w":
            return oracle.sgd(w, g, s, 0.05, momentum=0.9, wd=0.2)
        return oracle.sgd(w, g, s, 0.1, momentum=0.9)

    _run(
        backend,
        lambda n: U.SGD(
            [
                {"params": n.params("w"), "lr": 0.05, "weight_decay": 0.2},
                {"params": n.params("v")},
            ],
            lr=0.1,
            momentum=0.9,
        ),
        step,
        trainer=trainer,
    )


def test_state_names_must_be_unique(backend):
    """S6.5: two parameters with one name would lose state: an error suggests
    prefixes."""
    gen, disc = _net(backend), _net(backend)
    with pytest.raises(U.StructureError, match="prefix"):
        U.Adam([gen.params(), disc.params()], lr=0.1)
    opt = U.Adam(
        [
            {"params": gen.params(), "prefix": "gen."},
            {"params": disc.params(), "prefix": "disc."},
        ],
        lr=0.1,
    )
    a = {k: native(backend, v) for k, v in COEF_A.items()}
    b = {k: native(backend, v) for k, v in COEF_B.items()}
    for net in (gen, disc):
        U.value_and_grad(_loss({"w": 1, "v": 1}))(net, a, b)
    opt.step()
    assert sorted(opt.state_dict()["state"]) == ["disc.v", "disc.w", "gen.v", "gen.w"]


def test_bare_parameters_are_named_structurally(backend):
    """S6.5: parameters given before initialize() are saved under structural names."""
    net = U.Sequential(U.Dense(2, in_units=2), U.Dense(2, in_units=2))
    opt = U.SGD([net[0].weight, net[1].weight], lr=0.1, momentum=0.9)
    net.initialize()
    x = native(backend, np.ones((1, 2)))
    U.value_and_grad(lambda n, x: U.ops.sum(n(x)))(net, x)
    opt.step()
    saved = opt.state_dict()
    assert sorted(saved["state"]) == ["0.weight", "1.weight"]
    opt.load_state_dict(saved)


def test_invalid_optimizer_arguments_raise_clearly(backend):
    """S6/S9: a misspelled group option, betas that are not a pair, the net instead
    of its parameters, and an lr_groups pattern that selects nothing all fail when
    the optimizer is made, naming the problem."""
    net = _net(backend)
    with pytest.raises(ValueError, match="unknown option.*momentun"):
        U.SGD([{"params": net.params(), "momentun": 0.9}], lr=0.1)
    with pytest.raises(ValueError, match="betas must be a pair"):
        U.Adam(net.params(), lr=0.1, betas=(0.9,))
    with pytest.raises(ValueError, match="betas"):
        U.Adam(net.params(), lr=0.1, betas=(0.9, 1.0))  # torch: 0 <= beta < 1
    with pytest.raises(ValueError, match="empty parameter list"):
        U.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="not the net itself"):
        U.SGD(net, lr=0.1)
    with pytest.raises(ValueError, match="'nope' selects no parameter"):
        U.lr_groups(net, {"nope": 0.1})
    assert U.optim.RMSprop is U.RMSProp  # torch.optim's spelling


def test_sgd_keeps_a_momentum_buffer_only_with_momentum(backend):
    """S6.5: as torch.optim.SGD, plain SGD has no momentum buffer in its state."""
    a = {k: native(backend, v) for k, v in COEF_A.items()}
    b = {k: native(backend, v) for k, v in COEF_B.items()}
    for momentum, keys in ((0.0, {"step"}), (0.9, {"step", "momentum_buffer"})):
        net = _net(backend)
        opt = U.SGD(net.params(), lr=0.1, momentum=momentum)
        U.value_and_grad(_loss({"w": 1, "v": 1}))(net, a, b)
        opt.step()
        assert {k: set(v) for k, v in opt.state_dict()["state"].items()} == {
            "w": keys,
            "v": keys,
        }


def test_state_of_a_different_group_layout_is_rejected(backend):
    """S6.5: state saved with two parameter groups does not load into one group."""
    net = _net(backend)
    two = U.SGD([{"params": net.params("w")}, {"params": net.params("v")}], lr=0.1)
    one = U.SGD(net.params(), lr=0.1)
    with pytest.raises(U.CheckpointError, match="2 parameter groups saved, 1 here"):
        one.load_state_dict(two.state_dict())
