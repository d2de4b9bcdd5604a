"""Time one training step of two CNNs: ``unified`` against native code per backend.

One step is: forward pass, softmax cross-entropy (mean over the batch), backward
pass, SGD update with momentum 0.9 (lr 0.01). Two models (``cnn_models.py``):

* ``lenet``: LeNet-5-style, 1x28x28 inputs, batch 64;
* ``resnet``: a small ResNet (stem + three one-block stages of 16, 32, 64 channels,
  BatchNorm in training mode: batch statistics, running statistics updated),
  3x32x32 inputs, batch 32.

The ``unified`` side is written with unified layers as a user would (a custom
``U.Net`` for the residual block) and trained with ``U.Trainer.step(loss_fn, x, y)``
on NumPy batches. Native code, measured in the same process:

* ``torch``: hand-written ``nn.Module``, ``F.cross_entropy``,
  ``torch.optim.SGD(momentum=0.9)``;
* ``jax``: a hand-written ``jax.jit`` step (``lax.conv_general_dilated``,
  ``lax.reduce_window``, a functional BatchNorm returning its running statistics);
* ``mxnet``: Gluon ``HybridSequential`` / ``HybridBlock``, ``autograd.record()``,
  ``gluon.Trainer('sgd', momentum 0.9)``, run imperatively and hybridized;
* ``numpy``: the NumPy backend against native PyTorch (the same torch code as above),
  both on one OpenMP/OpenBLAS thread.

Both sides start from the same weights (``unified``'s are copied into the native
model) and see the same batch; the losses of the first five steps must agree (the
sanity check). BatchNorm conventions: unified ``momentum=0.9`` is torch's 0.1;
unified's running variance is unbiased like torch's; against Gluon (biased) the
unified model uses ``unbiased_running_var=False`` (training-mode losses do not
depend on the running statistics anyway).

The measurement (interleaved repeats, medians of per-repeat ratios, one subprocess
per backend, thread limits) is ``harness.py``'s, the same as ``train_step.py``'s.

Usage::

    python benchmarks/cnn_step.py                          # every backend
    python benchmarks/cnn_step.py --backends torch,jax --models resnet --repeats 7
    python benchmarks/cnn_step.py --quick --backends numpy --models lenet
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cnn_models  # noqa: E402
import harness  # noqa: E402
from harness import CHECK_STEPS, Case, simple_runner  # noqa: E402

BACKENDS = ("numpy", "torch", "jax", "mxnet")
LR = 0.01
MOMENTUM = 0.9
REPORT = Path(__file__).resolve().parent / "report-cnn.md"

MODELS: dict[str, tuple[tuple[int, int, int], int, str]] = {
    "lenet": ((1, 28, 28), 64, "LeNet-5-style, 1x28x28, batch 64"),
    "resnet": ((3, 32, 32), 32, "ResNet 16-32-64 (BatchNorm, training), 3x32x32, "
               "batch 32"),
}  # fmt: skip
"""name -> (input shape, batch, description)."""

TARGETS: dict[tuple[str, str], float] = {
    **{("torch", m): 1.10 for m in MODELS},
    **{("jax", m): 1.10 for m in MODELS},
    **{("mxnet", m): 1.15 for m in MODELS},
    **{("numpy", m): 3.0 for m in MODELS},
}
"""Upper bounds on unified / native (numpy: against native torch); reported only."""


def make_batch(model: str) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random batch: float32 NCHW inputs and int64 labels of 10 classes."""
    shape, batch, _ = MODELS[model]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, size=batch).astype(np.int64)
    return x, y


def unified_loss(net: Any, x: Any, y: Any) -> Any:
    """The loss given to ``Trainer.step`` (one object: compiled steps are reused)."""
    import unified as U

    return U.losses.softmax_cross_entropy(net(x), y)


def build_unified(
    backend: str, model: str, unbiased_running_var: bool = True
) -> tuple[Callable[[], Any], list[Any], dict[str, np.ndarray]]:
    """Return ``step()``, the parameters and a copy of the initial weights (by
    structural name, running statistics included)."""
    import unified as U

    U.set_backend(backend)
    U.seed(0)
    x, y = make_batch(model)
    net = cnn_models.unified_net(model, unbiased_running_var)
    net.initialize()
    net.infer_shape(x.shape)
    trainer = U.Trainer(net, U.SGD(net.params(), lr=LR, momentum=MOMENTUM))
    weights = {name: np.array(p.numpy(), copy=True) for name, p in net.params().items()}

    def step() -> Any:
        # As users write it (SPEC 10): NumPy batches straight into Trainer.step.
        return trainer.step(unified_loss, x, y)

    return step, list(net.params().values()), weights


