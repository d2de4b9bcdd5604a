"""Meta-tests: the code is lint- and type-clean, every hook is documented and tested."""

from __future__ import annotations

import ast
import functools
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unified import hookspecs

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["unified", "backends", "conformance", "tests", "benchmarks", "tools"]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(
            f"{name} is not installed next to {sys.executable}; pip install -e .[test]"
        )
    return path


def test_ruff_check_is_clean():
    out = subprocess.run(
        [_tool("ruff"), "check", *SOURCES], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_clean():
    out = subprocess.run(
        [_tool("ruff"), "format", "--check", *SOURCES],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_is_clean():
    out = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# Receivers through which the suite calls a hook: the backend table (the ``backend``
# fixture, ``table``/``ref``/``other`` in cross-backend tests, ``b`` in test_ops'
# ``Case`` lambdas) and ``unified.ops`` (``ops.sum(``, ``U.ops.sum(``).
HOOK_RECEIVERS = frozenset({"backend", "table", "ref", "other", "b", "ops"})


def _receiver(node: ast.expr) -> str | None:
    """The last name of ``x`` or ``a.b.x`` (the object a method is called on)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _strings(node: ast.expr, constants: dict[str, list[str]]) -> list[str]:
    """String values of a literal list/tuple, or of a module-level list named here."""
    if isinstance(node, ast.Name):
        return constants.get(node.id, [])
    if isinstance(node, (ast.List, ast.Tuple)):
        return [
            e.value
            for e in node.elts
            if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return []


def _getattr_driven(func: ast.FunctionDef, constants: dict[str, list[str]]) -> set[str]:
    """Hook names reaching ``getattr(backend, name)(...)`` from a parametrize list."""
    params: dict[str, list[str]] = {}
    for deco in func.decorator_list:
        if (
            isinstance(deco, ast.Call)
            and isinstance(deco.func, ast.Attribute)
            and deco.func.attr == "parametrize"
            and len(deco.args) >= 2
            and isinstance(deco.args[0], ast.Constant)
            and isinstance(deco.args[0].value, str)
        ):
            argnames = [a.strip() for a in deco.args[0].value.split(",")]
            values = deco.args[1]
            if len(argnames) == 1:
                params[argnames[0]] = _strings(values, constants)
            elif isinstance(values, (ast.List, ast.Tuple)):  # ("name", "oracle") rows
                for i, argname in enumerate(argnames):
                    params[argname] = [
                        row.elts[i].value
                        for row in values.elts
                        if isinstance(row, ast.Tuple)
                        and isinstance(row.elts[i], ast.Constant)
                        and isinstance(row.elts[i].value, str)
                    ]
    found: set[str] = set()
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) == 2
            and _receiver(node.args[0]) in HOOK_RECEIVERS
            and isinstance(node.args[1], ast.Name)
        ):
            found.update(params.get(node.args[1].id, []))
    return found


@functools.cache
def hooks_called_by_the_suite() -> frozenset[str]:
    """Names called as hooks in the conformance tests: ``backend.sum(``,
    ``ops.sum(``, ``U.ops.sum(``, ``table.sum(``, ``b.sum(``, or
    ``getattr(backend, name)(`` with ``name`` from a ``parametrize`` list. A word
    in a comment, a builtin ``sum(`` or ``np.sum(`` does not count."""
    called: set[str] = set()
    for path in (ROOT / "conformance" / "unified_conformance").glob("test_*.py"):
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            t.id: _strings(node.value, {})
            for node in tree.body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and _receiver(node.func.value) in HOOK_RECEIVERS
            ):
                called.add(node.func.attr)
            if isinstance(node, ast.FunctionDef):
                called |= _getattr_driven(node, constants)
    return frozenset(called)


def test_hook_call_detection_ignores_words_and_builtins():
    """The detector counts real hook calls only (guards the meta-test itself)."""
    called = hooks_called_by_the_suite()
    assert "value_and_grad" in called and "axpby" in called
    assert "fullmatch" not in called and "uniform" not in called  # re./rng. calls


@pytest.mark.parametrize("hook", hookspecs.hook_names())
def test_every_hook_is_documented_and_tested(hook):
    """Each hookspec has a docstring, a line in docs/backend-authors.md, and a real
    call in the conformance suite (through the backend table or ``unified.ops``)."""
    spec = getattr(hookspecs, hook)
    assert inspect.getdoc(spec), f"hookspec {hook} has no docstring"
    guide = (ROOT / "docs" / "backend-authors.md").read_text()
    assert re.search(rf"`{hook}`", guide), (
        f"docs/backend-authors.md does not list {hook}"
    )
    assert hook in hooks_called_by_the_suite(), (
        f"no conformance test calls hook {hook} (as backend.{hook}(...), "
        f"ops.{hook}(...) or getattr(backend, name) over a parametrize list)"
    )


def test_no_merge_conflict_markers_are_committed():
    """A half-resolved merge (``<<<<<<<`` / ``>>>>>>>`` lines) never lands."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    if not files:  # not a git checkout (an sdist): nothing to check
        return
    marked = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".params"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if re.search(r"^(<{7}|>{7}) ", text, re.M):
            marked.append(name)
    assert not marked, f"merge conflict markers in {marked}"
