"""``unified`` side by side with native code and Keras 3, in one interleaved run.

Peers, for each model (``small`` and ``large`` MLP of ``train_step.py``, ``lenet``
and ``resnet`` of ``cnn_step.py``, the LSTM language model of ``lstm_step.py``):

* ``unified-<backend>``: ``U.Trainer.step`` on numpy, torch, jax and mxnet;
* ``native-<backend>``: the hand-written native step of those scripts (for MXNet
  hybridized Gluon; the NumPy backend has no native CNN or LSTM and is compared
  with ``native-torch`` there);
* ``keras-jax-fit``, ``keras-torch-fit``: Keras 3 ``train_on_batch``;
* ``keras-jax-loop``: ``jax.value_and_grad`` over ``stateless_call`` under
  ``jax.jit``; ``keras-torch-loop``: a PyTorch loop over the Keras model
  (``keras_models.py``).

Every peer starts from ``unified``'s initial weights and trains on the same batch,
with the same loss, optimizer and learning rate; the loss after
:data:`harness.CHECK_STEPS` steps is printed for each, so a reader sees they
computed the same thing.

Interleaving. Each backend and each Keras backend (``KERAS_BACKEND`` is read when
Keras is imported) runs in its own *persistent* worker process: six workers, alive
together, idle unless asked. Each first builds its models and, one model at a
time, times the first call (trace and compile included), records the first losses,
warms up and measures the peak memory of a step (``peak_memory.py``). Workers are
set up one after another, so first calls do not compete. Then, per model, the
parent runs ``--repeats`` rounds: in each it asks every worker in turn to run each
of its peers for a run of about ``--target-seconds`` (one process busy at a
time), reversing the order of workers and of peers every other round. A peer's
ratio to native is the median over rounds of (its time / the native time of the
same round); the range is the lowest and highest of those per-round ratios.

Roofline: in the ``large`` rounds the numpy, torch and jax workers also time a
plain 1024 x 1024 x 1024 float32 matmul (``np.matmul``, ``torch.mm``, a jitted
``jnp.matmul`` at precision highest), on the same threads as the steps; each
peer's large-MLP step is reported in GFLOP/s (the MLP's matmul FLOPs forward and
backward over its time) and as a fraction of its own framework's matmul (MXNet:
NumPy's) and of the fastest of the three.

Usage::

    python benchmarks/peers.py --quick                # 1.5 to 3 minutes
    python benchmarks/peers.py --json out.json --plot docs/img/peers.png
    python benchmarks/peers.py --groups numpy,keras-jax --models small,large
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Case, Result  # noqa: E402
from peak_memory import peak_bytes  # noqa: E402
from rounds import Worker, round_robin, serve, timed_runs  # noqa: E402

GROUPS = ("numpy", "torch", "keras-torch", "keras-jax", "jax", "mxnet")
"""The workers, in round order: each Keras worker next to its framework's, and
numpy next to torch (its native peer for the CNNs and the LSTM), so that a peer
and its native peer run close together in time whichever way a round goes."""
MODELS = ("small", "large", "lenet", "resnet", "lstm")
COUNTER = {
    "numpy": "tracemalloc",
    "torch": "torch-profiler",
    "jax": "rss",
    "mxnet": "rss",
    "keras-jax": "rss",
    "keras-torch": "torch-profiler",
}
"""The peak-memory counter of each worker (``peak_memory.py``)."""
MATMUL = 1024
REPORT = Path(__file__).resolve().parent / "report-peers.md"


# ----------------------------------------------------------------------------------
# Models (the existing scripts' definitions) and peers
# ----------------------------------------------------------------------------------


def script_of(model: str) -> tuple[Any, Any]:
    """The script defining ``model`` and its model argument there."""
    import cnn_step
    import lstm_step
    import train_step

    if model in ("small", "large"):
        return train_step, train_step.MODELS[model]
    if model in ("lenet", "resnet"):
        return cnn_step, model
    return lstm_step, "small" if os.environ.get("PEERS_SMALL_LSTM") else "lstm"


def describe(model: str) -> str:
    script, arg = script_of(model)
    if model in ("small", "large"):
        return str(arg.describe())
    if model == "lstm":
        return str(script.describe(arg))
    return str(script.MODELS[arg][2])


def mlp_flops(model: Any) -> float:
    """Matmul FLOPs of one MLP step: forward, weight gradients, and input gradients
    of every layer but the first."""
    sizes = (model.inputs, *model.hidden, model.outputs)
    products = [a * b for a, b in zip(sizes, sizes[1:])]
    return 2.0 * model.batch * (2 * sum(products) + sum(products[1:]))


def backend_peers(group: str, model: str) -> dict[str, Case]:
    """``unified-<group>`` and ``native-<group>`` from the model's script."""
    script, arg = script_of(model)
    case = script.CASES[group](arg)
    keep = {"unified": f"unified-{group}", "native": f"native-{group}"}
    if group == "mxnet":
        keep = {"unified": "unified-mxnet", "native-hybrid": "native-mxnet"}
    peers = {}
    for label, name in keep.items():
        if label in case.runners:
            peers[name] = Case({name: case.runners[label]}, case.loss_of)
    return peers


