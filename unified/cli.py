"""The ``unified`` command: list backends, compare them, run the conformance suite.

Usage::

    unified backends                 # installed backends, versions, capabilities
    unified compare [--backends ...] # one model on every backend: same numbers?
    unified conformance [--backend all] [pytest args...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np


def _backends(_: argparse.Namespace) -> int:
    from unified.plugins import registry

    usable = registry.usable()
    for name in registry.names():
        if name in usable:
            table = usable[name]
            caps = ", ".join(sorted(table.capabilities)) or "-"
            print(f"{name:8s} {table.info.framework} {table.info.version}  [{caps}]")
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

    names = args.backends.split(",") if args.backends else sorted(registry.usable())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 20)).astype("float32")
    y = rng.integers(0, 10, size=16)
    results = {}
    for name in names:
        with U.use_backend(name) as table:
            U.seed(args.seed)
            net = U.Sequential(U.Dense(64, activation="relu"), U.Dense(10))
            net.initialize()
            net.infer_shape(x.shape)
            initial = np.concatenate([p.numpy().ravel() for p in net.params().values()])
            trainer = U.Trainer(net, U.Adam(net.params(), lr=1e-2))
            xb, yb = table.asarray(x, "float32"), table.asarray(y, "int64")

            def loss_fn(n: U.Net, a: object, b: object) -> object:
                return U.losses.softmax_cross_entropy(n(a), b)

            losses = [
                float(np.asarray(table.to_numpy(trainer.step(loss_fn, xb, yb))))
                for _ in range(args.steps)
            ]
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

    return int(
        pytest.main(
            [
                "--pyargs",
                "unified_conformance",
                "--unified-backend",
                args.backend,
                "-p",
                "no:cacheprovider",
                *extra,
            ]
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unified`` console script."""
    parser = argparse.ArgumentParser(
        prog="unified", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backends", help="list installed backends")
    compare = sub.add_parser("compare", help="train one model on every backend")
    compare.add_argument(
        "--backends", default="", help="comma list (default: all usable)"
    )
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--steps", type=int, default=10)
    conf = sub.add_parser("conformance", help="run the conformance suite")
    conf.add_argument("--backend", default="all", help="a name, a comma list, or all")
    args, extra = parser.parse_known_args(argv)
    if args.command == "conformance":
        return _conformance(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return {"backends": _backends, "compare": _compare}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
