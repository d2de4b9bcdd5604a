"""Data-parallel training step of the small ResNet: ``unified.distributed`` against
the frameworks' own data parallelism, and 2 replicas against one process.

The model, batch (32 images 3x32x32, 10 classes), loss (softmax cross-entropy) and
update (SGD, momentum 0.9) are ``cnn_step.py``'s ``resnet``. Measured:

* ``torch``: 2 processes over gloo on 127.0.0.1 (launched as ``torchrun`` would),
  16 rows each. unified: ``Trainer(net, opt, world=U.distributed.init())``
  (per-replica BatchNorm statistics, one flat gradient all-reduce per step);
  native: ``DistributedDataParallel`` (``broadcast_buffers=False``: the same
  per-replica statistics). One process on the 32 rows: the same two without a world.
* ``jax``: one process with 2 forced host devices. unified: ``Trainer`` with a world
  of the 2 devices (``sync_batch_norm=True``, which is what one SPMD program over the
  global batch computes natively); native: the hand-written ``jax.jit`` step of
  ``cnn_step.py`` with the batch sharded (``NamedSharding``) and the parameters
  replicated. One device: the same two unsharded.

Every process uses one OpenMP thread. Each repeat times ``--steps`` steps of every
side, the order alternating; reported are medians over ``--repeats`` of the time per
step and of the per-repeat ratios. Communication: torch, the flat all-reduce inside
``reduce_gradients`` (unified) and an all-reduce of a buffer of the gradients' size
(native DDP overlaps it with backward); JAX, a compiled all-reduce of the gradients'
size over the 2 devices (XLA fuses it into the step, so it is an estimate). On this
2-core machine a speed-up from 2 replicas is not expected; the target is the
overhead over the native data-parallel step (unified / native <= 1.10).

Usage::

    python benchmarks/data_parallel.py                    # torch and jax
    python benchmarks/data_parallel.py --backends jax --steps 5 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cnn_models  # noqa: E402
import cnn_step  # noqa: E402

MODEL = "resnet"
_barriers: list[Callable[[], None]] = []
TARGET = 1.10
TAG = "RESULT-JSON "
ROOT = Path(__file__).resolve().parents[1]


def _unified(backend: str, world: Any, sync: bool = False) -> tuple[Any, Any, Any]:
    """The unified ResNet, its trainer and its initial weights (rank 0's)."""
    import unified as U

    U.set_backend(backend)
    U.seed(0)
    x, _ = cnn_step.make_batch(MODEL)
    net = cnn_models.unified_net(MODEL)
    net.initialize()
    net.infer_shape(x.shape)
    weights = {n: np.array(p.numpy(), copy=True) for n, p in net.params().items()}
    if world is not None:
        world.prepare(net, sync_batch_norm=sync)
    opt = U.SGD(net.params(), lr=cnn_step.LR, momentum=cnn_step.MOMENTUM)
    return net, U.Trainer(net, opt, world=world), weights


def _time(fn: Callable[[], Any], steps: int, sync: Callable[[Any], Any]) -> float:
    start = time.perf_counter()
    out = None
    for _ in range(steps):
        out = fn()
    sync(out)
    return (time.perf_counter() - start) / steps


def _measure(
    sides: dict[str, Callable[[], Any]],
    steps: int,
    repeats: int,
    sync: Callable[[Any], Any],
    barrier: Callable[[], None] = lambda: None,
) -> dict[str, list[float]]:
    """Per-step seconds of each side in each repeat (after one warm-up run)."""
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        barrier()
        _time(sides[n], 2, sync)  # compile / warm up
    for r in range(repeats):
        for n in names if r % 2 == 0 else names[::-1]:
            barrier()
            times[n].append(_time(sides[n], steps, sync))
    return times


# -- torch ---------------------------------------------------------------------------
def torch_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch.nn.parallel import DistributedDataParallel

    import unified as U

    torch.set_num_threads(1)
    x_np, y_np = cnn_step.make_batch(MODEL)
    distributed = os.environ.get("WORLD_SIZE", "1") != "1"
    world = U.distributed.init("torch") if distributed else None
    net, trainer, weights = _unified("torch", world)
    native = cnn_models.torch_net(MODEL)
    with torch.no_grad():
        cnn_step.copy_into(
            cnn_models.torch_slots(native),
            weights,
            lambda t, w: t.copy_(torch.from_numpy(w)),
        )
    native.train()
    comm: list[float] = []
    if world is not None:
        x_np, y_np = world.shard(x_np, y_np)
        native = DistributedDataParallel(native, broadcast_buffers=False)
        reduce = world.reduce_gradients

        def timed_reduce(*a: Any) -> None:
            start = time.perf_counter()
            reduce(*a)
            comm.append(time.perf_counter() - start)

        world.reduce_gradients = timed_reduce  # type: ignore[method-assign]
    opt = torch.optim.SGD(
        native.parameters(), lr=cnn_step.LR, momentum=cnn_step.MOMENTUM
    )
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def native_step() -> Any:
        opt.zero_grad()
        loss = F.cross_entropy(native(x), y)
        loss.backward()
        opt.step()
        return loss

    def unified_step() -> Any:
        return trainer.step(cnn_step.unified_loss, x_np, y_np)

    first = (float(unified_step()), float(native_step().detach()))
    barrier = world.barrier if world is not None else (lambda: None)
    times = _measure(
        {"unified": unified_step, "native": native_step},
        args.steps,
        args.repeats,
        lambda out: None,
        barrier,
    )
    result: dict[str, Any] = {"times": times, "first_loss": first}
    if world is not None:
        size = sum(p.numel() for p in native.parameters())
        flat = torch.zeros(size)
        barrier()
        start = time.perf_counter()
        for _ in range(20):
            torch.distributed.all_reduce(flat)
        result["comm"] = {
            "unified": statistics.median(comm),
            "native": (time.perf_counter() - start) / 20,
        }
        result["rank"] = world.rank
        # No world.close(): the process ends with os._exit once every rank has
        # written its result (a rank destroying its group after rank 0, which
        # hosts the store, has exited can hang).
        _barriers.append(world.barrier)
    return result


# -- jax -----------------------------------------------------------------------------
def jax_worker(args: argparse.Namespace) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import unified as U

    x_np, y_np = cnn_step.make_batch(MODEL)
    world = U.distributed.init("jax")
    one_net, one, weights = _unified("jax", None)
    dp_net, dp, _ = _unified("jax", world, sync=True)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows, whole = (
        NamedSharding(mesh, PartitionSpec("data")),
        NamedSharding(mesh, PartitionSpec()),
    )
    is_state = {n: "running_" in n for n in weights}

    def loss_fn(params: Any, state: Any, x: Any, y: Any) -> Any:
        logits, new_state = cnn_models.jax_forward(MODEL, params, state, x)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), new_state

    @jax.jit
    def train_step(params: Any, bufs: Any, state: Any, x: Any, y: Any) -> Any:
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, state), grads = grad_fn(params, state, x, y)
        m = cnn_step.MOMENTUM
        bufs = jax.tree_util.tree_map(lambda b, g: m * b + g, bufs, grads)
        params = jax.tree_util.tree_map(lambda p, b: p - cnn_step.LR * b, params, bufs)
        return params, bufs, state, loss

    def native(sharded: bool) -> Callable[[], Any]:
        put = (lambda a, s: jax.device_put(a, s)) if sharded else (lambda a, s: a)
        params = {
            n: put(jnp.asarray(w), whole) for n, w in weights.items() if not is_state[n]
        }
        state = {
            n: put(jnp.asarray(w), whole) for n, w in weights.items() if is_state[n]
        }
        live = {
            "params": params,
            "bufs": jax.tree_util.tree_map(jnp.zeros_like, params),
            "state": state,
        }
        x = put(jnp.asarray(x_np), rows)
        y = put(jnp.asarray(y_np.astype(np.int32)), rows)

        def step() -> Any:
            live["params"], live["bufs"], live["state"], loss = train_step(
                live["params"], live["bufs"], live["state"], x, y
            )
            return loss

        return step

    sides = {
        "unified-1": lambda: one.step(cnn_step.unified_loss, x_np, y_np),
        "native-1": native(False),
        "unified": lambda: dp.step(cnn_step.unified_loss, x_np, y_np),
        "native": native(True),
    }
    first = {n: float(s()) for n, s in sides.items()}
    times = _measure(sides, args.steps, args.repeats, jax.block_until_ready)
    size = sum(int(np.prod(w.shape)) for n, w in weights.items() if not is_state[n])
    grads = jax.device_put(jnp.ones((world.replicas, size), jnp.float32), rows)
    reduce = jax.jit(lambda g: g.sum(0), out_shardings=whole)
    jax.block_until_ready(reduce(grads))
    start = time.perf_counter()
    for _ in range(20):
        out = reduce(grads)
    jax.block_until_ready(out)
    comm = (time.perf_counter() - start) / 20
    return {
        "times": times,
        "first_loss": first,
        "comm": {"unified": comm, "native": comm},
        "devices": world.replicas,
    }


