"""SPEC 3: initialization on the host, keyed by (seed, epoch, name), and precedence."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import unified as U
from unified import init

from . import oracle
from .helpers import assert_bitwise, native

SHAPE = (6, 4)


def _draw(backend, initializer, shape=SHAPE, seed=3):
    """Initialize one parameter named '0.weight' with ``initializer`` at epoch 0."""
    U.seed(seed)
    net = U.Sequential(
        U.Dense(shape[0], in_units=shape[1], weight_initializer=initializer)
    )
    net.initialize()
    return net[0].weight.numpy()


def _expected(fill, shape=SHAPE, seed=3, name="0.weight"):
    rng = oracle.stream(seed, 0, name)
    return np.asarray(fill(rng, shape), dtype=np.float64).astype(np.float32)


FAN_IN, FAN_OUT = oracle.fans(SHAPE)
XAVIER_S = math.sqrt(3 / ((FAN_IN + FAN_OUT) / 2))  # Gluon Xavier defaults
TORCH_XU = 2.0 * math.sqrt(6 / (FAN_IN + FAN_OUT))  # xavier_uniform(gain=2)
TANH_KU = (5 / 3) * math.sqrt(3 / FAN_IN)  # kaiming_uniform(nonlinearity="tanh")
SCHEMES = {
    "Uniform": (init.Uniform(0.3), lambda r, s: r.uniform(-0.3, 0.3, s)),
    "Normal": (init.Normal(0.5), lambda r, s: r.normal(0, 0.5, s)),
    "Xavier-gaussian-in": (
        init.Xavier("gaussian", "in", 2),
        lambda r, s: r.normal(0, math.sqrt(2 / FAN_IN), s),
    ),
    "Xavier-uniform-out": (
        init.Xavier("uniform", "out", 3),
        lambda r, s: r.uniform(-math.sqrt(3 / FAN_OUT), math.sqrt(3 / FAN_OUT), s),
    ),
    "MSRAPrelu": (
        init.MSRAPrelu("avg", 0.25),
        lambda r, s: r.normal(
            0, math.sqrt(2 / (1 + 0.25**2) / ((FAN_IN + FAN_OUT) / 2)), s
        ),
    ),
    "Xavier-uniform-avg": (
        init.Xavier(),
        lambda r, s: r.uniform(-XAVIER_S, XAVIER_S, s),
    ),
    "xavier_uniform": (
        init.xavier_uniform(gain=2.0),
        lambda r, s: r.uniform(-TORCH_XU, TORCH_XU, s),
    ),
    "xavier_normal": (
        init.xavier_normal(gain=0.5),
        lambda r, s: r.normal(0, 0.5 * math.sqrt(2 / (FAN_IN + FAN_OUT)), s),
    ),
    "kaiming_uniform-relu": (
        init.kaiming_uniform(nonlinearity="relu"),
        lambda r, s: r.uniform(-math.sqrt(6 / FAN_IN), math.sqrt(6 / FAN_IN), s),
    ),
    "kaiming_normal-fan_out-leaky": (
        init.kaiming_normal(a=0.2, mode="fan_out"),
        lambda r, s: r.normal(0, math.sqrt(2 / (1 + 0.04)) / math.sqrt(FAN_OUT), s),
    ),
    "kaiming_uniform-tanh": (
        init.kaiming_uniform(nonlinearity="tanh"),
        lambda r, s: r.uniform(-TANH_KU, TANH_KU, s),
    ),
    "Constant": (init.Constant(0.25), lambda r, s: np.full(s, 0.25)),
    "Ones": (init.Ones(), lambda r, s: np.ones(s)),
    "Zeros": (init.Zeros(), lambda r, s: np.zeros(s)),
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_scheme_matches_formula_bitwise(backend, scheme):
    """S3.3/S3.4: each scheme draws its formula from the parameter's Philox stream."""
    initializer, formula = SCHEMES[scheme]
    assert_bitwise(_draw(backend, initializer), _expected(formula), scheme)


def test_default_is_uniform_007(backend):
    """S3.1: without any init, weights are Uniform(0.07) and Dense biases zeros."""
    U.seed(5)
    net = U.Sequential(U.Dense(6, in_units=4))
    net.initialize()
    expected = _expected(lambda r, s: r.uniform(-0.07, 0.07, s), seed=5)
    assert_bitwise(net[0].weight.numpy(), expected, "default init")
    assert not net[0].bias.numpy().any()


