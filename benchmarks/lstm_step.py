"""Time one training step of an LSTM language model: ``unified`` against native code.

The model (issue 11): ``Embedding(10000, 256)`` -> 2-layer ``LSTM`` (hidden 256,
time-major, zero initial states) over 35 steps at batch 32 -> ``Dense`` decoder to
the 10000-word vocabulary on every position; softmax cross-entropy averaged over all
35 x 32 positions; plain SGD (lr 0.1, no momentum), float32. One step is forward,
loss, backward and the update. Native code, measured in the same process:

* ``torch``: ``nn.Embedding`` -> ``nn.LSTM(256, 256, 2)`` -> ``nn.Linear``,
  ``F.cross_entropy``, ``torch.optim.SGD``;
* ``jax``: a hand-written ``jax.jit`` step, each LSTM layer one ``lax.scan`` over
  time (the input projection of all steps one matmul first), matmuls at
  ``precision="highest"`` like the backend;
* ``mxnet``: Gluon ``nn.Embedding`` -> ``rnn.LSTM`` (MXNet's fused ``RNN``
  operator) -> ``nn.Dense(flatten=False)`` in a ``HybridBlock``,
  ``autograd.record()``, ``gluon.Trainer('sgd')``; imperative (the target applies
  to it) and hybridized;
* ``numpy``: the NumPy backend against native PyTorch (the torch code above), both
  on one OpenMP/OpenBLAS thread.

``unified``: ``U.Embedding``, ``U.LSTM(256, 2)``, ``U.Dense(10000)`` in a ``U.Net``,
``U.Trainer(net, U.SGD(...)).step(loss_fn, x, y)`` on NumPy batches. Its LSTM runs
PyTorch's fused kernel on torch (the optional ``rnn_layer`` hook) and the composition
of ``unified.ops`` elsewhere: on JAX the compiled ``Trainer`` step unrolls the 35
steps of both layers (the first call, trace plus compilation, is reported apart).
Both sides start from the same weights and see the same batch; the losses of the
first five steps must agree. The measurement is ``harness.py``'s.

Usage::

    python benchmarks/lstm_step.py --repeats 5                 # every backend
    python benchmarks/lstm_step.py --backends numpy --steps 2 --repeats 3
    python benchmarks/lstm_step.py --quick --models small      # smoke run
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import CHECK_STEPS, Case, simple_runner  # noqa: E402

BACKENDS = ("numpy", "torch", "jax", "mxnet")
LR = 0.1
REPORT = Path(__file__).resolve().parent / "report-lstm.md"

MODELS: dict[str, dict[str, int]] = {
    "lstm": {"vocab": 10000, "embed": 256, "hidden": 256, "layers": 2, "T": 35,
             "N": 32},
    "small": {"vocab": 500, "embed": 32, "hidden": 32, "layers": 2, "T": 10, "N": 8},
}  # fmt: skip
"""name -> sizes; ``lstm`` is the benchmark, ``small`` a smoke test."""

TARGETS: dict[tuple[str, str], float] = {
    **{("torch", m): 1.15 for m in MODELS},
    **{("jax", m): 1.15 for m in MODELS},
    **{("mxnet", m): 1.25 for m in MODELS},
    **{("numpy", m): 3.0 for m in MODELS},
}
"""Upper bounds on unified / native (numpy: against native torch); reported only."""


def describe(model: str) -> str:
    s = MODELS[model]
    return (
        f"Embedding({s['vocab']}, {s['embed']}) -> LSTM({s['hidden']}) x "
        f"{s['layers']} over T={s['T']}, batch {s['N']} -> Dense({s['vocab']})"
    )


def make_batch(model: str) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random word indices ``(T, N)`` and next-word labels ``(T, N)``."""
    s = MODELS[model]
    rng = np.random.default_rng(0)
    words = rng.integers(0, s["vocab"], size=(s["T"] + 1, s["N"])).astype(np.int64)
    return words[:-1], words[1:]


def unified_loss(net: Any, x: Any, y: Any) -> Any:
    """The loss given to ``Trainer.step`` (one object: compiled steps are reused)."""
    import unified as U

    return U.losses.softmax_cross_entropy(net(x), y)


