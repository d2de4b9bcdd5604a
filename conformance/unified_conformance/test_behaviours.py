"""Behaviours of SPEC 5-8 that users rely on, each against the float64 oracle.

Every trajectory runs a net of two children (parameters ``0.w``, ``0.v``, ``1.w``,
``1.v``) on the loss ``sum(a*w) + 0.5*sum(b*w*w)`` per parameter, whose gradient the
oracle knows (``a + b*w``), eagerly (``value_and_grad`` + ``opt.step()``) and through
``Trainer`` (one compiled step on a jit backend), and compares every parameter with
:mod:`oracle` after every step at rtol 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import unified as U
from unified import ops

from . import oracle
from .helpers import RTOL_F32, assert_close, host, native

STEPS = 10
SHAPES = {"0.w": (3, 4), "0.v": (4,), "1.w": (3, 4), "1.v": (4,)}
RNG = np.random.default_rng(2026)
INIT = {k: RNG.uniform(-1, 1, s).astype(np.float32) for k, s in SHAPES.items()}
COEF_A = {k: RNG.uniform(-1, 1, s) for k, s in SHAPES.items()}
COEF_B = {k: RNG.uniform(0.5, 1.5, s) for k, s in SHAPES.items()}
MODES = pytest.mark.parametrize("trainer", [False, True], ids=["eager", "trainer"])


class Leaf(U.Net):
    def __init__(self) -> None:
        super().__init__()
        self.w = U.Parameter("w", (3, 4))
        self.v = U.Parameter("v", (4,))


def _model() -> U.Sequential:
    net = U.Sequential(Leaf(), Leaf())
    net.initialize()
    for name, p in net.params().items():
        p.set_data(INIT[name])
    return net


def quad_loss(net: Any, a: dict[str, Any], b: dict[str, Any]) -> Any:
    total: Any = 0.0
    for name, p in net.params().items():
        w = p.data()
        term = ops.add(
            ops.sum(ops.multiply(a[name], w)),
            ops.multiply(ops.sum(ops.multiply(b[name], ops.square(w))), 0.5),
        )
        total = ops.add(total, term)
    return total


def _grad(name: str, w: np.ndarray) -> np.ndarray:
    return COEF_A[name] + COEF_B[name] * w


Rule = Callable[..., np.ndarray]  # (name, w, g, state, lr_mult, wd_mult) -> new w


class Run:
    """A unified net and optimizer stepped side by side with the oracle."""

    def __init__(
        self,
        backend: Any,
        make_opt: Callable[[Any], Any],
        rule: Rule,
        trainer: bool,
        model: Callable[[], Any] = _model,
    ) -> None:
        self.backend, self.rule, self.use_trainer = backend, rule, trainer
        self.a = {k: native(backend, v) for k, v in COEF_A.items()}
        self.b = {k: native(backend, v) for k, v in COEF_B.items()}
        net = model()
        self.ref = {k: INIT[k].astype(np.float64) for k in net.params()}
        self.states: dict[str, dict[str, Any]] = {k: {} for k in SHAPES}
        self.mults: dict[str, dict[str, float]] = {k: {} for k in SHAPES}
        self.frozen: set[str] = set()
        self.steps = 0
        self.use(net, make_opt)

    def use(self, net: Any, make_opt: Callable[[Any], Any]) -> None:
        """Continue with ``net`` and ``make_opt(net)`` (e.g. a restored twin)."""
        self.net = net
        self.opt = make_opt(net)
        self.trainer = U.Trainer(net, self.opt) if self.use_trainer else None

    def set(self, name: str, attr: str, value: Any) -> None:
        """Set a parameter attribute on the net and in the oracle."""
        setattr(self.net.params()[name], attr, value)
        if attr == "frozen":
            (self.frozen.add if value else self.frozen.discard)(name)
        else:
            self.mults[name][attr] = value

    def unified_step(self) -> None:
        if self.trainer is not None:
            self.trainer.step(quad_loss, self.a, self.b)
        else:
            U.value_and_grad(quad_loss)(self.net, self.a, self.b)
            self.opt.step()

    def step(self, count: int = 1) -> None:
        for _ in range(count):
            self.unified_step()
            self.steps += 1
            for name in self.ref:
                if name not in self.frozen:
                    g = _grad(name, self.ref[name])
                    self.ref[name] = self.rule(
                        name, self.ref[name], g, self.states[name], **self.mults[name]
                    )
            self.check()

    def check(self) -> None:
        for name, value in self.ref.items():
            assert_close(
                self.net.params()[name].numpy(),
                value,
                f"{name} after step {self.steps}",
                rtol=RTOL_F32,
            )


# Each optimizer: a constructor over a params argument and its oracle rule with the
# same options. Options differ from the defaults so that a lost option shows.
OPTIMIZERS: dict[str, tuple[Callable[[Any], Any], Rule]] = {
    "sgd": (
        lambda p: U.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.2),
        lambda k, w, g, s, **m: oracle.sgd(
            w, g, s, 0.1, momentum=0.9, dampening=0.1, wd=0.2, **m
        ),
    ),
    "adam": (
        lambda p: U.Adam(p, lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.2),
        lambda k, w, g, s, **m: oracle.adam(
            w, g, s, 0.05, betas=(0.8, 0.95), eps=1e-3, wd=0.2, **m
        ),
    ),
    "adamw": (
        lambda p: U.AdamW(p, lr=0.05, betas=(0.85, 0.9), eps=1e-4, weight_decay=0.3),
        lambda k, w, g, s, **m: oracle.adam(
            w, g, s, 0.05, betas=(0.85, 0.9), eps=1e-4, wd=0.3, decoupled=True, **m
        ),
    ),
    "rmsprop": (
        lambda p: U.RMSProp(
            p, lr=0.01, alpha=0.9, eps=1e-3, momentum=0.5, weight_decay=0.2
        ),
        lambda k, w, g, s, **m: oracle.rmsprop(
            w, g, s, 0.01, alpha=0.9, eps=1e-3, momentum=0.5, wd=0.2, **m
        ),
    ),
}


def _whole(net: Any) -> Any:
    return net.params()


# -- lr_mult and wd_mult --
@MODES
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_lr_mult_is_honoured_and_can_change_mid_run(backend, name, trainer):
    """S2.3/S6.1: the effective lr is lr * lr_mult for every optimizer, read at
    every step; lr_mult = 0 leaves the weight unchanged."""
    make_opt, rule = OPTIMIZERS[name]
    run = Run(backend, lambda n: make_opt(n.params()), rule, trainer)
    run.set("0.w", "lr_mult", 0.5)
    run.set("1.v", "lr_mult", 0.0)
    run.step(4)
    run.set("0.w", "lr_mult", 2.0)
    run.set("1.w", "lr_mult", 3.0)
    run.step(STEPS - 4)
    np.testing.assert_array_equal(run.net.params()["1.v"].numpy(), INIT["1.v"])


@MODES
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_wd_mult_is_a_multiplier(backend, name, trainer):
    """S2.3/S6.1: the decay is wd * wd_mult (0.5 and 2.0 scale it; AdamW decays
    w * (1 - lr*lr_mult*wd*wd_mult)), also when changed mid-run."""
    make_opt, rule = OPTIMIZERS[name]
    run = Run(backend, lambda n: make_opt(n.params()), rule, trainer)
    run.set("0.w", "wd_mult", 0.5)
    run.set("1.w", "wd_mult", 2.0)
    run.set("1.v", "lr_mult", 0.5)
    run.set("1.v", "wd_mult", 2.0)
    run.step(5)
    run.set("0.w", "wd_mult", 2.0)
    run.set("0.v", "wd_mult", 0.5)
    run.set("1.w", "wd_mult", 5.0)  # wd * wd_mult == 1.0 exactly: still decays
    run.step(STEPS - 5)


# -- lr_groups --
def test_lr_groups_match_whole_names(backend):
    """S1.2/S6.2: lr_groups patterns use re.fullmatch: "0\\..*" selects child 0."""
    net = _model()
    groups = U.lr_groups(net, {"0\\..*": 0.5})
    assert [(list(g["params"]), g.get("lr")) for g in groups] == [
        (["0.w", "0.v"], 0.5),
        (["1.w", "1.v"], None),
    ]
    assert list(net.params("0")) == [] and list(net.params("0\\..*")) == ["0.w", "0.v"]
    try:  # "0" is a prefix of "0.w", not a full match: it selects nothing
        prefix_groups = U.lr_groups(net, {"0": 0.5})
    except ValueError:  # SPEC 11: and says so
        prefix_groups = []
    assert all(g.get("lr") != 0.5 for g in prefix_groups), "'0' selected 0.w"


def test_lr_groups_pattern_matching_a_prefix_selects_nothing_and_raises():
    """S1.2/S11: a pattern matching only the start of a name ("0" for "0.w",
    "encoder" for "encoder.0.w") selects nothing, and a pattern that selects nothing
    raises ValueError naming it. (Names only: no backend is needed.)"""
    net = U.Sequential(Leaf(), Leaf())
    for pattern in ("0", "0.w.*x", "w", "encoder"):
        with pytest.raises(ValueError) as err:
            U.lr_groups(net, {pattern: 0.5, "1\\..*": 0.1})
        assert repr(pattern) in str(err.value) or pattern in str(err.value)


@MODES
def test_lr_groups_trajectory(backend, trainer):
    """S6.2: parameters of a group step with its lr, the rest with the base lr."""

    def rule(k, w, g, s, **m):
        return oracle.adam(w, g, s, 0.2 if k.startswith("1.") else 0.02, **m)

    run = Run(
        backend,
        lambda n: U.Adam(U.lr_groups(n, {"1\\..*": 0.2}), lr=0.02),
        rule,
        trainer,
    )
    run.step(STEPS)


# -- stale gradients --
def test_unfreezing_never_revives_a_stale_gradient(backend):
    """S5.3/S6.3: accumulate, freeze, accumulate, unfreeze: the gradient is zeros,
    the next call adds exactly one contribution, and a step right after unfreezing
    applies no pre-freeze gradient."""
    a = {k: native(backend, v) for k, v in COEF_A.items()}
    b = {k: native(backend, v) for k, v in COEF_B.items()}
    accumulate = U.value_and_grad(quad_loss, accumulate=True)
    for then_step in (False, True):
        net = _model()
        opt = U.SGD(net.params(), lr=0.1)
        accumulate(net, a, b)
        accumulate(net, a, b)
        p = net.params()["0.w"]
        assert_close(host(backend, p.grad()), 2 * _grad("0.w", INIT["0.w"]), "2 calls")
        p.frozen = True
        accumulate(net, a, b)
        p.frozen = False
        np.testing.assert_array_equal(host(backend, p.grad()), np.zeros((3, 4)))
        if then_step:
            opt.step()
            np.testing.assert_array_equal(p.numpy(), INIT["0.w"])
        else:
            accumulate(net, a, b)
            assert_close(host(backend, p.grad()), _grad("0.w", INIT["0.w"]), "1 call")


def test_unfreezing_after_trainer_steps_revives_no_gradient(backend):
    """S5.3/S6.3 through Trainer: step, freeze, step, unfreeze: the gradient is
    zeros, opt.step() leaves the weight, and the next Trainer step is one oracle
    step."""
    run = Run(backend, lambda n: U.SGD(n.params(), lr=0.1), _plain_sgd, True)
    run.step()
    run.set("0.w", "frozen", True)
    run.step()
    run.set("0.w", "frozen", False)
    p = run.net.params()["0.w"]
    np.testing.assert_array_equal(host(backend, p.grad()), np.zeros((3, 4)))
    before = p.numpy()
    run.opt.step()  # every other parameter takes its own last gradient again
    np.testing.assert_array_equal(p.numpy(), before)
    for name in ("0.v", "1.w", "1.v"):
        run.ref[name] = run.ref[name] - 0.1 * _grad_before(run, name)
    run.check()
    run.step()


def _plain_sgd(k, w, g, s, **m):
    return oracle.sgd(w, g, s, 0.1, **m)


def _grad_before(run: Run, name: str) -> np.ndarray:
    """The gradient of the last step: at the value before it (SGD: w + 0.1 g)."""
    # w_now = w_prev - 0.1 * (a + b w_prev)  =>  w_prev = (w_now + 0.1 a)/(1 - 0.1 b)
    w_prev = (run.ref[name] + 0.1 * COEF_A[name]) / (1 - 0.1 * COEF_B[name])
    return _grad(name, w_prev)


# -- optimizer state: restore, re-tie, refuse ------------------------------------------
GROUP_OPTIONS = {
    "sgd": ("momentum", "dampening", "nesterov", "weight_decay"),
    "adam": ("betas", "eps", "weight_decay", "amsgrad"),
    "adamw": ("betas", "eps", "weight_decay", "amsgrad"),
    "rmsprop": ("alpha", "eps", "momentum", "centered", "weight_decay"),
}


def _two_groups(name: str) -> Callable[[Any], Any]:
    """Group 0 (child 0) with the optimizer's options, group 1 with lr 0.03."""
    make_opt, _ = OPTIMIZERS[name]
    return lambda n: make_opt(
        [{"params": n.params("0\\..*")}, {"params": n.params("1\\..*"), "lr": 0.03}]
    )