def copy_into(slots: list[Any], weights: dict[str, np.ndarray], put: Any) -> None:
    """``put(slot, array)`` for each native slot and unified weight, in order."""
    if len(slots) != len(weights):
        raise RuntimeError(f"{len(slots)} native tensors for {len(weights)} weights")
    for slot, (name, w) in zip(slots, weights.items()):
        if tuple(slot.shape) != w.shape:
            raise RuntimeError(f"{name}: native {tuple(slot.shape)} vs {w.shape}")
        put(slot, w)


def torch_runner(model: str, weights: dict[str, np.ndarray]) -> tuple[Any, str]:
    import torch
    import torch.nn.functional as F  # noqa: N812

    net = cnn_models.torch_net(model)
    with torch.no_grad():
        copy_into(
            cnn_models.torch_slots(net),
            weights,
            lambda t, w: t.copy_(torch.from_numpy(w)),
        )
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    x_np, y_np = make_batch(model)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def step() -> Any:
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
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


def case_jax(model: str) -> Case:
    u_step, u_params, weights = build_unified("jax", model)
    import jax
    import jax.numpy as jnp

    is_state = {n: "running_" in n for n in weights}
    params = {n: jnp.asarray(w) for n, w in weights.items() if not is_state[n]}
    state = {n: jnp.asarray(w) for n, w in weights.items() if is_state[n]}
    bufs = jax.tree_util.tree_map(jnp.zeros_like, params)
    x_np, y_np = make_batch(model)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np.astype(np.int32))

    def loss_fn(params: Any, state: Any, x: Any, y: Any) -> Any:
        logits, new_state = cnn_models.jax_forward(model, params, state, x)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), new_state

    @jax.jit
    def train_step(params: Any, bufs: Any, state: Any, x: Any, y: Any) -> Any:
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, state), grads = grad_fn(params, state, x, y)
        bufs = jax.tree_util.tree_map(lambda m, g: MOMENTUM * m + g, bufs, grads)
        params = jax.tree_util.tree_map(lambda p, m: p - LR * m, params, bufs)
        return params, bufs, state, loss

    live = {"params": params, "bufs": bufs, "state": state}

    def native_step() -> Any:
        live["params"], live["bufs"], live["state"], loss = train_step(
            live["params"], live["bufs"], live["state"], x, y
        )
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
    u_step, _, weights = build_unified("mxnet", model, unbiased_running_var=False)
    import mxnet as mx
    from mxnet import autograd, gluon

    x_np, y_np = make_batch(model)
    x = mx.nd.array(x_np, dtype="float32")
    y = mx.nd.array(y_np, dtype="float32")  # Gluon's losses take float labels
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def gluon_step(hybrid: bool) -> Callable[[], Any]:
        net = cnn_models.gluon_net(model)
        net.initialize()
        net(x)  # deferred shapes (inference mode: running statistics unchanged)
        copy_into(
            list(net.collect_params().values()),
            weights,
            lambda p, w: p.set_data(mx.nd.array(w, dtype="float32")),
        )
        if hybrid:
            net.hybridize()
        trainer = gluon.Trainer(
            net.collect_params(), "sgd", {"learning_rate": LR, "momentum": MOMENTUM}
        )
        batch = x_np.shape[0]

        def step() -> Any:
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(batch)  # per-sample losses: step(batch) is the mean
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
    return harness.run_backend(
        backend, args, lambda b, m: CASES[b](m), lambda m: MODELS[m][2]
    )


def format_report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    return harness.format_report(
        results,
        args,
        title="unified CNN training-step benchmark",
        header=[
            harness.settings_line(args, f"lr {LR}, momentum {MOMENTUM}, float32; "),
            "- models: " + "; ".join(f"{m}: {MODELS[m][2]}" for m in args.models),
            "- numpy: the NumPy backend against native PyTorch (target: within 3x); "
            "mxnet: target against imperative Gluon",
        ],
        targets=TARGETS,
        check=f"the losses of steps 1-{CHECK_STEPS} of unified and native agree "
        "(relative difference <= 1e-4)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(__doc__.splitlines()[0], list(MODELS), REPORT, repeats=7)
    return harness.parse(parser, argv, BACKENDS, list(MODELS))


def main(argv: list[str] | None = None) -> int:
    return harness.main(parse_args(argv), __file__, run_backend, format_report)


if __name__ == "__main__":
    sys.exit(main())