def keras_peers(group: str, model: str) -> dict[str, Case]:
    """``<group>-fit`` and ``<group>-loop`` (Keras) from unified's initial weights."""
    import keras_models as km

    script, arg = script_of(model)
    momentum = getattr(script, "MOMENTUM", 0.0)
    if model in ("small", "large"):
        x, y = script.make_batch(arg)
        pairs = script.build_unified("numpy", arg, x, y)[2]
        weights = [w for pair in pairs for w in pair]

        def make() -> Any:
            return km.mlp(arg.hidden, arg.inputs, arg.outputs)

    else:
        x, y = script.make_batch(arg)
        weights = list(script.build_unified("numpy", arg)[2].values())
        if model == "lstm":
            x, y = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)

            def make() -> Any:
                return km.language_model(script.MODELS[arg])

        else:

            def make() -> Any:
                return km.lenet() if model == "lenet" else km.resnet()

    peers = {}
    for kind, runner_of in (("fit", km.fit_runner), ("loop", km.loop_runner)):
        net, layers = make()
        km.set_weights(layers, weights)
        run, loss_of = runner_of(net, x, y, script.LR, momentum)
        peers[f"{group}-{kind}"] = Case({f"{group}-{kind}": run}, loss_of)
    return peers


def matmul_runner(group: str) -> Any:
    """A plain float32 matmul of the worker's framework (the roofline)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((MATMUL, MATMUL)).astype(np.float32) for _ in "ab")
    if group == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return harness.simple_runner(lambda: torch.mm(ta, tb))
    if group == "jax":
        import jax
        import jax.numpy as jnp

        ja, jb = jnp.asarray(a), jnp.asarray(b)
        mm = jax.jit(lambda a, b: jnp.matmul(a, b, precision="highest"))
        return harness.simple_runner(lambda: mm(ja, jb), jax.block_until_ready)
    return harness.simple_runner(lambda: np.matmul(a, b))


# ----------------------------------------------------------------------------------
# Worker
# ----------------------------------------------------------------------------------


def versions(group: str) -> str:
    if group.startswith("keras"):
        import keras

        return f"keras {keras.__version__} ({keras.backend.backend()})"
    module = __import__(group)
    return f"{group} {module.__version__}"


def worker(args: argparse.Namespace) -> int:
    """Build, check, warm up and measure memory; then serve timed runs."""
    group = args.worker
    runners: dict[str, dict[str, Any]] = {}
    setup: Result = {"group": group, "models": {}}
    try:
        if group.startswith("keras"):
            import keras  # noqa: F401  (KERAS_BACKEND is set by the parent)
        else:
            import unified as U

            U.set_backend(group)
        setup["version"] = versions(group)
    except Exception as exc:  # a missing peer: reported and skipped
        setup["error"] = f"{type(exc).__name__}: {exc}"
        if group.startswith("keras"):
            setup["error"] += " (pip install -e '.[bench]' -c constraints.txt)"
        serve(setup, lambda request: {"times": {}})
        return 0
    for model in args.models:
        print(f"[{group}] {model}: {describe(model)} ...", file=sys.stderr, flush=True)
        try:
            if group.startswith("keras"):
                peers = keras_peers(group, model)
            else:
                peers = backend_peers(group, model)
            info: Result = {}
            runners[model] = {}
            for label, case in peers.items():
                losses, per_step = harness.prepare(case, args.target)
                info[label] = {
                    "first_call": case.first_call[label],
                    "losses": losses[label],
                    "per_step": per_step[label],
                    "memory": peak_bytes(case.runners[label], COUNTER[group]),
                    "counter": COUNTER[group],
                }
                runners[model][label] = case.runners[label]
            if model == "large" and group in ("numpy", "torch", "jax"):
                label = f"matmul-{group}"
                runners[model][label] = run = matmul_runner(group)
                run(2)
                t0 = time.perf_counter()
                run(3)
                info[label] = {"per_step": (time.perf_counter() - t0) / 3}
            setup["models"][model] = info
        except Exception as exc:
            import traceback

            traceback.print_exc()
            setup["models"][model] = {"error": f"{type(exc).__name__}: {exc}"}
    serve(
        setup,
        lambda request: timed_runs(runners[request["model"]], request["steps"]),
    )
    return 0


# ----------------------------------------------------------------------------------
# Parent
# ----------------------------------------------------------------------------------


def start(group: str, args: argparse.Namespace) -> Worker:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", group]
    cmd += ["--models", ",".join(args.models), "--target", str(args.target)]
    env = harness.thread_env(args.threads)
    if group.startswith("keras"):
        env["KERAS_BACKEND"] = group.split("-")[1]
    return Worker(group, cmd, env)


def steps_per_run(per_step: float, args: argparse.Namespace) -> int:
    """Steps of a run lasting about ``args.target`` seconds (at least
    ``args.min_steps``, at most 5000)."""
    return int(min(5000, max(args.min_steps, round(args.target / per_step))))


def collect(args: argparse.Namespace) -> Result:
    """Set the workers up one after another, then interleave every model."""
    workers: list[Worker] = []
    results: Result = {"groups": {}, "models": {}, "notes": []}
    try:
        for group in args.groups:
            print(f"[{group}] starting worker ...", file=sys.stderr, flush=True)
            worker = start(group, args)
            try:
                setup = worker.setup = worker.read()
            except RuntimeError as exc:
                setup = {"error": str(exc)}
            results["groups"][group] = setup.get("version", "")
            if "error" in setup:
                results["notes"].append(f"{group}: skipped, {setup['error']}")
                print(f"note: {group} skipped ({setup['error']})", file=sys.stderr)
                worker.close()
                continue
            workers.append(worker)
        for model in args.models:
            plan, peers = [], {}
            for worker in workers:
                info = worker.setup["models"].get(model, {})
                if "error" in info:
                    results["notes"].append(f"{worker.name} {model}: {info['error']}")
                    continue
                steps = {
                    label: steps_per_run(i["per_step"], args)
                    for label, i in info.items()
                }
                plan.append((worker, steps))
                peers.update({k: {**v, "steps": steps[k]} for k, v in info.items()})
            print(
                f"[{model}] {len(peers)} peers x {args.repeats} rounds ...",
                file=sys.stderr,
                flush=True,
            )
            times = round_robin(plan, {"model": model}, args.repeats)
            for label, peer in peers.items():
                peer["times"] = times[label]
            results["models"][model] = {"describe": describe(model), "peers": peers}
    finally:
        for worker in workers:
            worker.close()
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--groups",
        default=",".join(GROUPS),
        help="comma-separated workers "
        f"(default: {','.join(GROUPS)}; a missing peer is skipped)",
    )
    p.add_argument(
        "--models",
        default=None,
        help=f"comma-separated, from {','.join(MODELS)} "
        "(default: all; --quick: all but resnet, and a small LSTM)",
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="rounds (default 9; --quick 3)"
    )
    p.add_argument(
        "--target",
        type=float,
        default=None,
        help="seconds per run of a peer (default 0.1; --quick 0.02)",
    )
    p.add_argument("--min-steps", type=int, default=2, help="least steps per run")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP/MKL/OpenBLAS threads "
        "of the workers (default 1; 0 keeps the frameworks' defaults)",
    )
    p.add_argument(
        "--quick", action="store_true", help="a short run (1.5 to 3 minutes)"
    )
    p.add_argument("--json", help="also save the results as JSON to this file")
    p.add_argument("--plot", help="also plot the ratios to this PNG file (matplotlib)")
    p.add_argument("--output", default=str(REPORT), help="where to write the table")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.groups = [g for g in args.groups.split(",") if g]
    default = [m for m in MODELS if m != "resnet"] if args.quick else list(MODELS)
    args.models = args.models.split(",") if args.models else default
    for name, given, allowed in (
        ("group", args.groups, GROUPS),
        ("model", args.models, MODELS),
    ):
        for g in given:
            if g not in allowed:
                p.error(f"unknown {name} {g!r}; choose from {', '.join(allowed)}")
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.target = args.target or (0.02 if args.quick else 0.1)
    if args.quick:
        args.min_steps = min(args.min_steps, 1)
        os.environ["PEERS_SMALL_LSTM"] = "1"  # read by script_of, here and in workers
    return args


def main(argv: list[str] | None = None) -> int:
    import peers_report

    args = parse_args(argv)
    if args.worker:
        return worker(args)
    began = time.time()
    results = collect(args)
    results["settings"] = {
        "command": "python benchmarks/peers.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(began)),
        "seconds": round(time.time() - began, 1),
        "machine": harness.machine_line()[2:],
        "repeats": args.repeats,
        "target": args.target,
        "threads": args.threads,
        "matmul": MATMUL,
    }
    if "large" in results["models"]:
        script, arg = script_of("large")
        results["settings"]["large_flops"] = mlp_flops(arg)
    text = peers_report.table(results)
    print(text)
    Path(args.output).write_text(text)
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.plot:
        peers_report.plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
