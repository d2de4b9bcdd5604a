"""The ``unified`` command: the README's main job works."""

from __future__ import annotations

from unified.cli import main


def test_compare_reports_bitwise_identical_initial_weights(capsys):
    assert main(["compare", "--backends", "numpy,jax", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("initial weights bitwise-identical to numpy") == 2
    assert "jax" in out


def test_backends_lists_the_reference(capsys):
    assert main(["backends"]) == 0
    assert "numpy" in capsys.readouterr().out