def build_unified(
    backend: str, model: str
) -> tuple[Callable[[], Any], list[Any], dict[str, np.ndarray]]:
    """Return ``step()``, the parameters and a copy of the initial weights."""
    import unified as U

    s = MODELS[model]

    class LanguageModel(U.Net):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = U.Embedding(s["vocab"], s["embed"])
            self.lstm = U.LSTM(s["hidden"], s["layers"], input_size=s["embed"])
            self.decoder = U.Dense(s["vocab"], in_units=s["hidden"])

        def forward(self, x: Any) -> Any:
            return self.decoder(self.lstm(self.embedding(x)))

    U.set_backend(backend)
    U.seed(0)
    x, y = make_batch(model)
    net = LanguageModel()
    net.initialize(U.init.Uniform(0.1))
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR))
    weights = {name: np.array(p.numpy(), copy=True) for name, p in net.params().items()}

    def step() -> Any:
        return trainer.step(unified_loss, x, y)  # NumPy batches (SPEC 10)

    return step, list(net.params().values()), weights


def copy_into(slots: list[tuple[str, Any]], weights: dict[str, np.ndarray], put: Any):
    """``put(slot, array)`` for each named native slot and unified weight, in order;
    the native name must end with the unified name's last part (``l0_i2h_weight``,
    ``weight``; torch's names are mapped first), and the shapes must agree."""
    if len(slots) != len(weights):
        raise RuntimeError(f"{len(slots)} native tensors for {len(weights)} weights")
    for (native_name, slot), (name, w) in zip(slots, weights.items()):
        if not native_name.endswith(name.rsplit(".", 1)[-1]):
            raise RuntimeError(f"{name} would be copied into {native_name}")
        if tuple(slot.shape) != w.shape:
            raise RuntimeError(f"{name}: native {tuple(slot.shape)} vs {w.shape}")
        put(slot, w)


