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
The losses of the first five steps of both sides are compared as a sanity check
(same start, same updates).

Method: after a warm-up, ``unified`` and native runs of ``--steps`` steps are
interleaved (A B, then B A, ...) for ``--repeats`` repeats; each run ends with a
synchronisation (``block_until_ready`` for JAX, ``mx.nd.waitall()`` for MXNet; NumPy
and CPU torch are synchronous). Reported: the median time per step of each side and
the median of the per-repeat ratios unified / native.

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
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("numpy", "torch", "jax", "mxnet")
LR = 0.01
MOMENTUM = 0.9
REPORT = Path(__file__).resolve().parent / "report.md"
RESULT_TAG = "RESULT-JSON "
CHECK_STEPS = 5


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
Runner = Callable[[int], Any]
"""``run(n)`` performs ``n`` training steps, synchronises, returns the last loss."""


@dataclass
class Case:
    """One backend and model: the unified runner and one or more native runners."""

    runners: dict[str, Runner]
    loss_of: Callable[[Any], float]
    framework: str = ""
    version: str = ""
    first_call: dict[str, float] = field(default_factory=dict)


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
    # which converts them (the native sides convert theirs once, outside the loop).
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


def simple_runner(
    step: Callable[[], Any], sync: Callable[[Any], None] | None = None
) -> Runner:
    def run(n: int) -> Any:
        loss = None
        for _ in range(n):
            loss = step()
        if sync is not None:
            sync(loss)
        return loss

    return run


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
    x = torch.from_numpy(x_np.copy())
    y = torch.from_numpy(y_np.copy())

    def native_step() -> Any:
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
    x = jnp.asarray(x_np)
    y = jnp.asarray(y_np.astype(np.int32))

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
        state["params"], state["bufs"], loss = train_step(
            state["params"], state["bufs"], x, y
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

    x = mx.nd.array(x_np, dtype="float32")
    y = mx.nd.array(y_np, dtype="float32")  # Gluon's losses take float labels
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


# ----------------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------------


def measure(
    case: Case, repeats: int, steps: int | None, target_seconds: float
) -> dict[str, Any]:
    """Warm up, then interleave the runners; return per-repeat times and ratios."""
    labels = list(case.runners)
    losses: dict[str, list[float]] = {}
    for label in labels:
        t0 = time.perf_counter()
        loss = case.runners[label](1)
        case.first_call[label] = time.perf_counter() - t0
        # The losses of steps 1..CHECK_STEPS: equal starts and equal updates.
        losses[label] = [case.loss_of(loss)]
        for _ in range(CHECK_STEPS - 1):
            losses[label].append(case.loss_of(case.runners[label](1)))
    # Warm-up, also estimating the cost of a step to choose ``steps``.
    per_step = {}
    for label in labels:
        n, elapsed = 1, 0.0
        while elapsed < target_seconds / 4 and n <= 4096:
            n *= 2
            t0 = time.perf_counter()
            case.runners[label](n)
            elapsed = time.perf_counter() - t0
        per_step[label] = elapsed / n
    if steps is None:
        slowest = max(per_step.values())
        steps = int(min(5000, max(5, round(target_seconds / max(slowest, 1e-7)))))
    for label in labels:
        case.runners[label](max(2, steps // 5))
    times: dict[str, list[float]] = {label: [] for label in labels}
    gc.collect()
    for r in range(repeats):
        order = labels if r % 2 == 0 else labels[::-1]
        for label in order:
            t0 = time.perf_counter()
            case.runners[label](steps)
            times[label].append((time.perf_counter() - t0) / steps)
    ratios = {
        label: [u / n for u, n in zip(times["unified"], times[label])]
        for label in labels
        if label != "unified"
    }
    return {
        "steps": steps,
        "repeats": repeats,
        "median": {label: statistics.median(t) for label, t in times.items()},
        "times": times,
        "ratio": {label: statistics.median(r) for label, r in ratios.items()},
        "ratios": ratios,
        "first_call": dict(case.first_call),
        "losses": losses,
    }


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark every model on ``backend`` in this process."""
    out: dict[str, Any] = {"backend": backend, "models": {}}
    try:
        import unified as U

        U.set_backend(backend)
    except Exception as exc:  # a benchmark: report and skip
        out["error"] = f"failed to load: {type(exc).__name__}: {exc}"
        return out
    for name in args.models:
        model = MODELS[name]
        print(
            f"[{backend}] {name}: {model.describe()} ...", file=sys.stderr, flush=True
        )
        try:
            case = CASES[backend](model)
            result = measure(case, args.repeats, args.steps, args.target_seconds)
        except Exception as exc:
            traceback.print_exc()
            out["models"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out["framework"], out["version"] = case.framework, case.version
        out["models"][name] = result
        med = result["median"]
        ratio = ", ".join(f"{k} {v:.2f}" for k, v in result["ratio"].items())
        print(
            f"[{backend}] {name}: unified {med['unified'] * 1e3:.3f} ms, "
            f"native {med['native'] * 1e3:.3f} ms, ratio {ratio} "
            f"({result['steps']} steps x {result['repeats']})",
            file=sys.stderr,
            flush=True,
        )
    return out


def run_isolated(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`run_backend` in a fresh interpreter; collect its JSON result."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--backends",
        backend,
        "--repeats",
        str(args.repeats),
        "--models",
        ",".join(args.models),
        "--target-seconds",
        str(args.target_seconds),
    ]
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    env = dict(os.environ)
    if args.threads > 0:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(args.threads)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])  # type: ignore[no-any-return]
    return {
        "backend": backend,
        "models": {},
        "error": f"worker exited with status {proc.returncode} and no result",
    }


# ----------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def format_report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# unified training-step benchmark",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- lr {LR}, momentum {MOMENTUM}, float32; repeats {args.repeats}; "
        f"steps per run {'auto' if args.steps is None else args.steps}; "
        f"OpenMP/MKL/OpenBLAS threads {args.threads or 'framework defaults'}"
        f"{' (not applied: --in-process)' if args.in_process and args.threads else ''}",
        "- times are medians per step; ratio is the median of per-repeat "
        "unified / native ratios (range: lowest and highest of them)",
        "",
        "| backend | model | unified ms | native ms | ratio | ratio range | target "
        "| ok |",
        "| --- | --- | ---: | ---: | ---: | :-: | ---: | :-: |",
    ]
    notes, compile_rows, checks = [], [], []
    for res in results:
        backend = res["backend"]
        if "error" in res:
            notes.append(f"- {backend}: skipped ({res['error']})")
            continue
        if res.get("version"):
            notes.append(f"- {backend}: {res['framework']} {res['version']}")
        for name, r in res["models"].items():
            if "error" in r:
                notes.append(f"- {backend} {name}: failed ({r['error']})")
                continue
            for label, ratio in r["ratio"].items():
                target = TARGETS.get((backend, name)) if label == "native" else None
                shown = backend if label == "native" else f"{backend} vs {label}"
                ok = "" if target is None else ("yes" if ratio <= target else "NO")
                spread = f"{min(r['ratios'][label]):.2f}-{max(r['ratios'][label]):.2f}"
                lines.append(
                    f"| {shown} | {name} | {_ms(r['median']['unified'])} | "
                    f"{_ms(r['median'][label])} | {ratio:.2f} | {spread} | "
                    f"{'-' if target is None else f'<= {target:.2f}'} | {ok} |"
                )
            if backend == "jax":
                fc = r["first_call"]
                compile_rows.append(
                    f"| jax | {name} | {_ms(fc['unified'])} | {_ms(fc['native'])} |"
                )
            ref = r["losses"]["unified"]
            for label, seq in r["losses"].items():
                worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(seq, ref))
                if worst > 1e-4:
                    checks.append(
                        f"- {backend} {name}: losses of steps 1-{len(ref)} differ: "
                        f"unified {ref}, {label} {seq}"
                    )
    if compile_rows:
        lines += [
            "",
            "First call (trace + compile + one step), ms:",
            "",
            "| backend | model | unified | native |",
            "| --- | --- | ---: | ---: |",
            *compile_rows,
        ]
    lines += ["", "Steps per run:", ""]
    for res in results:
        for name, r in res.get("models", {}).items():
            if "steps" in r:
                lines.append(
                    f"- {res['backend']} {name}: {r['steps']} steps x {r['repeats']}"
                )
    if checks:
        lines += ["", "Sanity check FAILED (unified and native train differently):", ""]
        lines += checks
    else:
        lines += [
            "",
            f"Sanity check: the losses of steps 1-{CHECK_STEPS} of unified and native "
            "agree (relative difference <= 1e-4).",
        ]
    if notes:
        lines += ["", "Backends:", "", *notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated backends (default: all; unusable ones are skipped)",
    )
    parser.add_argument(
        "--models", default="large,small", help="comma-separated models"
    )
    parser.add_argument(
        "--repeats", type=int, default=15, help="interleaved repeats (default: 15)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per run (default: auto)"
    )
    parser.add_argument(
        "--target-seconds",
        type=float,
        default=0.15,
        help="with automatic --steps, aim for runs of about this long",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP/MKL/OpenBLAS threads of the worker processes (NumPy, PyTorch, "
        "MXNet); 0 keeps the frameworks' defaults (default: 1, the stable choice "
        "on a small, shared machine; JAX keeps its defaults)",
    )
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument(
        "--in-process", action="store_true", help="run every backend in this process"
    )
    parser.add_argument(
        "--output", default=str(REPORT), help="where to write the report"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    for b in args.backends:
        if b not in CASES:
            parser.error(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    for m in args.models:
        if m not in MODELS:
            parser.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    if args.quick:
        args.repeats = min(args.repeats, 3)
        args.target_seconds = min(args.target_seconds, 0.02)
        if args.steps is not None:
            args.steps = min(args.steps, 10)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_backend(args.backends[0], args)
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0
    results = []
    for backend in args.backends:
        if args.in_process:
            results.append(run_backend(backend, args))
        else:
            results.append(run_isolated(backend, args))
        if "error" in results[-1]:
            print(f"[{backend}] skipped: {results[-1]['error']}", file=sys.stderr)
    report = format_report(results, args)
    print(report)
    Path(args.output).write_text(report)
    print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