def test_orthogonal(backend):
    """S3.4: Orthogonal gives scale * a (semi-)orthogonal matrix from QR with
    sign fix."""
    w = _draw(backend, init.Orthogonal(scale=2.0)).astype(np.float64)
    np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(SHAPE[1]), atol=1e-5)
    rng = oracle.stream(3, 0, "0.weight")
    q, r = np.linalg.qr(rng.standard_normal(SHAPE))
    expected = (2.0 * q * np.sign(np.diag(r))).astype(np.float32)
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-7)


def test_fan_based_scheme_rejects_vectors(backend):
    """S3.4: a fan-based scheme on a 1-d parameter raises ValueError."""
    layer = U.Dense(3, in_units=2, bias_initializer=init.Xavier())
    with pytest.raises(ValueError, match="at least 2 dims"):
        layer.initialize()


def test_precedence(backend):
    """S3.1: p.initialize(init) > layer init > net.initialize(init) > default."""
    net = U.Sequential(
        U.Dense(2, in_units=2, weight_initializer=init.Constant(2.0)),
        U.Dense(2, in_units=2),
    )
    net[1].bias.initialize(init.Constant(5.0))
    net.initialize(init.Constant(1.0), force_reinit=True)
    assert (net[0].weight.numpy() == 2).all(), "layer init beats global init"
    assert (net[0].bias.numpy() == 0).all(), "Dense bias_initializer zeros beats global"
    assert (net[1].weight.numpy() == 1).all(), "global init applies to plain weights"
    assert (net[1].bias.numpy() == 5).all(), "p.initialize(init) beats everything"


def test_global_constant_leaves_biases_zero(backend):
    """S3.1: net.initialize(Constant(1)) gives weights 1 and biases 0 (as in Gluon)."""
    net = U.Sequential(U.Dense(3, in_units=2))
    net.initialize(init.Constant(1.0))
    assert (net[0].weight.numpy() == 1).all() and (net[0].bias.numpy() == 0).all()


def test_global_init_dispatches_by_suffix(backend):
    """S3.2: a global initializer fills weights with _init_weight, biases with
    _init_bias."""

    class Marks(init.Initializer):
        def _init_weight(self, name, arr):
            arr[...] = 7.0

        def _init_bias(self, name, arr):
            arr[...] = -1.0

    class Scaled(U.Net):
        def __init__(self):
            super().__init__()
            self.alpha = U.Parameter("alpha", (3,))  # neither weight nor bias

    net = U.Sequential(U.Dense(2, in_units=2, bias_initializer=None), Scaled())
    marks = Marks()
    net.initialize(marks)
    assert (net[0].weight.numpy() == 7).all() and (net[0].bias.numpy() == -1).all()
    assert (net[1].alpha.numpy() == 7).all(), "other names use _init_weight"
    with pytest.raises(RuntimeError, match="only available while initializing"):
        _ = marks.rng  # released when initialization ends


def test_custom_initializer_written_once_runs_everywhere(backend):
    """S3.2: a custom Initializer fills a NumPy array with the parameter's stream."""

    class Shifted(init.Initializer):
        def _init_weight(self, name, arr):
            arr[:] = self.rng.uniform(-10, 10, arr.shape)
            arr[np.abs(arr) < 5] = 0

    got = _draw(backend, Shifted())

    def formula(r, s):
        a = r.uniform(-10, 10, s)
        a[np.abs(a) < 5] = 0
        return a

    assert_bitwise(got, _expected(formula), "custom initializer")


def test_epoch_advances_per_initialize(backend):
    """S3.3: the key includes the number of initialize calls since seed()."""
    U.seed(11)
    a = U.Sequential(U.Dense(6, in_units=4))
    a.initialize()
    b = U.Sequential(U.Dense(6, in_units=4))
    b.initialize()
    assert_bitwise(
        b[0].weight.numpy(),
        oracle.stream(11, 1, "0.weight").uniform(-0.07, 0.07, SHAPE).astype(np.float32),
        "second initialize uses epoch 1",
    )
    assert not np.array_equal(a[0].weight.numpy(), b[0].weight.numpy())


def test_initialize_twice_warns_and_keeps_values(backend):
    """S3.5: initialize on an initialized net warns and changes nothing."""
    net = U.Sequential(U.Dense(3, in_units=2))
    net.initialize()
    before = net[0].weight.numpy()
    with pytest.warns(UserWarning, match="force_reinit"):
        net.initialize(init.Ones())
    np.testing.assert_array_equal(net[0].weight.numpy(), before)


