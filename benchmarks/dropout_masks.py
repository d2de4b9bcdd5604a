"""Time host-drawn dropout masks (``unified.Dropout``) against native dropout.

``unified``'s ``Dropout`` (SPEC 12) draws each mask on the host from a fresh Philox
generator (``Generator(Philox(SeedSequence([seed, 1, crc32(name), call])))``),
transfers it to the backend and multiplies: the same bits on every backend. Native
dropout draws on the framework's own generator, on the device. This measures one
forward of the layer in training mode (rate 0.5) on an activation that is already a
native array, for two shapes:

* ``dense``: ``(64, 512)``, the output of a dense layer;
* ``conv``: ``(32, 64, 16, 16)``, the output of a conv layer.

Native code on each backend:

* ``numpy``: a NumPy generator kept across calls,
  ``x * (rng.random(x.shape) >= rate) / (1 - rate)``;
* ``torch``: ``torch.nn.functional.dropout(x, 0.5, training=True)``;
* ``jax``: ``jax.random.bernoulli`` and ``jnp.where`` under ``jax.jit``, the key
  split inside the compiled function and carried from call to call;
* ``mxnet``: ``mx.nd.Dropout(x, p=0.5, mode="always")``.

Sanity check: the kept fraction of the first five outputs of each side is within
0.02 of ``1 - rate`` of the other (different generators: the masks differ). The
measurement is ``harness.py``'s (interleaved repeats, medians of per-repeat ratios,
one subprocess per backend, one OpenMP/MKL/OpenBLAS thread by default).

Usage::

    python benchmarks/dropout_masks.py
    python benchmarks/dropout_masks.py --backends jax --models conv --repeats 7
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
from harness import Case, simple_runner  # noqa: E402

BACKENDS = ("numpy", "torch", "jax", "mxnet")
RATE = 0.5
REPORT = Path(__file__).resolve().parent / "report-dropout.md"
MODELS: dict[str, tuple[int, ...]] = {"dense": (64, 512), "conv": (32, 64, 16, 16)}
"""name -> activation shape."""


def make_input(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def unified_side(backend: str, x_np: np.ndarray) -> tuple[Callable[[], Any], Any]:
    """``step()`` (one training-mode forward of ``U.Dropout``) and the input on the
    backend (converted once: an activation is already a native array)."""
    import unified as U

    U.set_backend(backend)
    U.seed(0)
    drop = U.Dropout(RATE)
    drop.initialize()
    drop.train()  # pinned: every call draws a mask, as inside Trainer.step
    x = U.asarray(x_np)
    return lambda: drop(x), x


def kept(y: np.ndarray) -> float:
    """The fraction of elements kept (non-zero; the input has no zeros)."""
    return float(np.count_nonzero(y)) / y.size


def case(backend: str, model: str) -> Case:
    x_np = make_input(MODELS[model])
    u_step, x = unified_side(backend, x_np)
    sync: Callable[[Any], None] | None = None
    to_np: Callable[[Any], np.ndarray]
    if backend == "numpy":
        rng = np.random.default_rng(1)
        scale = 1.0 / (1.0 - RATE)

        def native() -> Any:
            return x * (rng.random(x.shape) >= RATE) * scale

        framework, version, to_np = "numpy", np.__version__, np.asarray
    elif backend == "torch":
        import torch
        import torch.nn.functional as F  # noqa: N812

        torch.manual_seed(1)

        def native() -> Any:
            return F.dropout(x, RATE, training=True)

        framework, version = "torch", torch.__version__
        to_np = lambda t: t.numpy()  # noqa: E731
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        @jax.jit
        def dropout(key: Any, h: Any) -> Any:
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1.0 - RATE, h.shape)
            return key, jnp.where(keep, h / (1.0 - RATE), 0.0)

        live = {"key": jax.random.PRNGKey(1)}

        def native() -> Any:
            live["key"], y = dropout(live["key"], x)
            return y

        def sync(y: Any) -> None:
            jax.block_until_ready(y)

        framework, version, to_np = "jax", jax.__version__, np.asarray
    else:
        import mxnet as mx

        mx.random.seed(1)

        def native() -> Any:
            return mx.nd.Dropout(x, p=RATE, mode="always")

        def sync(y: Any) -> None:
            mx.nd.waitall()

        framework, version = "mxnet", mx.__version__
        to_np = lambda a: a.asnumpy()  # noqa: E731
    return Case(
        runners={
            "unified": simple_runner(u_step, sync),
            "native": simple_runner(native, sync),
        },
        loss_of=lambda y: kept(to_np(y)),
        framework=framework,
        version=version,
        tolerance=0.02,
    )


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark every shape of ``args.models`` on ``backend`` in this process."""
    return harness.run_backend(
        backend, args, case, lambda m: f"dropout {RATE} of {MODELS[m]}, training"
    )


def format_report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    shapes = "; ".join(f"{m}: {MODELS[m]}" for m in args.models)
    return harness.format_report(
        results,
        args,
        title="unified Dropout (host-drawn masks) against native dropout",
        header=[
            harness.settings_line(args, f"rate {RATE}, float32, training mode; "),
            f"- shapes: {shapes}; a step is one forward of the layer",
        ],
        targets={},
        check="the kept fractions of the first five outputs of unified and native "
        "agree within 0.02",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(__doc__.splitlines()[0], list(MODELS), REPORT, repeats=7)
    return harness.parse(parser, argv, BACKENDS, list(MODELS))


def main(argv: list[str] | None = None) -> int:
    return harness.main(parse_args(argv), __file__, run_backend, format_report)


if __name__ == "__main__":
    sys.exit(main())
