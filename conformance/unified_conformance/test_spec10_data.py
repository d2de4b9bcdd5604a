"""SPEC 10: data in, data out. Code written the way users write it, on every backend.

NumPy arrays (float64 too), nested lists and Python scalars go into custom nets,
losses, ``value_and_grad`` and ``Trainer.step``; results are checked against float64
NumPy formulas written here.
"""

from __future__ import annotations

import numpy as np
import pytest

import unified as U
from unified_conformance.helpers import assert_close

RNG = np.random.default_rng(10)
X = RNG.uniform(size=(5, 3))  # float64, as np.random gives
Y = RNG.uniform(size=(5, 2))


class Regressor(U.Net):
    """A custom net (not a Sequential) with a plain-arithmetic forward."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = U.Dense(4, activation="tanh")
        self.out = U.Dense(2)

    def forward(self, x):
        return self.out(self.hidden(x)) * 2.0 + 1.0


def _forward64(net: Regressor, x: np.ndarray) -> np.ndarray:
    """The float64 oracle of Regressor.forward."""
    w1, b1 = net.hidden.weight.numpy(), net.hidden.bias.numpy()
    w2, b2 = net.out.weight.numpy(), net.out.bias.numpy()
    h = np.tanh(x @ w1.T.astype(np.float64) + b1)
    return (h @ w2.T.astype(np.float64) + b2) * 2.0 + 1.0


def _made(backend) -> Regressor:
    U.seed(3)
    net = Regressor()
    net.initialize(U.init.Xavier())
    return net


def _mse(net, x, y):
    d = net(x) - y
    return U.ops.mean(d * d)


def test_custom_net_takes_numpy_float64_and_returns_float32(backend):
    """S10.1/S10.2: NumPy float64 in, native float32 out, oracle values."""
    net = _made(backend)
    out = net(X)
    assert backend.is_array(out), type(out)
    host = U.to_numpy(out)
    assert host.dtype == np.float32
    assert_close(host, _forward64(net, X), "custom net on float64 NumPy input")


def test_nested_lists_and_bare_layers_take_host_data(backend):
    """S10.1: a bare layer called on a nested list, and on a NumPy array."""
    layer = U.Dense(2, in_units=3)
    layer.initialize(U.init.Ones())
    out = U.to_numpy(layer([[1.0, 2.0, 3.0]]))
    assert out.tolist() == [[6.0, 6.0]]
    assert U.to_numpy(layer(np.ones((1, 3), "float32"))).tolist() == [[3.0, 3.0]]


def test_plain_arithmetic_loss_with_numpy_target_differentiates(backend):
    """S10.1: ``d = net(x) - y; mean(d*d)`` with NumPy x, y inside value_and_grad;
    loss and gradient of the output layer's bias against the float64 oracle."""
    net = _made(backend)
    loss, grads = U.value_and_grad(_mse)(net, X, Y)
    pred = _forward64(net, X)
    assert_close(float(loss), np.mean((pred - Y) ** 2), "loss")
    # d loss / d out.bias = mean over rows of 2 * (pred - y) * 2 / n_outputs
    expected = (2.0 * (pred - Y) * 2.0).sum(axis=0) / (X.shape[0] * Y.shape[1])
    assert_close(U.to_numpy(grads["out.bias"]), expected, "grad of out.bias")


def test_trainer_step_takes_numpy_batches_and_returns_a_number(backend):
    """S10.1/S10.4: Trainer.step with NumPy data; the loss works as a number."""
    net = _made(backend)
    trainer = U.Trainer(net, U.SGD(net.params(), lr=0.1))
    first = trainer.step(_mse, X, Y)
    second = trainer.step(_mse, X, Y)
    assert float(second) < float(first)
    assert second < first
    assert float(first - second) > 0
    assert f"{float(first):.3f}" == f"{U.to_numpy(first).item():.3f}"


def test_zero_d_results_behave_as_python_numbers(backend):
    """S10.4: 0-d results support float(), arithmetic and comparisons."""
    m = U.ops.mean(U.asarray(np.array([1.0, 2.0, 3.0])))
    assert float(m) == 2.0
    assert float(m - 1) == 1.0 and float(1 - m) == -1.0
    assert float(m * 2 + 1) == 5.0
    assert bool(m > 1) and not bool(m < 1)
    assert float(U.ops.sum(U.asarray([1, 2]), None, False)) == 3.0


def test_asarray_and_to_numpy_dtype_rules(backend):
    """S10.2/S10.3: floats become float32, integers stay integer, bools stay bool."""
    assert U.to_numpy(U.asarray(np.zeros(2))).dtype == np.float32
    assert U.to_numpy(U.asarray([1, 2])).dtype.kind == "i"
    assert U.to_numpy(U.asarray(np.array([True, False]))).dtype == np.bool_
    assert U.to_numpy(U.asarray(np.zeros(2), "float32")).dtype == np.float32
    assert backend.is_array(U.asarray(3.5))


def test_ops_take_numpy_arrays(backend):
    """S10.1: unified.ops called directly with NumPy arrays."""
    a = np.array([[1.0, -2.0]], "float32")
    assert U.to_numpy(U.ops.relu(a)).tolist() == [[1.0, 0.0]]
    b = U.asarray(np.array([[3.0, 4.0]]))
    assert U.to_numpy(U.ops.add(b, a)).tolist() == [[4.0, 2.0]]
    assert U.to_numpy(U.ops.multiply(a, b)).tolist() == [[3.0, -8.0]]


