"""Time one training step of ``unified`` against native code on each backend.

One step is: forward pass of an MLP, softmax cross-entropy (mean over the batch),
backward pass, and an SGD update with momentum 0.9. Two models:

* ``large``: MLP 784-512-512-10 (ReLU), batch 128;
* ``small``: MLP 20-256-10 (ReLU), batch 2.

Each backend is compared with native code measured in the same process and run:

* ``numpy``: a hand-written NumPy step (forward, hand-derived backward, momentum SGD
  in place);
* ``torch``: ``torch.nn.Sequential(Linear, ReLU, ...)``, ``F.cross_entropy`` and
  ``torch.optim.SGD(momentum=0.9)`` (``zero_grad``, ``backward``, ``step``);
* ``jax``: a hand-written ``jax.jit`` step over pytrees of parameters and momentum
  buffers; the first call (trace and compile) is reported separately;
* ``mxnet``: Gluon ``nn.Sequential`` of ``nn.Dense`` with ``autograd.record()`` and
  ``gluon.Trainer(..., 'sgd', {'momentum': 0.9, ...})``, imperative, and the same
  model as a hybridized ``nn.HybridSequential``.

Both sides start from the same float32 weights (``unified``'s initial weights are
copied into the native model), see the same batch and use the same learning rate.
Both get the batch as NumPy arrays every step, as user code does: ``unified``
through ``Trainer.step`` (SPEC 10), the native code converting it itself
(``torch.from_numpy``, ``jnp.asarray``, ``mx.nd.array``; NumPy needs nothing).
The losses of the first five steps of both sides are compared as a sanity check
(same start, same updates).

The measurement (shared with ``cnn_step.py`` and ``dropout_masks.py``) lives in
``harness.py``. Method: after a warm-up, ``unified`` and native runs of ``--steps``
steps are interleaved (A B, then B A, ...) for ``--repeats`` repeats; each run ends
with a synchronisation (``block_until_ready`` for JAX, ``mx.nd.waitall()`` for
MXNet; NumPy and CPU torch are synchronous). Reported: the median time per step of
each side and the median of the per-repeat ratios unified / native.

Each backend runs in its own subprocess (so frameworks' thread pools do not share a
process and a crashing backend cannot take the others down); a backend that fails
to load or to run is reported and skipped.

Threads: by default the OpenMP, MKL and OpenBLAS pools (NumPy, PyTorch, MXNet) are
limited to one thread (``--threads 1``). On a small machine shared with other work,
OpenMP kernels spread over every core spin-wait for whichever core is busy, and step
times then vary several-fold (in one run PyTorch's per-repeat ratios went from 0.45
to 22); ``--threads 0`` keeps the frameworks' defaults. JAX's XLA runtime keeps its
own defaults either way: forcing it to one thread (``XLA_FLAGS=
"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``, inherited by
the workers) also changes how its dispatch overlaps with Python (the small model's
native step took twice as long), which changes what is measured.

Usage::

    python benchmarks/train_step.py                    # every backend
    python benchmarks/train_step.py --backends numpy,jax --repeats 9
    python benchmarks/train_step.py --quick            # smoke run
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import CHECK_STEPS, Case, simple_runner  # noqa: E402

BACKENDS = ("numpy", "torch", "jax", "mxnet")
LR = 0.01
MOMENTUM = 0.9
REPORT = Path(__file__).resolve().parent / "report.md"


@dataclass(frozen=True)
class Model:
    """An MLP ``inputs -> hidden... -> outputs`` (ReLU) trained at ``batch``."""

    inputs: int
    hidden: tuple[int, ...]
    outputs: int
    batch: int

    def describe(self) -> str:
        sizes = "-".join(str(n) for n in (self.inputs, *self.hidden, self.outputs))
        return f"MLP {sizes}, batch {self.batch}"


MODELS = {
    "large": Model(784, (512, 512), 10, 128),
    "small": Model(20, (256,), 10, 2),
}

TARGETS: dict[tuple[str, str], float] = {
    ("numpy", "large"): 1.3,
    ("torch", "large"): 1.10,
    ("torch", "small"): 1.5,
    ("jax", "large"): 1.10,
    ("jax", "small"): 1.3,
    ("mxnet", "large"): 1.15,
}
"""Upper bounds on the ratio unified / native (against the first native variant)."""

Weights = list[tuple[np.ndarray, np.ndarray]]


# ----------------------------------------------------------------------------------
# Data and the unified side (identical code on every backend)
# ----------------------------------------------------------------------------------


def make_batch(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random batch: float32 inputs and int64 class labels."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((model.batch, model.inputs)).astype(np.float32)
    y = rng.integers(0, model.outputs, size=model.batch).astype(np.int64)
    return x, y


def unified_loss(net: Any, x: Any, y: Any) -> Any:
    """The loss given to ``Trainer.step`` (one object: compiled steps are reused)."""
    import unified as U

    return U.losses.softmax_cross_entropy(net(x), y)


def build_unified(
    backend: str, model: Model, x_np: np.ndarray, y_np: np.ndarray
) -> tuple[Callable[[], Any], list[Any], Weights]:
    """Return ``step()``, the parameters and a copy of the initial weights."""
    import unified as U

    U.set_backend(backend)
    U.seed(0)
    layers = [U.Dense(h, activation="relu") for h in model.hidden]
    layers.append(U.Dense(model.outputs))
    net = U.Sequential(*layers)
    net.initialize()
    net.infer_shape((model.batch, model.inputs))
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR, momentum=MOMENTUM))
    # As users write it (SPEC 10): NumPy batches go straight into Trainer.step,
    # which converts them (the native sides convert theirs in their step too).
    x, y = x_np, y_np
    weights = [
        (
            np.array(layer.weight.numpy(), copy=True),
            np.array(layer.bias.numpy(), copy=True),
        )
        for layer in layers
    ]
    params = list(net.params().values())

    def step() -> Any:
        return trainer.step(unified_loss, x, y)

    return step, params, weights


# ----------------------------------------------------------------------------------
# NumPy
# ----------------------------------------------------------------------------------


def case_numpy(model: Model) -> Case:
    x, y = make_batch(model)
    u_step, _, weights = build_unified("numpy", model, x, y)
    ws = [w.copy() for w, _ in weights]
    bs = [b.copy() for _, b in weights]
    w_buf = [np.zeros_like(w) for w in ws]
    b_buf = [np.zeros_like(b) for b in bs]
    rows = np.arange(model.batch)
    last = len(ws) - 1

    def native_step() -> float:
        # Forward, keeping every layer's input and pre-activation.
        inputs, pre = [], []
        h = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            inputs.append(h)
            z = h @ w.T
            z += b
            pre.append(z)
            h = np.maximum(z, 0.0) if i < last else z
        shifted = h - h.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))
        # Backward: d(mean CE)/d logits = (softmax - onehot) / batch.
        g = exp / total
        g[rows, y] -= 1.0
        g /= model.batch
        for i in range(last, -1, -1):
            if i < last:
                g *= pre[i] > 0
            gw = g.T @ inputs[i]
            gb = g.sum(axis=0)
            if i > 0:
                g = g @ ws[i]
            # torch.optim.SGD: buf = momentum * buf + grad; w -= lr * buf.
            for param, buf, grad in ((ws[i], w_buf[i], gw), (bs[i], b_buf[i], gb)):
                buf *= MOMENTUM
                buf += grad
                param -= LR * buf
        return loss

    return Case(
        runners={
            "unified": simple_runner(u_step),
            "native": simple_runner(native_step),
        },
        loss_of=float,
        framework="numpy",
        version=np.__version__,
    )


# ----------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------


def case_torch(model: Model) -> Case:
    x_np, y_np = make_batch(model)
    u_step, _, weights = build_unified("torch", model, x_np, y_np)
    import torch
    import torch.nn.functional as F  # noqa: N812

    modules: list[torch.nn.Module] = []
    for w, b in weights:
        linear = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
            linear.bias.copy_(torch.from_numpy(b))
        modules += [linear, torch.nn.ReLU()]
    net = torch.nn.Sequential(*modules[:-1])
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)

    def native_step() -> Any:
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)  # NumPy batch in
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    return Case(
        runners={
            "unified": simple_runner(u_step),
            "native": simple_runner(native_step),
        },
        loss_of=lambda t: float(t.detach()),
        framework="torch",
        version=torch.__version__,
    )


# ----------------------------------------------------------------------------------
# JAX
# ----------------------------------------------------------------------------------


def case_jax(model: Model) -> Case:
    x_np, y_np = make_batch(model)
    u_step, u_params, weights = build_unified("jax", model, x_np, y_np)
    import jax
    import jax.numpy as jnp

    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in weights]
    bufs = jax.tree_util.tree_map(jnp.zeros_like, params)

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        h = x
        for i, (w, b) in enumerate(params):
            h = jnp.matmul(h, w.T, precision="highest") + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def train_step(params: Any, bufs: Any, x: Any, y: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        bufs = jax.tree_util.tree_map(lambda m, g: MOMENTUM * m + g, bufs, grads)
        params = jax.tree_util.tree_map(lambda p, m: p - LR * m, params, bufs)
        return params, bufs, loss

    state = {"params": params, "bufs": bufs}

    def native_step() -> Any:
        x, y = jnp.asarray(x_np), jnp.asarray(y_np)  # NumPy batch in
        state["params"], state["bufs"], loss = train_step(
            state["params"], state["bufs"], x, y
        )
        return loss

    def native_direct_step() -> Any:
        # NumPy arrays straight into the jitted function (jit transfers them inside
        # the call; on CPU it may read them after returning, so this is only safe
        # while nobody mutates the batch, as here).
        state["params"], state["bufs"], loss = train_step(
            state["params"], state["bufs"], x_np, y_np
        )
        return loss

    def sync_unified(loss: Any) -> None:
        jax.block_until_ready((loss, [p.data() for p in u_params]))

    def sync_native(loss: Any) -> None:
        jax.block_until_ready((loss, state["params"], state["bufs"]))

    return Case(
        runners={
            "unified": simple_runner(u_step, sync_unified),
            "native": simple_runner(native_step, sync_native),
            "native-direct": simple_runner(native_direct_step, sync_native),
        },
        loss_of=float,
        framework="jax",
        version=jax.__version__,
    )


# ----------------------------------------------------------------------------------
# MXNet
# ----------------------------------------------------------------------------------


def case_mxnet(model: Model) -> Case:
    x_np, y_np = make_batch(model)
    # Selecting the backend first applies the numpy.bool shim MXNet 1.9 needs.
    u_step, _, weights = build_unified("mxnet", model, x_np, y_np)
    import mxnet as mx
    from mxnet import autograd, gluon
    from mxnet.gluon import nn

    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def gluon_step(hybrid: bool) -> Callable[[], Any]:
        net = nn.HybridSequential() if hybrid else nn.Sequential()
        for i, (w, _) in enumerate(weights):
            act = "relu" if i < len(weights) - 1 else None
            net.add(nn.Dense(w.shape[0], activation=act, in_units=w.shape[1]))
        net.initialize()
        for layer, (w, b) in zip(net, weights):
            layer.weight.set_data(mx.nd.array(w, dtype="float32"))
            layer.bias.set_data(mx.nd.array(b, dtype="float32"))
        if hybrid:
            net.hybridize()
        trainer = gluon.Trainer(
            net.collect_params(), "sgd", {"learning_rate": LR, "momentum": MOMENTUM}
        )

        def step() -> Any:
            x = mx.nd.array(x_np, dtype="float32")  # NumPy batch in
            y = mx.nd.array(y_np, dtype="float32")  # Gluon's losses take float labels
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(model.batch)  # per-sample losses: step(batch) is the mean
            return loss

        return step

    def sync(loss: Any) -> None:
        mx.nd.waitall()

    def loss_of(loss: Any) -> float:
        return float(np.mean(loss.asnumpy()))

    return Case(
        runners={
            "unified": simple_runner(u_step, sync),
            "native": simple_runner(gluon_step(False), sync),
            "native-hybrid": simple_runner(gluon_step(True), sync),
        },
        loss_of=loss_of,
        framework="mxnet",
        version=mx.__version__,
    )


CASES: dict[str, Callable[[Model], Case]] = {
    "numpy": case_numpy,
    "torch": case_torch,
    "jax": case_jax,
    "mxnet": case_mxnet,
}


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark every model of ``args.models`` on ``backend`` in this process."""
    return harness.run_backend(
        backend,
        args,
        lambda b, name: CASES[b](MODELS[name]),
        lambda name: MODELS[name].describe(),
    )


def format_report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    return harness.format_report(
        results,
        args,
        title="unified training-step benchmark",
        header=[
            harness.settings_line(args, f"lr {LR}, momentum {MOMENTUM}, float32; ")
        ],
        targets=TARGETS,
        check=f"the losses of steps 1-{CHECK_STEPS} of unified and native agree "
        "(relative difference <= 1e-4)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(__doc__.splitlines()[0], list(MODELS), REPORT)
    return harness.parse(parser, argv, BACKENDS, list(MODELS))


def main(argv: list[str] | None = None) -> int:
    return harness.main(parse_args(argv), __file__, run_backend, format_report)


if __name__ == "__main__":
    sys.exit(main())
