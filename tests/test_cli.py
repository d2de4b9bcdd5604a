"""The ``unified`` command: the README's main job works."""

from __future__ import annotations

import subprocess
import sys

import pytest

from unified.cli import main


def test_compare_reports_bitwise_identical_initial_weights(capsys):
    assert main(["compare", "--backends", "numpy,jax", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("initial weights bitwise-identical to numpy") == 2
    assert "jax" in out


def test_backends_lists_the_reference(capsys):
    assert main(["backends"]) == 0
    assert "numpy" in capsys.readouterr().out


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unified", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_python_dash_m_unified_runs_the_command():
    out = _run("compare", "--backends", "numpy", "--steps", "2")
    assert out.returncode == 0, out.stderr
    assert "bitwise-identical" in out.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("compare", "--steps", "0"), "--steps: must be at least 1"),
        (("compare", "--backends", "nope"), "unknown backend 'nope'"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(args, says):
    out = _run(*args)
    assert out.returncode == 2
    assert says in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
