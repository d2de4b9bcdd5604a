"""Mutation check of the core: does the conformance suite notice a small bug?

Each mutant changes one thing in one core module (``+`` <-> ``-``, ``*`` <-> ``/``,
a numeric constant, a comparison operator, or drops one statement), in a copy of
the ``unified`` package in a temporary directory. The relevant conformance tests then
run on the NumPy backend with ``-x`` and a timeout; a mutant is *killed* when they
fail (or time out) and *survives* when they pass. The score is killed / (killed +
survived); mutants that do not compile are not counted.

Developer command (not run in CI: minutes, not seconds)::

    python tools/mutate.py --max-mutants 60            # a seeded random sample
    python tools/mutate.py --files unified/optim.py    # every mutant of one module
    python tools/mutate.py --list                      # show the mutants, run none
    python tools/mutate.py --match "autodiff.py:172" --backend numpy,torch

Run it from a checkout with the backends importable (``PYTHONPATH`` as in the
brief); results and surviving mutants are recorded in ``docs/mutation.md``.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "conformance" / "unified_conformance"

# Each core module and the conformance tests that cover it.
TARGETS: dict[str, list[str]] = {
    "unified/optim.py": [
        "test_spec6_optim.py",
        "test_behaviours.py",
        "test_trainer.py",
        "test_spec8_checkpoint.py",
    ],
    "unified/init.py": [
        "test_spec3_init.py",
        "test_spec4_deferred.py",
        "test_spec11_editing.py",
        "test_spec12_modes.py",
        "test_norm_dropout.py",  # forward randomness restarts at each seed()
    ],
    "unified/autodiff.py": [
        "test_spec5_grad.py",
        "test_behaviours.py",
        "test_spec6_optim.py",
        "test_spec12_modes.py",
    ],
    "unified/sharing.py": [
        "test_spec7_sharing.py",
        "test_behaviours.py",
        "test_spec8_checkpoint.py",
    ],
    "unified/checkpoint.py": ["test_spec8_checkpoint.py", "test_behaviours.py"],
}

SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
SWAP_CMP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
SYMBOL = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


@dataclass(frozen=True)
class Mutant:
    """One change: the ``index``-th node of ``ast.walk`` order in ``path``."""

    path: str
    index: int
    kind: str
    line: int
    description: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.description}"


def _new_constant(value: float) -> float:
    if isinstance(value, int):
        return {0: 1, 1: 0}.get(value, value + 1)
    return 1.0 if value == 0 else value * 2


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring expressions (never mutated or dropped)."""
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            out.add(id(body[0]))
    return out


def _annotations(tree: ast.AST) -> set[int]:
    """ids of every node inside a type annotation (``int | None`` is no BinOp)."""
    out = set()
    for node in ast.walk(tree):
        parts: list[ast.AST | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parts.append(node.returns)
        if isinstance(node, ast.arg | ast.AnnAssign):
            parts.append(node.annotation)
        for part in parts:
            if part is not None:
                out.update(id(n) for n in ast.walk(part))
    return out


def _aliases(tree: ast.Module) -> set[int]:
    """ids of module-level type aliases (``Group = dict[str, Any]``): with postponed
    annotations, dropping one changes nothing (an equivalent mutant)."""
    return {
        id(node)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript)
    }


def _sites(tree: ast.Module) -> Iterator[tuple[int, str, int, str]]:
    """Every mutation site: (walk index, kind, line, description)."""
    skip = _docstrings(tree) | _annotations(tree) | _aliases(tree)
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINOP:
            new = SWAP_BINOP[type(node.op)]
            desc = f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}"
            yield index, "binop", line, desc
        elif isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in SWAP_CMP:
                    new = SWAP_CMP[type(op)]
                    desc = f"{SYMBOL[type(op)]} -> {SYMBOL[new]}"
                    yield index, f"compare{k}", line, desc
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            desc = f"{node.value!r} -> {_new_constant(node.value)!r}"
            yield index, "constant", line, desc
        elif isinstance(node, ast.stmt) and not isinstance(
            node,
            (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Pass),
        ):
            first = ast.unparse(node).splitlines()[0][:60]
            yield index, "drop", line, f"drop `{first}`"


def mutants(paths: list[str]) -> list[Mutant]:
    """All mutants of the given core modules (paths relative to the root)."""
    out = []
    for path in paths:
        tree = ast.parse((ROOT / path).read_text())
        for index, kind, line, desc in _sites(tree):
            out.append(Mutant(path, index, kind, line, desc))
    return out