def _plain(name: str) -> Callable[[Any], Any]:
    """The same optimizer class built with its defaults (every option differs)."""
    cls = type(OPTIMIZERS[name][0](_model().params()))
    return lambda n: cls(
        [{"params": n.params("0\\..*")}, {"params": n.params("1\\..*")}], lr=0.5
    )


def _normal(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


@MODES
@pytest.mark.parametrize("via", ["state_dict", "checkpoint"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_restoring_state_restores_every_group_option(
    backend, name, via, trainer, tmp_path
):
    """S6.5/S8.1: load_state_dict (directly, or through net.save(path, optimizer=)
    and load) restores every group option, lr after it was changed included, and
    training continues on the oracle's trajectory."""
    _, base_rule = OPTIMIZERS[name]
    lr = {"0": 1.0, "1": 1.0}  # lr multiplier relative to each group's lr at build

    def rule(k, w, g, s, **m):
        group_lr = 1.0 if k.startswith("0.") else 0.03 / _base_lr(name)
        return base_rule(k, w, g, s, lr_mult=group_lr * lr[k[0]], **m)

    run = Run(backend, _two_groups(name), rule, trainer)
    run.step(3)
    run.opt.param_groups[0]["lr"] *= 0.5
    run.opt.param_groups[1]["lr"] = 0.01
    lr["0"], lr["1"] = 0.5, 0.01 / 0.03
    run.step(2)
    saved_groups = [dict(g) for g in run.opt.param_groups]
    twin = U.Sequential(Leaf(), Leaf())
    twin.initialize()
    if via == "state_dict":
        for k, p in run.net.params().items():
            twin.params()[k].set_data(p.numpy())
        state = run.opt.state_dict()
        run.use(twin, _plain(name))
        run.opt.load_state_dict(state)
    else:
        path = tmp_path / "ckpt.safetensors"
        run.net.save(path, optimizer=run.opt)
        run.use(twin, _plain(name))
        twin.load(path, optimizer=run.opt)
    for mine, saved in zip(run.opt.param_groups, saved_groups):
        for option in ("lr", *GROUP_OPTIONS[name]):
            assert _normal(mine[option]) == _normal(saved[option]), option
    run.check()
    run.step(STEPS - 5)


def _base_lr(name: str) -> float:
    return float(OPTIMIZERS[name][0](_model().params()).lr)


def _tied_model() -> U.Sequential:
    net = _model()
    U.share(net[1], net[0])  # 1.w and 1.v are 0.w and 0.v
    return net


@MODES
def test_load_that_reties_leaves_the_optimizer_with_the_nets_parameters(
    backend, trainer, tmp_path
):
    """S7.1/S8.1: after load(path, optimizer=opt) re-ties parameters, the optimizer
    holds exactly the net's parameters (the replaced ones and their state gone),
    and training, through Trainer too, continues on the oracle's trajectory."""
    make_opt, rule = OPTIMIZERS["adam"]
    run = Run(backend, lambda n: make_opt(n.params()), rule, trainer, _tied_model)
    assert list(run.ref) == ["0.w", "0.v"]
    run.step(3)
    path = tmp_path / "tied.safetensors"
    run.net.save(path, optimizer=run.opt)
    untied = _model()
    opt = make_opt(untied.params())
    U.value_and_grad(quad_loss)(untied, run.a, run.b)
    opt.step()  # 1.w and 1.v now have state of their own
    replaced = [untied[1].w, untied[1].v]
    untied.load(path, optimizer=opt)
    assert untied[1].w is untied[0].w and untied[1].v is untied[0].v
    held = [p for g in opt.param_groups for p in g["params"]]
    assert [id(p) for p in held] == [id(p) for p in untied.params().values()]
    assert all(id(p) not in opt.state for p in replaced)
    assert sorted(opt.state_dict()["state"]) == ["0.v", "0.w"]
    run.use(untied, lambda n: opt)
    run.check()
    run.step(4)


def _rewrite(path: Any, key: str, value: np.ndarray) -> None:
    """Replace one tensor of a checkpoint, keeping its metadata."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors[key] = value
    save_file(tensors, str(path), metadata=meta)


def _snapshot(opt: Any) -> dict[str, Any]:
    state = opt.state_dict()
    return {
        "groups": [
            {k: _normal(v) for k, v in g.items()} for g in state["param_groups"]
        ],
        "state": state["state"],
    }


@pytest.mark.parametrize("via", ["state_dict", "checkpoint"])
def test_wrong_shape_optimizer_state_is_refused(backend, via, tmp_path):
    """S6.5/S8.2: optimizer state of the wrong shape raises CheckpointError naming
    name.key and both shapes; the optimizer state (and the net) are unchanged."""
    a = {k: native(backend, v) for k, v in COEF_A.items()}
    b = {k: native(backend, v) for k, v in COEF_B.items()}
    source, target = _model(), _model()
    src_opt = U.Adam(source.params(), lr=0.05)
    opt = U.Adam(target.params(), lr=0.01, betas=(0.5, 0.6))
    for net, o in ((source, src_opt), (source, src_opt), (target, opt)):
        U.value_and_grad(quad_loss)(net, a, b)
        o.step()
    before = _snapshot(opt)
    values = {k: p.numpy() for k, p in target.params().items()}
    wrong = np.zeros((4, 3), np.float32)  # same size, other shape
    with pytest.raises(U.CheckpointError) as err:
        if via == "state_dict":
            state = src_opt.state_dict()
            state["state"]["0.w"]["exp_avg"] = wrong
            opt.load_state_dict(state)
        else:
            path = tmp_path / "bad.safetensors"
            source.save(path, optimizer=src_opt)
            _rewrite(path, "__optimizer__/0.w/exp_avg", wrong)
            target.load(path, optimizer=opt)
    msg = str(err.value)
    assert "0.w.exp_avg" in msg and "(3, 4)" in msg and "(4, 3)" in msg, msg
    after = _snapshot(opt)
    assert after["groups"] == before["groups"]
    assert sorted(after["state"]) == sorted(before["state"])
    for name, entry in before["state"].items():
        assert after["state"][name]["step"] == entry["step"] == 1
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(after["state"][name][key], entry[key])
    for name, p in target.params().items():
        np.testing.assert_array_equal(p.numpy(), values[name])
