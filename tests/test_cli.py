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


def test_inspect_and_port_a_checkpoint(tmp_path, capsys):
    """``unified port`` rewrites a state_dict for another framework under the same
    names, values bit for bit; ``unified inspect`` lists names, shapes, dtypes."""
    import numpy as np

    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file

    state = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    src = str(tmp_path / "m.pt")
    torch.save(state.state_dict(), src)
    assert (
        main(["port", src, "--to", "jax", "--out", str(tmp_path / "m.safetensors")])
        == 0
    )
    back = load_file(str(tmp_path / "m.safetensors"))
    for k, v in state.state_dict().items():
        if "num_batches" not in k:
            np.testing.assert_array_equal(back[k], v.numpy())
    assert main(["inspect", str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "1.running_var" in out and "(2, 3)" in out and "float32" in out


def test_inspect_missing_file_is_one_line_exit_2(capsys):
    assert main(["inspect", "no/such/file.pt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such checkpoint file" in err
