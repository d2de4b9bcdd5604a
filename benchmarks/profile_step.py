"""Profile the ``unified`` training step of :mod:`train_step` or :mod:`cnn_step`.

Builds the same case as ``train_step.py`` (models ``large``, ``small``) or
``cnn_step.py`` (``lenet``, ``resnet``): same model, batch, optimizer; warms it up,
then profiles ``--steps`` unified steps (or native ones with ``--native``) and prints
the functions with the most time, per step.

``train_step.py`` limits the OpenMP/MKL/OpenBLAS pools to one thread; to profile
the same situation set ``OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``
in the environment.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/profile_step.py jax small
    OMP_NUM_THREADS=1 python benchmarks/profile_step.py mxnet resnet --steps 10
    python benchmarks/profile_step.py torch large --steps 50 --sort tottime
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cnn_step  # noqa: E402
import train_step  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=train_step.BACKENDS)
    parser.add_argument("model", choices=[*train_step.MODELS, *cnn_step.MODELS])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--sort", default="cumulative", help="pstats sort key")
    parser.add_argument("--limit", type=int, default=40, help="rows to print")
    parser.add_argument("--native", default=None, help="profile this native runner")
    args = parser.parse_args(argv)

    if args.model in cnn_step.MODELS:
        case = cnn_step.CASES[args.backend](args.model)
    else:
        case = train_step.CASES[args.backend](train_step.MODELS[args.model])
    run = case.runners[args.native or "unified"]
    run(max(20, args.steps // 5))  # warm-up (and compilation)
    profiler = cProfile.Profile()
    profiler.enable()
    run(args.steps)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    who = args.native or "unified"
    print(
        f"{args.backend} {args.model} ({who}): {args.steps} steps, "
        f"{total / args.steps * 1e3:.3f} ms per step under the profiler"
    )
    stats.sort_stats(args.sort).print_stats(args.limit)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
