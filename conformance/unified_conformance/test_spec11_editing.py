"""SPEC 11: editing parameters, PyTorch and Gluon habits, empty selections.

Written as users bring their habits from seeds 000-003: element writes, requires_grad,
torch-style parameter groups from two sub-nets, ``nn.init``-style functions.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

import unified as U
from unified_conformance.helpers import assert_close


class EncDec(U.Net):
    def __init__(self) -> None:
        super().__init__()
        self.enc = U.Dense(4, activation="relu")
        self.dec = U.Dense(2)

    def forward(self, x):
        return self.dec(self.enc(x))


def _model() -> EncDec:
    U.seed(1)
    m = EncDec()
    m.initialize()
    m.infer_shape((1, 3))
    return m


def _mse(net, x, y):
    d = net(x) - y
    return U.ops.mean(d * d)


X = np.random.default_rng(11).uniform(size=(4, 3))
Y = np.random.default_rng(12).uniform(size=(4, 2))


def test_element_writes_work_on_every_backend(backend):
    """S11.1: ``p[0, 0] = 100`` and ``p[:] += 1``, then re-read with data()."""
    m = _model()
    w = m.enc.weight
    before = w.numpy()
    w[0, 0] = 100
    w[:] += 1
    expected = before + 1
    expected[0, 0] = 101
    assert np.array_equal(w.numpy(), expected.astype(np.float32))
    assert np.array_equal(U.to_numpy(w.data()), expected.astype(np.float32))
    assert w[0, 0] == 101


def test_parameter_attributes_are_closed(backend):
    """S11.2: an unknown attribute (a typo) raises instead of being ignored."""
    m = _model()
    with pytest.raises(AttributeError):
        m.enc.weight.requires_gard = False  # typo of requires_grad


def test_requires_grad_false_freezes(backend):
    """S11.2: the PyTorch habit freezes: the weight keeps its value through training."""
    m = _model()
    m.enc.weight.requires_grad = False
    assert m.enc.weight.frozen and not m.enc.weight.requires_grad
    before = m.enc.weight.numpy()
    trainer = U.Trainer(m, U.SGD(m.params(), lr=0.5))
    for _ in range(3):
        trainer.step(_mse, X, Y)
    assert np.array_equal(m.enc.weight.numpy(), before)
    assert not np.array_equal(m.dec.weight.numpy(), _model().dec.weight.numpy())
    m.enc.weight.requires_grad_(True)
    assert not m.enc.weight.frozen


def _sgd64(w, g, lr):
    return w - lr * g


def test_torch_style_groups_from_two_subnets(backend):
    """S11: ``SGD([{"params": m.enc.params(), "lr": .1}, {"params": m.dec.params(),
    "lr": .01}])`` without a base lr: each group steps with its own lr (checked
    against w - lr*g in float64), and its state saves under unambiguous names."""
    m = _model()
    opt = U.SGD(
        [
            {"params": m.enc.params(), "lr": 0.1},
            {"params": m.dec.params(), "lr": 0.01},
        ],
        momentum=0.9,
    )
    before = {n: p.numpy().astype(np.float64) for n, p in m.params().items()}
    _, grads = U.value_and_grad(_mse)(m, X, Y)
    opt.step()
    for name, lr in (("enc.weight", 0.1), ("dec.bias", 0.01)):
        g = U.to_numpy(grads[name]).astype(np.float64)
        assert_close(m.params()[name].numpy(), _sgd64(before[name], g, lr), name)
    assert sorted(opt.state_dict()["state"]) == [
        "dec.bias",
        "dec.weight",
        "enc.bias",
        "enc.weight",
    ]
    path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    m.save(path, optimizer=opt)
    m2 = _model()
    opt2 = U.SGD(
        [
            {"params": m2.enc.params(), "lr": 0.1},
            {"params": m2.dec.params(), "lr": 0.01},
        ],
        momentum=0.9,
    )
    m2.load(path, optimizer=opt2)
    assert sorted(opt2.state_dict()["state"]) == sorted(opt.state_dict()["state"])


def test_missing_lr_is_a_clear_error(backend):
    m = _model()
    with pytest.raises(TypeError, match="lr is required"):
        U.SGD([{"params": m.enc.params(), "lr": 0.1}, {"params": m.dec.params()}])


@pytest.mark.parametrize(
    "call",
    [
        lambda m: U.freeze(m, r"encoder\..*"),
        lambda m: U.unfreeze(m, "enc"),
        lambda m: U.lr_groups(m, {"0": 0.1}),
        lambda m: U.share(m.dec, m.enc, "nothing"),
        lambda m: m.params(r"2\..*").freeze(),
        lambda m: m.params("missing").initialize(U.init.Ones()),
    ],
    ids=["freeze", "unfreeze-prefix", "lr_groups-prefix", "share", "pd-freeze", "init"],
)
def test_a_selection_that_matches_nothing_raises(backend, call):
    """S11.3: freeze, lr_groups, share and initialize selections that select
    nothing raise ValueError naming the pattern and nearby names; params() is a
    query and returns an empty ParamDict."""
    m = _model()
    with pytest.raises(ValueError, match="selects no parameter"):
        call(m)
    assert len(m.params("missing")) == 0


def test_lr_groups_pattern_shadowed_by_an_earlier_one_raises(backend):
    m = _model()
    with pytest.raises(ValueError, match="taken by an earlier pattern"):
        U.lr_groups(m, {r"enc\..*": 0.1, r"enc\.weight": 0.2})


def test_torch_spellings(backend):
    """S11: parameters(), named_parameters() (shared ones once), apply(), nn.init
    functions drawing bitwise the values of the matching scheme."""
    m = _model()
    assert [n for n, _ in m.named_parameters()] == list(m.params())
    assert len(list(m.parameters())) == 4
    U.share(m.dec, m.dec)  # a no-op tie keeps one listing
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Dense", "Dense", "EncDec"]

    def init_weights(mod):
        if isinstance(mod, U.Dense):
            U.init.normal_(mod.weight, std=0.01)
            U.init.zeros_(mod.bias)

    U.seed(5)
    m.apply(init_weights)
    w = m.enc.weight.numpy()
    # Oracle: SPEC 3's stream for (seed 5, epoch 0 = the first draw, the name).
    import zlib

    rng = np.random.Generator(
        np.random.Philox(np.random.SeedSequence([5, 0, zlib.crc32(b"enc.weight")]))
    )
    expected = rng.normal(0.0, 0.01, size=w.shape).astype(np.float32)
    assert np.array_equal(w, expected)
    assert not m.enc.bias.numpy().any()


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: U.Dense(0), ValueError),
        (lambda: U.Dense(-3), ValueError),
        (lambda: U.Dense(2.7), TypeError),
        (lambda: U.Dense("10"), TypeError),
        (lambda: U.Dense(3, in_units=0), ValueError),
        (lambda: U.Dense(3, activation="relux"), ValueError),
        (lambda: U.init.Uniform(-1.0), ValueError),
        (lambda: U.init.Xavier(rnd_type="gauss"), ValueError),
        (lambda: U.SGD([U.Parameter("w", (2,))], lr=-0.1), ValueError),
        (
            lambda: U.Adam([U.Parameter("w", (2,))], lr=0.1, betas=(0.9, 1.5)),
            ValueError,
        ),
        (lambda: U.Parameter("w", (2, -5)), ValueError),
        (lambda: U.Parameter("w", (2,), dtype="int32"), TypeError),
        (lambda: U.Sequential(U.Dense(2), "relu"), TypeError),
        (lambda: U.Trainer(U.Dense(2), "sgd"), TypeError),
    ],
)
def test_constructors_validate_their_arguments(backend, make, error):
    """S9/S11: a clear error at construction, naming the owner and the argument."""
    with pytest.raises(error) as info:
        make()
    assert len(str(info.value)) > 20
