"""The measurement harness shared by the benchmark scripts (``train_step.py``,
``cnn_step.py``, ``lstm_step.py``, ``dropout_masks.py``).

A script describes, for each backend and model, a :class:`Case`: a ``unified``
runner and one or more native runners (``run(n)`` does ``n`` steps, synchronises,
returns the last loss). This module does the rest, the same way for every script:

* :func:`measure`: the first call is timed on its own; the losses of the first
  :data:`CHECK_STEPS` steps of every runner are recorded (the sanity check: same
  start, same updates, same losses); a warm-up picks the steps per run so a run lasts
  about ``--target-seconds``; then ``--repeats`` repeats in which every runner does
  one run, the order alternating (A B, then B A, ...). Reported: the median time per
  step of each side and the median (and range) of the per-repeat ratios
  unified / native.
* :func:`main`: one subprocess per backend (``--worker``; frameworks' thread pools
  do not share a process, a crashing backend cannot take the others down), the
  OpenMP/MKL/OpenBLAS pools limited to ``--threads`` threads (default 1), results
  sent back as one JSON line; then the report is printed and written.
* :func:`format_report`: the table of ratios against targets, the JAX first calls,
  the steps per run and the sanity check.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_TAG = "RESULT-JSON "
CHECK_STEPS = 5
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

Runner = Callable[[int], Any]
"""``run(n)`` performs ``n`` steps, synchronises, returns the last loss."""
Result = dict[str, Any]


@dataclass
class Case:
    """One backend and model: the ``unified`` runner and one or more native runners.

    ``runners`` maps labels to runners; ``"unified"`` comes first, the first native
    label is the one the target applies to. ``loss_of`` turns a runner's return value
    into a float for the sanity check, which requires the values of the first
    :data:`CHECK_STEPS` calls to agree within ``tolerance`` (relative, at least 1 in
    the denominator).
    """

    runners: dict[str, Runner]
    loss_of: Callable[[Any], float]
    framework: str = ""
    version: str = ""
    tolerance: float = 1e-4
    first_call: dict[str, float] = field(default_factory=dict)


def simple_runner(
    step: Callable[[], Any], sync: Callable[[Any], None] | None = None
) -> Runner:
    """A runner calling ``step()`` ``n`` times, then ``sync(last)`` if given."""

    def run(n: int) -> Any:
        loss = None
        for _ in range(n):
            loss = step()
        if sync is not None:
            sync(loss)
        return loss

    return run


def prepare(
    case: Case, target_seconds: float
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Time each runner's first call (into ``case.first_call``), record the losses
    of its first :data:`CHECK_STEPS` steps and warm it up; return the losses and
    the estimated time of one step per runner."""
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
    return losses, per_step


def measure(
    case: Case, repeats: int, steps: int | None, target_seconds: float
) -> Result:
    """Warm up, then interleave the runners; return per-repeat times and ratios."""
    labels = list(case.runners)
    losses, per_step = prepare(case, target_seconds)
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
        "tolerance": case.tolerance,
    }


def run_backend(
    backend: str,
    args: argparse.Namespace,
    make_case: Callable[[str, str], Case],
    describe: Callable[[str], str],
) -> Result:
    """Measure every model of ``args.models`` on ``backend`` in this process.

    ``make_case(backend, model)`` builds the case; ``describe(model)`` names it in
    the progress lines (printed to stderr).
    """
    out: Result = {"backend": backend, "models": {}}
    try:
        import unified as U

        U.set_backend(backend)
    except Exception as exc:  # a benchmark: report and skip
        out["error"] = f"failed to load: {type(exc).__name__}: {exc}"
        return out
    for name in args.models:
        print(f"[{backend}] {name}: {describe(name)} ...", file=sys.stderr, flush=True)
        try:
            case = make_case(backend, name)
            result = measure(case, args.repeats, args.steps, args.target_seconds)
        except Exception as exc:
            traceback.print_exc()
            out["models"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out["framework"], out["version"] = case.framework, case.version
        out["models"][name] = result
        med = result["median"]
        ratio = ", ".join(f"{k} {v:.2f}" for k, v in result["ratio"].items())
        natives = ", ".join(
            f"{k} {v * 1e3:.3f} ms" for k, v in med.items() if k != "unified"
        )
        print(
            f"[{backend}] {name}: unified {med['unified'] * 1e3:.3f} ms, {natives}; "
            f"ratio {ratio} ({result['steps']} steps x {result['repeats']})",
            file=sys.stderr,
            flush=True,
        )
    return out


def thread_env(threads: int) -> dict[str, str]:
    """This process' environment with the OpenMP/MKL/OpenBLAS pools limited to
    ``threads`` threads (unchanged for ``threads <= 0``)."""
    env = dict(os.environ)
    if threads > 0:
        for var in THREAD_VARS:
            env[var] = str(threads)
    return env


def run_isolated(script: str, backend: str, args: argparse.Namespace) -> Result:
    """Run ``script --worker`` for one backend in a fresh interpreter; collect its
    JSON result."""
    cmd = [
        sys.executable,
        os.path.abspath(script),
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
    proc = subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        env=thread_env(args.threads),
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])  # type: ignore[no-any-return]
    return {
        "backend": backend,
        "models": {},
        "error": f"worker exited with status {proc.returncode} and no result",
    }


