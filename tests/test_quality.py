"""Meta-tests: the code is lint- and type-clean, every hook is documented and tested."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unified import hookspecs

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["unified", "backends", "conformance", "tests", "benchmarks"]


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


@pytest.mark.parametrize("hook", hookspecs.hook_names())
def test_every_hook_is_documented_and_tested(hook):
    """Each hookspec has a docstring, a line in docs/backend-authors.md, and op
    tests."""
    spec = getattr(hookspecs, hook)
    assert inspect.getdoc(spec), f"hookspec {hook} has no docstring"
    guide = (ROOT / "docs" / "backend-authors.md").read_text()
    assert re.search(rf"`{hook}`", guide), (
        f"docs/backend-authors.md does not list {hook}"
    )
    suite = "".join(
        p.read_text()
        for p in (ROOT / "conformance" / "unified_conformance").glob("test_*.py")
    )
    assert re.search(rf"\b{hook}\b", suite), f"no conformance test mentions hook {hook}"
