"""Differential fuzzing: random nets and optimizers, every backend against NumPy.

Hypothesis draws a configuration (:class:`Config`): a net of depth 1-3 from the layer
vocabulary (Dense with activations; Conv1D/Conv2D with pooling and Flatten;
BatchNorm, LayerNorm, Dropout with rate 0 or pinned to inference), eager or deferred
shapes, a tie (``params=`` or ``share``), a frozen subset, per-parameter
``lr_mult``/``wd_mult``, an optimizer (SGD, Adam, AdamW, RMSProp with groups and
weight decay) and a NumPy batch. The configuration *is* Python code
(:meth:`Config.code`), executed on each backend, so a failing example prints a
reproducer to paste into a script.

Checks, on the backend under test against the NumPy backend: initial weights
bitwise, outputs and gradients within float32 tolerance, and the parameters after
each of 10 optimizer steps within rtol 1e-4. Dense-only nets are also checked against
the float64 forward/backward of :mod:`oracle` (on every backend, NumPy included).

Examples per backend: ``--unified-fuzz-examples N`` (default 12, derandomized so CI
is reproducible; raise it for long runs).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="pip install 'unified[test]' for fuzz tests")

from hypothesis import HealthCheck, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import unified as U  # noqa: E402
from unified import ops  # noqa: E402

from . import oracle  # noqa: E402
from .helpers import assert_bitwise, assert_close  # noqa: E402

STEPS = 10
ACTS = [None, "relu", "tanh", "sigmoid"]


@dataclass
class Config:
    """One drawn case; every field ends up in :meth:`code`."""

    layers: list[str]  # constructor calls, in order
    x_shape: tuple[int, ...]
    seed: int
    data_seed: int
    after: list[str] = field(default_factory=list)  # statements after initialize
    before: list[str] = field(default_factory=list)  # statements before initialize
    optimizer: str = "U.SGD(net.params(), lr=0.1)"
    dense: list[tuple[int, str | None]] | None = None  # (layer index, act) if oracle
    ties: dict[int, int] = field(default_factory=dict)  # layer -> layer it reuses

    def code(self) -> str:
        """The configuration as a Python script (also the reproducer)."""
        lines = [
            "import numpy as np",
            "import unified as U",
            f"U.seed({self.seed})",
            "layers = []",
            *(f"layers.append({layer})" for layer in self.layers),
            "net = U.Sequential(*layers)",
            *self.before,
            "net.initialize()",
            f"net.infer_shape({self.x_shape})",
            *self.after,
            f"opt = {self.optimizer}",
            f"rng = np.random.default_rng({self.data_seed})",
            f"x = rng.standard_normal({self.x_shape}).astype(np.float32)",
            "t = rng.standard_normal(U.to_numpy(net(x)).shape).astype(np.float32)",
            "# loss: U.ops.mean(U.ops.square(U.ops.subtract(net(x), t)))",
        ]
        return "\n".join(lines)


def _act(draw: Any) -> str | None:
    return draw(st.sampled_from(ACTS))


def _kw(act: str | None) -> str:
    return "" if act is None else f", activation={act!r}"


@st.composite
def dense_nets(draw: Any) -> Config:
    """Dense stacks, optionally with a tied square layer and a norm or dropout."""
    features = draw(st.integers(2, 5))
    eager = draw(st.booleans())
    depth = draw(st.integers(1, 3))
    widths = [draw(st.integers(2, 5)) for _ in range(depth)]
    layers: list[str] = []
    dense: list[tuple[int, str | None]] = []
    ties: dict[int, int] = {}
    before: list[str] = []
    kinds = ["none", "none", "batchnorm", "layernorm", "dropout"]
    extra = draw(st.sampled_from(kinds)) if depth >= 2 else "none"
    # A norm layer needs a Dense after it and >= 3 values to normalize: over 2 values
    # it outputs +-1 whatever its input, so the gradient reaching the layers before
    # it is rounding noise, which no two backends agree on.
    norm = extra in ("batchnorm", "layernorm")
    batch = draw(st.integers(3, 4) if norm else st.integers(2, 4))
    if norm:
        widths[0] = max(widths[0], 3)
    tie = draw(st.sampled_from([None, "params=", "share"])) if depth >= 2 else None
    for i, units in enumerate(widths):
        act = _act(draw) if i < depth - 1 else None
        kw = _kw(act)
        if i == 0 and extra == "batchnorm":
            # BatchNorm removes the batch mean: a bias before it has a zero gradient
            # up to rounding noise (which Adam would turn into full steps).
            kw += ", use_bias=False"
        shape = f", in_units={features}" if eager and i == 0 else ""
        dense.append((len(layers), act))
        layers.append(f"U.Dense({units}{kw}{shape})")
        if tie is not None and i == 0:  # a square copy of layer 0's output width
            src = len(layers)
            dense.append((src, act))
            layers.append(f"U.Dense({units}{kw})")
            dense.append((src + 1, act))
            if tie == "params=":
                tied = f"params=layers[{src}].params()"
                layers.append(f"U.Dense({units}{kw}, {tied})")
            else:
                layers.append(f"U.Dense({units}{kw})")
                before.append(f"U.share(net[{src + 1}], net[{src}])")
            ties[src + 1] = src
        if i == 0 and extra != "none":
            if extra == "batchnorm":
                layers.append("U.BatchNorm()")
            elif extra == "layernorm":
                layers.append("U.LayerNorm()")
            else:
                rate = draw(st.sampled_from([0.0, 0.5]))
                layers.append(f"U.Dropout({rate})")
                if rate:
                    before.append(f"net[{len(layers) - 1}].eval()")
    oracle_ok = extra in ("none", "dropout")
    x_shape = (batch, features)
    return _finish(draw, layers, x_shape, before, dense if oracle_ok else None, ties)


@st.composite
def conv_nets(draw: Any) -> Config:
    """Conv1D/Conv2D, optional BatchNorm and pooling, Flatten, a Dense head."""
    dims = draw(st.sampled_from([1, 2]))
    batch, channels = draw(st.integers(2, 3)), draw(st.integers(1, 3))
    size = draw(st.integers(5, 8)) if dims == 1 else draw(st.integers(5, 6))
    eager = draw(st.booleans())
    filters, kernel = draw(st.integers(1, 3)), draw(st.integers(2, 3))
    padding = draw(st.integers(0, 1))
    shape = f", in_channels={channels}" if eager else ""
    batchnorm = draw(st.booleans())
    kw = _kw(_act(draw)) + (", use_bias=False" if batchnorm else "")  # see dense_nets
    layers = [f"U.Conv{dims}D({filters}, {kernel}, padding={padding}{kw}{shape})"]
    if batchnorm:
        layers.append("U.BatchNorm()")
    pool = draw(st.sampled_from([None, "MaxPool", "AvgPool"]))
    if pool is not None:
        layers.append(f"U.{pool}{dims}D(2)")
    layers += ["U.Flatten()", f"U.Dense({draw(st.integers(1, 3))})"]
    x_shape = (batch, channels, *([size] * dims))
    return _finish(draw, layers, x_shape, [], None, {})


PARAM_LAYERS = ("Dense", "Conv", "Norm")


def _finish(
    draw: Any,
    layers: list[str],
    x_shape: tuple[int, ...],
    before: list[str],
    dense: list[tuple[int, str | None]] | None,
    ties: dict[int, int],
) -> Config:
    """Add a frozen subset, multipliers and an optimizer to a net."""
    owners = [
        i
        for i, layer in enumerate(layers)
        if any(k in layer for k in PARAM_LAYERS) and i not in ties
    ]
    after = []
    frozen = draw(st.sampled_from([None, *owners])) if len(owners) > 1 else None
    if frozen is not None:
        after.append(f"U.freeze(net, r'{frozen}\\.weight|{frozen}\\.gamma')")
    if draw(st.booleans()):
        name = f"{owners[-1]}.bias" if "Dense" in layers[owners[-1]] else None
        if name:
            lr_mult = draw(st.sampled_from([0.5, 2.0]))
            wd_mult = draw(st.sampled_from([0.0, 3.0]))
            after.append(f"net.params()[{name!r}].lr_mult = {lr_mult}")
            after.append(f"net.params()[{name!r}].wd_mult = {wd_mult}")
    kind = draw(st.sampled_from(["SGD", "Adam", "AdamW", "RMSProp"]))
    lr = draw(st.sampled_from([0.01, 0.05]))
    wd = draw(st.sampled_from([0.0, 0.01]))
    options = {
        "SGD": f"momentum={draw(st.sampled_from([0.0, 0.9]))}, "
        f"nesterov={draw(st.booleans())}, weight_decay={wd}",
        "Adam": f"weight_decay={wd}, amsgrad={draw(st.booleans())}",
        "AdamW": f"weight_decay={wd or 0.01}",
        "RMSProp": f"momentum={draw(st.sampled_from([0.0, 0.5]))}, "
        f"centered={draw(st.booleans())}, weight_decay={wd}",
    }[kind]
    if kind == "SGD" and "nesterov=True" in options:
        options = options.replace("momentum=0.0", "momentum=0.9")
    params = "net.params()"
    if draw(st.booleans()):
        params = f"U.lr_groups(net, {{r'{owners[0]}\\..*': {lr / 2}}})"
    return Config(
        layers=layers,
        x_shape=x_shape,
        seed=draw(st.integers(0, 2**16)),
        data_seed=draw(st.integers(0, 2**16)),
        before=before,
        after=after,
        optimizer=f"U.{kind}({params}, lr={lr}, {options})",
        dense=dense,
        ties=ties,
    )


configs = st.one_of(dense_nets(), conv_nets())


def loss_fn(net: Any, x: Any, t: Any) -> Any:
    """Squared error to a random target (a zero target would make the gradients
    of BatchNorm's beta exactly zero at initialization: rounding noise)."""
    return ops.mean(ops.square(ops.subtract(net(x), t)))


@dataclass
class Result:
    """What one backend computed for a configuration (all NumPy)."""

    weights: dict[str, np.ndarray]
    output: np.ndarray
    loss: float
    grads: dict[str, np.ndarray]
    trajectory: list[dict[str, np.ndarray]]
    x: np.ndarray
    t: np.ndarray


def run(config: Config, name: str) -> Result:
    """Execute the configuration's code on backend ``name``."""
    with U.use_backend(name):
        scope: dict[str, Any] = {}
        exec(compile(config.code(), "<fuzz config>", "exec"), scope)
        net, opt, x, t = (scope[k] for k in ("net", "opt", "x", "t"))
        weights = {k: p.numpy().copy() for k, p in net.params().items()}
        output = np.array(U.to_numpy(net(x)))
        loss, grads = U.value_and_grad(loss_fn)(net, x, t)
        grads = {k: np.array(U.to_numpy(g)) for k, g in grads.items()}
        trajectory = []
        for _ in range(STEPS):
            opt.step()
            trajectory.append({k: p.numpy().copy() for k, p in net.params().items()})
            U.value_and_grad(loss_fn)(net, x, t)
    return Result(weights, output, float(U.to_numpy(loss)), grads, trajectory, x, t)


def against_numpy(got: Result, ref: Result, name: str) -> None:
    assert list(got.weights) == list(ref.weights), "parameter names differ"
    for k, w in ref.weights.items():
        assert_bitwise(got.weights[k], w, f"initial {k} on {name} vs numpy")
    assert_close(got.output, ref.output, f"net(x) on {name} vs numpy", atol=1e-5)
    assert_close(got.loss, ref.loss, f"loss on {name} vs numpy", atol=1e-6)
    assert sorted(got.grads) == sorted(ref.grads), "gradient names differ"
    for k, g in ref.grads.items():
        assert_close(got.grads[k], g, f"grad {k} on {name} vs numpy", 1e-4, 1e-5)
    for step, (a, b) in enumerate(zip(got.trajectory, ref.trajectory), 1):
        for k, w in b.items():
            what = f"{k} after step {step} on {name} vs numpy"
            assert_close(a[k], w, what, 1e-4, 1e-5)


def against_float64(config: Config, got: Result, name: str) -> None:
    """Dense-only nets: output and gradients vs the float64 MLP of :mod:`oracle`."""
    assert config.dense is not None
    owner = {i: config.ties.get(i, i) for i, _ in config.dense}
    layers = [
        (got.weights[f"{owner[i]}.weight"], got.weights[f"{owner[i]}.bias"], act)
        for i, act in config.dense
    ]
    out, cache = oracle.mlp_forward(got.x, layers)
    assert_close(got.output, out, f"net(x) on {name} vs float64", atol=1e-5)
    g_out = 2 * (out - got.t) / out.size
    want: dict[str, np.ndarray] = {}
    for (i, _), (dw, db) in zip(
        config.dense, oracle.mlp_backward(layers, cache, g_out)
    ):
        for key, g in ((f"{owner[i]}.weight", dw), (f"{owner[i]}.bias", db)):
            want[key] = want.get(key, 0) + g
    for k, g in got.grads.items():
        assert_close(g, want[k], f"grad {k} on {name} vs float64", 1e-4, 1e-5)


def check(config: Config, name: str) -> None:
    note(f"reproducer (run on backend {name!r} and on 'numpy'):\n{config.code()}")
    try:
        got = run(config, name)
        if name != "numpy":
            against_numpy(got, run(config, "numpy"), name)
        if config.dense is not None:
            against_float64(config, got, name)
    except AssertionError as exc:
        code = textwrap.indent(config.code(), "    ")
        raise AssertionError(f"{exc}\n\nreproducer:\n{code}") from exc


@pytest.fixture(scope="module")
def examples(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--unified-fuzz-examples"))


def test_random_nets_and_optimizers_agree(backend, examples):
    """Random nets and optimizer configurations: same weights, outputs, gradients
    and 10-step trajectories as NumPy; Dense-only nets as the float64 MLP."""

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(configs)
    def fuzz(config: Config) -> None:
        check(config, backend.name)

    fuzz()