def test_losses_take_numpy_predictions_and_targets(backend):
    """S10.1: losses with host data on both sides, against float64 formulas."""
    logits = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean(logp[np.arange(2), labels])
    got = U.losses.softmax_cross_entropy(logits, labels)
    assert_close(float(got), expected, "softmax_cross_entropy")
    assert_close(
        float(U.losses.mse_loss(X[:, :2], Y)), np.mean((X[:, :2] - Y) ** 2), "mse"
    )


@pytest.mark.parametrize("bad", [3, -1])
def test_labels_out_of_range_raise_index_error(backend, bad):
    """S10.5: a label outside [0, classes) raises IndexError, never a silent 0."""
    logits = np.zeros((2, 3), "float32")
    with pytest.raises(IndexError, match=r"outside \[0, 3\)"):
        U.losses.softmax_cross_entropy(logits, np.array([0, bad]))


@pytest.mark.parametrize("compile", [True, False])
def test_labels_out_of_range_fail_a_trainer_step_without_changing_it(backend, compile):
    """S10.5: also inside Trainer.step (compiled where the backend can): the failed
    step changes no weight and counts no step."""
    U.seed(0)
    net = U.Dense(3, in_units=2)
    net.initialize()
    opt = U.Adam(net.params(), lr=0.1)
    trainer = U.Trainer(net, opt, compile=compile)

    def loss_fn(n, x, y):
        return U.losses.softmax_cross_entropy(n(x), y)

    x = np.ones((2, 2))
    trainer.step(loss_fn, x, [0, 2])
    before = net.weight.numpy()
    with pytest.raises(IndexError):
        trainer.step(loss_fn, x, [0, 3])
    assert np.array_equal(net.weight.numpy(), before)
    assert opt.state_for(net.weight)["step"] == 1


@pytest.mark.parametrize("compile", [True, False])
@pytest.mark.parametrize(
    "labels", [np.array([0, 3]), np.array([-1, 0], "int32"), np.array([0] * 40 + [7])]
)
def test_bad_numpy_labels_stop_a_step_before_batch_norm_statistics_move(
    backend, compile, labels
):
    """S10.5: NumPy labels passed straight to Trainer.step (checked on that host
    copy) fail the step with the library's message, and nothing moves: weights,
    optimizer steps and BatchNorm's running statistics."""
    U.seed(0)

    class Classifier(U.Net):
        def __init__(self):
            super().__init__()
            self.body = U.Dense(4, in_units=2)
            self.norm = U.BatchNorm(in_channels=4)
            self.head = U.Dense(3, in_units=4)

        def forward(self, x):
            return self.head(self.norm(self.body(x)))

    net = Classifier()
    net.initialize()
    opt = U.SGD(net.params(), lr=0.1, momentum=0.9)
    trainer = U.Trainer(net, opt, compile=compile)

    def loss_fn(n, x, y):
        return U.losses.softmax_cross_entropy(n(x), y)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((labels.size, 2)).astype("float32")
    trainer.step(loss_fn, x, np.zeros(labels.size, "int64"))
    before = {k: v.numpy().copy() for k, v in net.params().items()}
    bad = int(labels[(labels < 0) | (labels >= 3)][0])
    with pytest.raises(IndexError, match=rf"class label {bad} is outside \[0, 3\)"):
        trainer.step(loss_fn, x, labels)
    for name, value in net.params().items():
        assert np.array_equal(value.numpy(), before[name]), name
    assert opt.state_for(net.body.weight)["step"] == 1


@pytest.mark.parametrize("compile", [True, False])
def test_bad_numpy_indices_stop_a_step_with_the_embedding_message(backend, compile):
    """S13: out-of-range token ids passed straight to Trainer.step raise the
    Embedding's IndexError (checked on the host copy) and change nothing."""
    U.seed(0)
    net = U.Sequential(U.Embedding(5, 3), U.Flatten(), U.Dense(2))
    net.initialize()
    net.infer_shape((2, 4))
    opt = U.SGD(net.params(), lr=0.1)
    trainer = U.Trainer(net, opt, compile=compile)

    def loss_fn(n, tokens, y):
        return U.losses.softmax_cross_entropy(n(tokens), y)

    y = np.array([0, 1])
    trainer.step(loss_fn, np.array([[0, 1, 2, 3], [4, 3, 2, 1]]), y)
    before = {k: v.numpy().copy() for k, v in net.params().items()}
    with pytest.raises(IndexError, match=r"index 5 is outside \[0, 5\)"):
        trainer.step(loss_fn, np.array([[0, 1, 2, 3], [4, 5, 2, 1]]), y)
    for name, value in net.params().items():
        assert np.array_equal(value.numpy(), before[name]), name


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("abc", "string"),
        ([[1.0, 2.0], [3.0]], "rectangular"),
        (np.array([object(), object()], dtype=object), "not numeric"),
    ],
)
def test_non_numeric_data_raise_type_error_naming_the_argument(backend, data, says):
    """S10.3: strings, objects and ragged lists raise TypeError naming the
    argument, from a call and from value_and_grad."""
    net = _made(backend)
    with pytest.raises(TypeError, match=f"argument 1 of Regressor.*{says}|{says}"):
        net(data)
    with pytest.raises(TypeError, match="value_and_grad"):
        U.value_and_grad(_mse)(net, data, Y)


def test_non_scalar_loss_gives_one_error_on_every_backend(backend):
    """S10: a loss that is not reduced fails with the same ValueError everywhere."""
    net = _made(backend)
    with pytest.raises(ValueError, match=r"must return a scalar loss, got an array"):
        U.value_and_grad(lambda n, x: n(x))(net, X)