def apply(mutant: Mutant, source: str) -> str:
    """The source of ``mutant``'s module with the one change made."""
    tree = ast.parse(source)
    node = list(ast.walk(tree))[mutant.index]
    if mutant.kind == "binop":
        assert isinstance(node, ast.BinOp)
        node.op = SWAP_BINOP[type(node.op)]()
    elif mutant.kind.startswith("compare"):
        assert isinstance(node, ast.Compare)
        k = int(mutant.kind[len("compare") :])
        node.ops[k] = SWAP_CMP[type(node.ops[k])]()
    elif mutant.kind == "constant":
        assert isinstance(node, ast.Constant)
        node.value = _new_constant(node.value)
    else:  # drop: the statement becomes `pass`
        for parent in ast.walk(tree):
            for fld in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(parent, fld, None)
                if isinstance(block, list) and node in block:
                    block[block.index(node)] = ast.copy_location(ast.Pass(), node)
    return ast.unparse(tree)


def run_tests(
    workdir: Path, tests: list[str], timeout: float, backend: str = "numpy"
) -> tuple[str, float]:
    """Run ``tests`` against the package in ``workdir``: 'passed', 'failed' or
    'timeout', and the seconds taken."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(workdir), str(ROOT / "backends"), str(ROOT / "conformance")]
    )
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    cmd += ["--unified-backend", backend, *(str(SUITE / t) for t in tests)]
    start = time.perf_counter()
    try:
        out = subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    status = "passed" if out.returncode == 0 else "failed"
    return status, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", nargs="*", default=list(TARGETS))
    parser.add_argument("--max-mutants", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=None, help="per mutant")
    parser.add_argument("--match", default="", help="only mutants whose line has this")
    parser.add_argument("--backend", default="numpy", help="--unified-backend value")
    parser.add_argument("--list", action="store_true", help="list mutants, run none")
    args = parser.parse_args(argv)
    unknown = [f for f in args.files if f not in TARGETS]
    if unknown:
        parser.error(f"not a mutation target: {unknown}; choose from {list(TARGETS)}")
    todo = [m for m in mutants(args.files) if args.match in str(m)]
    total = len(todo)
    if args.max_mutants is not None and args.max_mutants < total:
        todo = random.Random(args.seed).sample(todo, args.max_mutants)
        todo.sort(key=lambda m: (m.path, m.line, m.index))
    print(f"{len(todo)} of {total} mutants of {', '.join(args.files)}")
    if args.list:
        for mutant in todo:
            print(mutant)
        return 0
    return _run(todo, args.timeout, args.backend)


def _run(todo: list[Mutant], timeout: float | None, backend: str) -> int:
    with tempfile.TemporaryDirectory(prefix="unified-mutants-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "unified", work / "unified")
        all_tests = sorted({t for m in todo for t in TARGETS[m.path]})
        status, seconds = run_tests(work, all_tests, 600, backend)
        if status != "passed":
            print("the unmutated core fails its tests; fix that first")
            return 2
        limit = timeout or max(30.0, 5 * seconds)
        print(f"baseline passes in {seconds:.1f} s; timeout per mutant {limit:.0f} s")
        killed, survived = [], []
        for i, mutant in enumerate(todo, 1):
            original = (ROOT / mutant.path).read_text()
            target = work / mutant.path
            try:
                mutated = apply(mutant, original)
                compile(mutated, mutant.path, "exec")
            except (SyntaxError, ValueError):
                print(f"[{i}/{len(todo)}] invalid  {mutant}")
                continue
            target.write_text(mutated)
            try:
                status, _ = run_tests(work, TARGETS[mutant.path], limit, backend)
            finally:
                target.write_text(original)
            done = survived if status == "passed" else killed
            done.append(mutant)
            verdict = "SURVIVED" if status == "passed" else f"killed ({status})"
            print(f"[{i}/{len(todo)}] {verdict:16} {mutant}", flush=True)
    _summary(killed, survived)
    return 0


def _summary(killed: list[Mutant], survived: list[Mutant]) -> None:
    counted = len(killed) + len(survived)
    score = 100.0 * len(killed) / counted if counted else 100.0
    print(f"\nkilled {len(killed)}, survived {len(survived)}: score {score:.1f}%")
    for mutant in survived:
        print(f"  survived: {mutant}")


if __name__ == "__main__":
    sys.exit(main())
