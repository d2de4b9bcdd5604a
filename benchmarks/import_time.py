"""Time ``import unified`` and selecting each backend, in fresh interpreters.

Every measurement runs in a new ``python`` subprocess and times the statement with
``time.perf_counter()`` inside that process (interpreter start-up is excluded). The
commands are run round-robin, ``--runs`` times each, and the median is reported:

* ``import unified``: it must import no framework (``torch``, ``jax``, ``mxnet``);
  the modules it does bring in are listed (``numpy`` is a dependency of the core);
* ``import unified; unified.set_backend(name)`` for each backend, next to the bare
  ``import <framework>`` of the same backend (for MXNet 1.9 on NumPy >= 1.24 the bare
  import needs ``numpy.bool = bool`` first, so that is part of it). The difference
  is what ``unified`` adds on top of the framework itself.

Usage::

    python benchmarks/import_time.py
    python benchmarks/import_time.py --runs 11 --backends numpy,jax
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

BACKENDS = ("numpy", "torch", "jax", "mxnet")
FRAMEWORK_IMPORT = {
    "numpy": "import numpy",
    "torch": "import torch",
    "jax": "import jax; import jax.numpy",
    "mxnet": "import numpy; numpy.bool = bool; import mxnet",
}
WATCHED = ("numpy", "torch", "jax", "jaxlib", "mxnet")

_PROBE = """\
import sys, time, json
t0 = time.perf_counter()
exec(compile({stmt!r}, "<timed>", "exec"))
elapsed = time.perf_counter() - t0
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {watched!r})
print("IMPORT-JSON " + json.dumps({{"seconds": elapsed, "loaded": loaded}}))
"""


def time_once(stmt: str) -> dict[str, object] | str:
    """Run ``stmt`` in a fresh interpreter; return its timing or an error message."""
    code = _PROBE.format(stmt=stmt, watched=set(WATCHED))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("IMPORT-JSON "):
            return json.loads(line[len("IMPORT-JSON ") :])  # type: ignore[no-any-return]
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return f"exit {proc.returncode}: {tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    commands = {"import unified": "import unified"}
    for b in backends:
        commands[f"unified + set_backend({b!r})"] = (
            f"import unified; unified.set_backend({b!r})"
        )
        commands[f"bare: {FRAMEWORK_IMPORT[b]}"] = FRAMEWORK_IMPORT[b]

    samples: dict[str, list[float]] = {name: [] for name in commands}
    loaded: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
        for name, stmt in commands.items():
            if name in errors:
                continue
            result = time_once(stmt)
            if isinstance(result, str):
                errors[name] = result
                continue
            samples[name].append(float(result["seconds"]))  # type: ignore[arg-type]
            loaded[name] = list(result["loaded"])  # type: ignore[call-overload]

    def median_ms(name: str) -> float | None:
        return statistics.median(samples[name]) * 1e3 if samples[name] else None

    def show(value: float | None) -> str:
        return "failed" if value is None else f"{value:.1f}"

    print(f"medians of {args.runs} fresh interpreters each, ms ({sys.executable})\n")
    base = median_ms("import unified")
    framework_mods = sorted(set(loaded.get("import unified", [])) - {"numpy"})
    print(
        f"import unified: {show(base)} ms; modules loaded among {list(WATCHED)}: "
        f"{loaded.get('import unified', [])}"
        + ("  <-- imports a framework!" if framework_mods else "")
    )
    print()
    print("| backend | import unified + set_backend | bare framework import | added |")
    print("| --- | ---: | ---: | ---: |")
    for b in backends:
        sel = median_ms(f"unified + set_backend({b!r})")
        bare = median_ms(f"bare: {FRAMEWORK_IMPORT[b]}")
        added = None if sel is None or bare is None else sel - bare
        print(f"| {b} | {show(sel)} | {show(bare)} | {show(added)} |")
    for name, message in errors.items():
        print(f"\n{name}: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