@pytest.mark.parametrize("trainer", [False, True], ids=["eager", "trainer"])
def test_force_reinit_redraws_in_place(backend, trainer):
    """S3.5: force_reinit keeps the parameter objects and the optimizer state: the
    step after it continues the momentum and step count (float64 oracle)."""
    net = U.Sequential(U.Dense(3, in_units=2))
    net.initialize()
    weight = net[0].weight
    opt = U.SGD(net.params(), lr=0.1, momentum=0.9)
    x = native(backend, np.ones((1, 2)))

    def loss(n, x):
        return U.ops.sum(n(x))  # d/dW = ones, d/db = ones

    def step():
        if trainer:
            runner.step(loss, x)
        else:
            U.value_and_grad(loss)(net, x)
            opt.step()

    runner = U.Trainer(net, opt)
    states: dict[str, dict] = {"0.weight": {}, "0.bias": {}}
    ref = {n: p.numpy().astype(np.float64) for n, p in net.params().items()}
    step()
    for name in ref:
        ref[name] = oracle.sgd(
            ref[name], np.ones_like(ref[name]), states[name], 0.1, 0.9
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        net.initialize(init.Constant(0.5), force_reinit=True)
    assert net[0].weight is weight and net.params()["0.weight"] is weight
    assert (weight.numpy() == 0.5).all() and (net[0].bias.numpy() == 0).all()
    ref = {"0.weight": np.full((3, 2), 0.5), "0.bias": np.zeros(3)}
    step()  # momentum kept: buf = 0.9 * 1 + 1, so w = 0.5 - 0.1 * 1.9
    for name, p in net.params().items():
        want = oracle.sgd(ref[name], np.ones_like(ref[name]), states[name], 0.1, 0.9)
        np.testing.assert_allclose(p.numpy(), want, rtol=1e-6, err_msg=name)
    assert {e["step"] for e in opt.state_dict()["state"].values()} == {2}


def test_fans_of_higher_rank_weights(backend):
    """S3.4: fan_in = shape[1]*prod(shape[2:]), fan_out = shape[0]*prod(shape[2:])."""

    class Conv(U.Net):
        def __init__(self):
            super().__init__()
            self.weight = U.Parameter("weight", (4, 3, 2, 5), init=init.Xavier())

    U.seed(3)
    net = Conv()
    net.initialize()
    fan_in, fan_out = 3 * 10, 4 * 10
    s = math.sqrt(3 / ((fan_in + fan_out) / 2))
    want = oracle.stream(3, 0, "weight").uniform(-s, s, (4, 3, 2, 5))
    assert_bitwise(net.weight.numpy(), want.astype(np.float32), "4-d Xavier")


# torch.nn.init.calculate_gain's documented table
TORCH_GAINS = {
    "linear": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3,
    "relu": math.sqrt(2.0),
    "selu": 0.75,
    "leaky_relu": math.sqrt(2.0 / (1 + 0.01**2)),
}


@pytest.mark.parametrize("nonlinearity", sorted(TORCH_GAINS))
def test_gains_are_torchs(backend, nonlinearity):
    """S3: the gain table is PyTorch's (leaky_relu with its default slope 0.01)."""
    got = init.calculate_gain(nonlinearity)
    assert got == pytest.approx(TORCH_GAINS[nonlinearity], rel=1e-12)


def test_invalid_initializer_arguments_raise(backend):
    """S3/S9: an unknown nonlinearity or fan mode fails when the initializer is
    made; an initializer's rng exists only while it runs."""
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_uniform(mode="fan_avg")
    with pytest.raises(RuntimeError, match="only available while initializing"):
        _ = init.Uniform().rng


def test_gluon_and_torch_spellings_are_aliases(backend):
    """S3: the Gluon/PyTorch class spellings name the same initializers."""
    assert init.XavierUniform is init.xavier_uniform
    assert init.XavierNormal is init.xavier_normal
    assert init.KaimingUniform is init.kaiming_uniform
    assert init.KaimingNormal is init.kaiming_normal
    assert init.Zero is init.Zeros and init.One is init.Ones


def test_initializer_repr_shows_its_arguments(backend):
    """An initializer's repr names its class and arguments (as in error messages)."""
    text = repr(init.MSRAPrelu(slope=0.1))
    assert text.startswith("MSRAPrelu(") and "slope=0.1" in text
    assert "scale=0.5" in repr(init.Uniform(0.5))