# -- driver --------------------------------------------------------------------------
def _environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["OPENBLAS_NUM_THREADS"] = "1"
    paths = [str(ROOT), str(ROOT / "backends"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def _run(
    backend: str, args: argparse.Namespace, processes: int
) -> list[dict[str, Any]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    command = [sys.executable, __file__, "--worker", backend]
    command += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    procs, outputs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rank in range(processes):
            extra = {"RANK": str(rank), "WORLD_SIZE": str(processes)}
            extra.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
            if backend == "jax":
                extra = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
            outputs.append(Path(tmp) / f"rank{rank}.txt")
            with outputs[-1].open("w") as sink:  # files, not pipes: none can fill up
                procs.append(
                    subprocess.Popen(command, env=_environment(**extra), stdout=sink)
                )
        for p in procs:
            p.wait(timeout=900)
        results = []
        for p, path in zip(procs, outputs):
            text = path.read_text()
            if p.returncode != 0:
                raise RuntimeError(f"{backend} worker failed ({p.returncode}):\n{text}")
            line = [x for x in text.splitlines() if x.startswith(TAG)][-1]
            results.append(json.loads(line[len(TAG) :]))
    return results


def _ms(values: list[float]) -> str:
    return f"{1e3 * statistics.median(values):.1f}"


def _ratio(a: list[float], b: list[float]) -> str:
    ratios = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def report(torch_one: Any, torch_dp: Any, jax_res: Any) -> str:
    lines = [
        "| backend | side | 1 process ms/step | 2 replicas ms/step | "
        "comm ms/step | 2 replicas / 1 | unified / native (2 replicas) |",
        "|---|---|---|---|---|---|---|",
    ]
    if torch_dp is not None:
        one, dp = torch_one["times"], torch_dp["times"]
        for side, label in (("unified", "unified"), ("native", "native DDP")):
            lines.append(
                f"| torch (gloo, 2 processes) | {label} | {_ms(one[side])} | "
                f"{_ms(dp[side])} | {1e3 * torch_dp['comm'][side]:.2f} | "
                f"{statistics.median(dp[side]) / statistics.median(one[side]):.2f} | "
                + (_ratio(dp["unified"], dp["native"]) if side == "unified" else "")
                + " |"
            )
    if jax_res is not None:
        t = jax_res["times"]
        for side, label in (
            ("unified", "unified"),
            ("native", "native jit, sharded"),
        ):
            speedup = statistics.median(t[side]) / statistics.median(t[side + "-1"])
            lines.append(
                f"| jax (2 host devices) | {label} | {_ms(t[side + '-1'])} | "
                f"{_ms(t[side])} | {1e3 * jax_res['comm'][side]:.2f} (est.) | "
                f"{speedup:.2f} | "
                + (_ratio(t["unified"], t["native"]) if side == "unified" else "")
                + " |"
            )
    lines.append(f"\nTarget: unified / native (2 replicas) <= {TARGET:.2f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,jax")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import faulthandler

        hang = int(os.environ.get("DP_HANG_SECONDS", "600"))
        faulthandler.dump_traceback_later(hang, exit=True)  # a hang shows where
        run = torch_worker if args.worker == "torch" else jax_worker
        print(TAG + json.dumps(run(args)), flush=True)
        for barrier in _barriers:
            barrier()
        # Skip the interpreter's teardown: torch's threads have been seen to hang
        # at exit on this machine once the result is out.
        os._exit(0)
    backends = args.backends.split(",")
    torch_one = torch_dp = jax_res = None
    if "torch" in backends:
        (torch_one,) = _run("torch", args, 1)
        torch_dp = next(r for r in _run("torch", args, 2) if r["rank"] == 0)
        print("torch first losses (unified, native):", torch_one["first_loss"])
    if "jax" in backends:
        (jax_res,) = _run("jax", args, 1)
        print("jax first losses:", jax_res["first_loss"])
    print(report(torch_one, torch_dp, jax_res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