def torch_runner(model: str, weights: dict[str, np.ndarray]) -> tuple[Any, str]:
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    from unified.layers.recurrent import gluon_name

    s = MODELS[model]

    class LanguageModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(s["vocab"], s["embed"])
            self.lstm = nn.LSTM(s["embed"], s["hidden"], s["layers"])
            self.decoder = nn.Linear(s["hidden"], s["vocab"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decoder(self.lstm(self.embedding(x))[0])

    net = LanguageModel()
    slots = []
    for k, t in net.state_dict().items():
        head, _, tail = k.partition(".")
        slots.append((gluon_name(tail) if head == "lstm" else k, t))
    with torch.no_grad():
        copy_into(slots, weights, lambda t, w: t.copy_(torch.from_numpy(w)))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    x_np, y_np = make_batch(model)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def step() -> Any:
        opt.zero_grad()
        logits = net(x)
        loss = F.cross_entropy(logits.reshape(-1, s["vocab"]), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    return simple_runner(step), torch.__version__


def case_numpy(model: str) -> Case:
    u_step, _, weights = build_unified("numpy", model)
    native, version = torch_runner(model, weights)
    return Case(
        runners={"unified": simple_runner(u_step), "torch": native},
        loss_of=lambda t: float(np.asarray(t.detach() if hasattr(t, "detach") else t)),
        framework="numpy " + np.__version__ + ", against torch",
        version=version,
    )


def case_torch(model: str) -> Case:
    u_step, _, weights = build_unified("torch", model)
    native, version = torch_runner(model, weights)
    return Case(
        runners={"unified": simple_runner(u_step), "native": native},
        loss_of=lambda t: float(t.detach()),
        framework="torch",
        version=version,
    )


def jax_loss(params: dict[str, Any], x: Any, y: Any, layers: int) -> Any:
    """The language model's mean cross-entropy; each LSTM layer one ``lax.scan``."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    hi = lax.Precision.HIGHEST
    h = params["embedding.weight"][x]  # (T, N, E)
    for k in range(layers):
        p = f"lstm.l{k}_"
        wh = params[p + "h2h_weight"]
        xp = jnp.matmul(h, params[p + "i2h_weight"].T, precision=hi)
        xp = xp + params[p + "i2h_bias"] + params[p + "h2h_bias"]
        zero = jnp.zeros((x.shape[1], wh.shape[1]), h.dtype)

        def cell(carry: Any, xt: Any, wh: Any = wh) -> Any:
            hh, cc = carry
            i, f, g, o = jnp.split(xt + jnp.matmul(hh, wh.T, precision=hi), 4, -1)
            cc = jax.nn.sigmoid(f) * cc + jax.nn.sigmoid(i) * jnp.tanh(g)
            hh = jax.nn.sigmoid(o) * jnp.tanh(cc)
            return (hh, cc), hh

        _, h = lax.scan(cell, (zero, zero), xp)
    logits = jnp.matmul(h, params["decoder.weight"].T, precision=hi)
    logp = jax.nn.log_softmax(logits + params["decoder.bias"])
    return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))


def case_jax(model: str) -> Case:
    u_step, u_params, weights = build_unified("jax", model)
    import jax
    import jax.numpy as jnp

    layers = MODELS[model]["layers"]
    x_np, y_np = make_batch(model)
    x, y = jnp.asarray(x_np.astype(np.int32)), jnp.asarray(y_np.astype(np.int32))
    live = {"params": {n: jnp.asarray(w) for n, w in weights.items()}}

    @jax.jit
    def train_step(params: Any, x: Any, y: Any) -> Any:
        loss, grads = jax.value_and_grad(jax_loss)(params, x, y, layers)
        params = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
        return params, loss

    def native_step() -> Any:
        live["params"], loss = train_step(live["params"], x, y)
        return loss

    def sync_unified(loss: Any) -> None:
        jax.block_until_ready((loss, [p.data() for p in u_params]))

    def sync_native(loss: Any) -> None:
        jax.block_until_ready((loss, live))

    return Case(
        runners={
            "unified": simple_runner(u_step, sync_unified),
            "native": simple_runner(native_step, sync_native),
        },
        loss_of=float,
        framework="jax",
        version=jax.__version__,
    )


def case_mxnet(model: str) -> Case:
    # Selecting the backend first applies the numpy.bool shim MXNet 1.9 needs.
    u_step, _, weights = build_unified("mxnet", model)
    import mxnet as mx
    from mxnet import autograd, gluon
    from mxnet.gluon import nn, rnn

    s = MODELS[model]
    x_np, y_np = make_batch(model)
    x = mx.nd.array(x_np, dtype="float32")  # Gluon's Embedding takes float indices
    y = mx.nd.array(y_np, dtype="float32")
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    class LanguageModel(gluon.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            with self.name_scope():
                self.embedding = nn.Embedding(s["vocab"], s["embed"])
                self.lstm = rnn.LSTM(s["hidden"], s["layers"], input_size=s["embed"])
                self.decoder = nn.Dense(s["vocab"], flatten=False, in_units=s["hidden"])

        def hybrid_forward(self, F: Any, x: Any) -> Any:  # noqa: N803
            return self.decoder(self.lstm(self.embedding(x)))

    def gluon_step(hybrid: bool) -> Callable[[], Any]:
        net = LanguageModel()
        net.initialize()
        params = net.collect_params()
        copy_into(
            list(params.items()),
            weights,
            lambda p, w: p.set_data(mx.nd.array(w, dtype="float32")),
        )
        if hybrid:
            net.hybridize()
        trainer = gluon.Trainer(params, "sgd", {"learning_rate": LR})

        def step() -> Any:
            with autograd.record():
                loss = loss_fn(net(x), y).mean()  # the mean over every position
            loss.backward()
            trainer.step(1)
            return loss

        return step

    def sync(loss: Any) -> None:
        mx.nd.waitall()

    return Case(
        runners={
            "unified": simple_runner(u_step, sync),
            "native": simple_runner(gluon_step(False), sync),
            "native-hybrid": simple_runner(gluon_step(True), sync),
        },
        loss_of=lambda loss: float(np.mean(loss.asnumpy())),
        framework="mxnet",
        version=mx.__version__,
    )


CASES: dict[str, Callable[[str], Case]] = {
    "numpy": case_numpy,
    "torch": case_torch,
    "jax": case_jax,
    "mxnet": case_mxnet,
}


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark every model of ``args.models`` on ``backend`` in this process."""
    return harness.run_backend(backend, args, lambda b, m: CASES[b](m), describe)


def format_report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    return harness.format_report(
        results,
        args,
        title="unified LSTM language-model training-step benchmark",
        header=[
            harness.settings_line(args, f"SGD lr {LR}, float32; "),
            "- models: " + "; ".join(f"{m}: {describe(m)}" for m in args.models),
            "- numpy: the NumPy backend against native PyTorch (target: within 3x); "
            "mxnet: target against imperative Gluon",
        ],
        targets=TARGETS,
        check=f"the losses of steps 1-{CHECK_STEPS} of unified and native agree "
        "(relative difference <= 1e-4)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(__doc__.splitlines()[0], ["lstm"], REPORT, repeats=5)
    return harness.parse(parser, argv, BACKENDS, list(MODELS))


def main(argv: list[str] | None = None) -> int:
    return harness.main(parse_args(argv), __file__, run_backend, format_report)


if __name__ == "__main__":
    sys.exit(main())
