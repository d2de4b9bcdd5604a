"""The ``unified`` command: list backends, compare them, run the conformance suite.

Usage::

    unified backends                 # installed backends, versions, capabilities,
                                     # devices
    unified demo [--backends ...] [--epochs N] [--seed S] [--plot FILE]
                                     # one CNN, one seed, every backend: same numbers?
    unified compare [--backends ...] # one MLP on every backend, a few steps
    unified conformance [--backend all] [pytest args...]
                                     # the suite, then a SPEC-section x backend matrix
    unified inspect FILE             # names, shapes, dtypes of a checkpoint
    unified port SRC --to FRAMEWORK  # rewrite a checkpoint for torch/mxnet/jax
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

import numpy as np

from unified.errors import BackendNotAvailableError, BackendPluginError, CheckpointError


def _backends(_: argparse.Namespace) -> int:
    from unified.placement import available
    from unified.plugins import registry

    usable = registry.usable()
    for name in registry.names():
        if name in usable:
            table = usable[name]
            caps = ", ".join(sorted(table.capabilities)) or "-"
            print(f"{name:8s} {table.info.framework} {table.info.version}  [{caps}]")
            print(f"{'':8s} devices: {', '.join(available(table))}")
        else:
            print(
                f"{name:8s} unusable: {registry.failures().get(name, 'failed to load')}"
            )
    return 0


def _compare(args: argparse.Namespace) -> int:
    """Build, initialize and train one MLP on each backend; print how far apart
    they are."""
    import unified as U
    from unified.plugins import registry

    names = _names(args.backends) or sorted(registry.usable())
    for name in names:
        registry.get(name)  # an unknown or broken name fails before any work
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 20)).astype("float32")
    y = rng.integers(0, 10, size=16)
    results = {}
    for name in names:
        with U.use_backend(name):
            U.seed(args.seed)
            net = U.Sequential(U.Dense(64, activation="relu"), U.Dense(10))
            net.initialize()
            net.infer_shape(x.shape)
            initial = np.concatenate([p.numpy().ravel() for p in net.params().values()])
            trainer = U.Trainer(net, U.Adam(net.params(), lr=1e-2))

            def loss_fn(n: U.Net, a: object, b: object) -> object:
                return U.losses.softmax_cross_entropy(n(a), b)

            losses = [float(trainer.step(loss_fn, x, y)) for _ in range(args.steps)]
            final = np.concatenate([p.numpy().ravel() for p in net.params().values()])
            results[name] = (initial, losses, final)
    ref_name = "numpy" if "numpy" in results else names[0]
    ref = results[ref_name]
    print(f"seed {args.seed}, MLP 20-64-10, Adam lr=1e-2, {args.steps} steps")
    for name, (initial, losses, final) in results.items():
        same = "bitwise-identical" if np.array_equal(initial, ref[0]) else "DIFFERENT"
        drift = np.max(np.abs(final - ref[2]))
        print(
            f"{name:8s} initial weights {same} to {ref_name}; loss {losses[0]:.6f} -> "
            f"{losses[-1]:.6f}; final weights max abs. diff {drift:.1e}"
        )
    return 0 if all(np.array_equal(r[0], ref[0]) for r in results.values()) else 1


def _conformance(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    from unified.report import Matrix

    matrix = Matrix()
    code = int(
        pytest.main(
            [
                "--pyargs",
                "unified_conformance",
                "--unified-backend",
                args.backend,
                "-p",
                "no:cacheprovider",
                *extra,
            ],
            plugins=[matrix],
        )
    )
    if matrix.counts:
        print()
        print(matrix.render())
    return code


def _demo(args: argparse.Namespace) -> int:
    from unified import demo

    try:
        return demo.main(_names(args.backends), args.epochs, args.seed, args.plot)
    except demo.MissingDependency as exc:
        print(f"unified: error: {exc}", file=sys.stderr)
        return 2


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


class _Parser(argparse.ArgumentParser):
    """Usage mistakes: one line with the fix, exit code 2, no traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _nonnegative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unified`` console script (also ``python -m unified``).

    A user mistake (an unknown backend, a bad option) prints one line saying what
    to do and returns 2.
    """
    try:
        return _main(argv)
    except (BackendNotAvailableError, BackendPluginError, CheckpointError) as exc:
        print(f"unified: error: {exc}", file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    parser = _Parser(prog="unified", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backends", help="list installed backends")
    demo = sub.add_parser(
        "demo", help="train one CNN on 8x8 digits on every backend, same batches"
    )
    demo.error = parser.error  # type: ignore[method-assign]
    demo.add_argument("--backends", default="", help="comma list (default: all usable)")
    demo.add_argument("--epochs", type=_positive, default=5)
    demo.add_argument("--seed", type=_nonnegative, default=0)
    demo.add_argument("--plot", metavar="FILE", help="write the curves to a PNG file")
    compare = sub.add_parser("compare", help="train one model on every backend")
    compare.error = parser.error  # type: ignore[method-assign]
    compare.add_argument(
        "--backends", default="", help="comma list (default: all usable)"
    )
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--steps", type=_positive, default=10)
    conf = sub.add_parser("conformance", help="run the conformance suite")
    conf.add_argument("--backend", default="all", help="a name, a comma list, or all")
    insp = sub.add_parser("inspect", help="list the arrays of a checkpoint file")
    insp.add_argument("file")
    port = sub.add_parser("port", help="rewrite a checkpoint for another framework")
    port.add_argument("src")
    port.add_argument("--to", required=True, choices=["torch", "mxnet", "jax", "numpy"])
    port.add_argument("--out", default=None, help="output path (default: beside SRC)")
    args, extra = parser.parse_known_args(argv)
    if args.command in ("inspect", "port"):
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        from unified.interop import cli_port

        if args.command == "inspect":
            print("\n".join(cli_port.inspect(args.file)))
        else:
            print(f"wrote {cli_port.port_file(args.src, args.to, args.out)}")
        return 0
    if args.command == "conformance":
        return _conformance(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    commands = {"backends": _backends, "compare": _compare, "demo": _demo}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