def main(
    args: argparse.Namespace,
    script: str,
    run_one: Callable[[str, argparse.Namespace], Result],
    report: Callable[[list[Result], argparse.Namespace], str],
) -> int:
    """Run every backend (each in a subprocess unless ``--in-process``), print the
    report and write it to ``args.output``."""
    if args.worker:
        reply(run_one(args.backends[0], args))
        return 0
    results = []
    for backend in args.backends:
        if args.in_process:
            results.append(run_one(backend, args))
        else:
            results.append(run_isolated(script, backend, args))
        if "error" in results[-1]:
            print(f"[{backend}] skipped: {results[-1]['error']}", file=sys.stderr)
    text = report(results, args)
    print(text)
    Path(args.output).write_text(text)
    print(f"written to {args.output}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------
# Worker output
# ----------------------------------------------------------------------------------


def reply(obj: Result) -> None:
    """Worker side: send one result line to the parent."""
    print(RESULT_TAG + json.dumps(obj), flush=True)


# ----------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------


def parser(
    description: str, models: Sequence[str], output: Path, repeats: int = 15
) -> argparse.ArgumentParser:
    """The options every script shares (``--backends``, ``--models``, ...)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--backends",
        default="numpy,torch,jax,mxnet",
        help="comma-separated backends (default: all; unusable ones are skipped)",
    )
    p.add_argument(
        "--models",
        default=",".join(models),
        help=f"comma-separated models (default: {','.join(models)})",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=repeats,
        help=f"interleaved repeats (default: {repeats})",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="steps per run (default: auto)"
    )
    p.add_argument(
        "--target-seconds",
        type=float,
        default=0.15,
        help="with automatic --steps, aim for runs of about this long",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP/MKL/OpenBLAS threads of the worker processes (NumPy, PyTorch, "
        "MXNet); 0 keeps the frameworks' defaults (default: 1, the stable choice "
        "on a small, shared machine; JAX keeps its defaults)",
    )
    p.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    p.add_argument(
        "--in-process", action="store_true", help="run every backend in this process"
    )
    p.add_argument("--output", default=str(output), help="where to write the report")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def parse(
    p: argparse.ArgumentParser,
    argv: list[str] | None,
    backends: Sequence[str],
    models: Sequence[str],
) -> argparse.Namespace:
    """Parse and check the shared options; ``--quick`` lowers the counts."""
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    for b in args.backends:
        if b not in backends:
            p.error(f"unknown backend {b!r}; choose from {', '.join(backends)}")
    for m in args.models:
        if m not in models:
            p.error(f"unknown model {m!r}; choose from {', '.join(models)}")
    if args.quick:
        args.repeats = min(args.repeats, 3)
        args.target_seconds = min(args.target_seconds, 0.02)
        if args.steps is not None:
            args.steps = min(args.steps, 10)
    return args


# ----------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def machine_line() -> str:
    return (
        f"- machine: {platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def settings_line(args: argparse.Namespace, extra: str) -> str:
    steps = "auto" if args.steps is None else args.steps
    applied = " (not applied: --in-process)" if args.in_process and args.threads else ""
    return (
        f"- {extra}repeats {args.repeats}; steps per run {steps}; "
        f"OpenMP/MKL/OpenBLAS threads {args.threads or 'framework defaults'}{applied}"
    )


def format_report(
    results: list[Result],
    args: argparse.Namespace,
    title: str,
    header: list[str],
    targets: dict[tuple[str, str], float],
    check: str,
    unit: str = "ms",
) -> str:
    """The Markdown report: a row per (backend, model, native variant).

    ``targets[(backend, model)]`` bounds the ratio against the first native variant.
    ``check`` describes what agreeing "losses" means for this script.
    """
    lines = [
        f"# {title}",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S')}",
        machine_line(),
        *header,
        "- times are medians per step; ratio is the median of per-repeat "
        "unified / native ratios (range: lowest and highest of them)",
        "",
        f"| backend | model | unified {unit} | native {unit} | ratio | ratio range "
        "| target | ok |",
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
            for i, (label, ratio) in enumerate(r["ratio"].items()):
                target = targets.get((backend, name)) if i == 0 else None
                shown = backend if label == "native" else f"{backend} vs {label}"
                ok = "" if target is None else ("yes" if ratio <= target else "NO")
                spread = f"{min(r['ratios'][label]):.2f}-{max(r['ratios'][label]):.2f}"
                lines.append(
                    f"| {shown} | {name} | {ms(r['median']['unified'])} | "
                    f"{ms(r['median'][label])} | {ratio:.2f} | {spread} | "
                    f"{'-' if target is None else f'<= {target:.2f}'} | {ok} |"
                )
            if backend == "jax":
                fc = r["first_call"]
                # The first native variant compiles; later ones reuse its function.
                native = next(v for k, v in fc.items() if k != "unified")
                compile_rows.append(
                    f"| jax | {name} | {ms(fc['unified'])} | {ms(native)} |"
                )
            ref = r["losses"]["unified"]
            for label, seq in r["losses"].items():
                worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(seq, ref))
                if worst > r.get("tolerance", 1e-4):
                    checks.append(
                        f"- {backend} {name}: values of calls 1-{len(ref)} differ: "
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
        lines += ["", "Sanity check FAILED (unified and native differ):", ""]
        lines += checks
    else:
        lines += ["", f"Sanity check passed: {check}."]
    if notes:
        lines += ["", "Backends:", "", *notes]
    return "\n".join(lines) + "\n"
