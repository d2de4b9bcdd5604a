"""The ``unified`` command: the README's main job works."""

from __future__ import annotations

import os
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
    out = capsys.readouterr().out
    assert "numpy" in out
    # Each usable backend's line is followed by its devices; NumPy has the CPU only.
    lines = out.splitlines()
    numpy_line = next(i for i, line in enumerate(lines) if line.startswith("numpy "))
    assert lines[numpy_line + 1].split() == ["devices:", "cpu"]


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


def test_demo_trains_on_each_backend_from_the_same_weights():
    out = _run("demo", "--epochs", "1", "--backends", "numpy,torch")
    assert out.returncode == 0, out.stderr
    cells = [line.replace("\u2502", " ").split() for line in out.stdout.splitlines()]
    rows = {c[0]: c for c in cells if c[:1] in (["numpy"], ["torch"])}  # plain or rich
    assert sorted(rows) == ["numpy", "torch"], out.stdout
    # initial weights vs numpy, final loss, test accuracy, ms/step, final drift
    assert rows["torch"][1] == "0.0e+00"  # same seed: bitwise-identical start
    assert abs(float(rows["torch"][2]) - float(rows["numpy"][2])) < 1e-3
    assert float(rows["numpy"][3]) > 0.5  # one epoch already learns the digits
    assert float(rows["torch"][5]) < 1e-3  # the same batches: weights stay close


def test_demo_plot_writes_a_png(tmp_path):
    import matplotlib  # noqa: F401  (the test extra installs the demo's matplotlib)

    path = tmp_path / "demo.png"
    out = _run("demo", "--epochs", "1", "--backends", "numpy", "--plot", str(path))
    assert out.returncode == 0, out.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_conformance_prints_the_matrix():
    out = _run("conformance", "--backend", "numpy", "-q", "-k", "spec1_ or spec9")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    start = lines.index("conformance by SPEC section and backend (pass/fail/skip):")
    assert lines[start + 1].split() == ["SPEC", "section", "numpy"]
    rows = {line.rsplit(None, 1)[0]: line.split()[-1] for line in lines[start + 3 : -1]}
    assert set(rows) == {"1 names", "9 errors"}, rows
    assert all(cell.split("/")[1] == "0" for cell in rows.values()), rows
    assert int(rows["1 names"].split("/")[0]) > 0
    assert lines[-1].startswith("total: ") and " 0 failed" in lines[-1]


def test_conformance_fails_with_a_failing_test(tmp_path):
    """A failure shows in the matrix and gives a non-zero exit code."""
    (tmp_path / "force_fail.py").write_text(
        "def pytest_runtest_call(item):\n"
        "    if 'spec1_names' in item.nodeid:\n"
        "        raise AssertionError('forced')\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}" + os.environ.get("PYTHONPATH", ""),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "unified",
            "conformance",
            "--backend",
            "numpy",
            "-q",
            "-k",
            "spec1_names",
            "-p",
            "force_fail",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env=env,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("1 names"))
    passed, failed, skipped = map(int, row.split()[-1].split("/"))
    assert failed > 0 and passed == 0, row


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("demo", "--epochs", "0"), "--epochs: must be at least 1"),
        (("demo", "--seed", "-1"), "--seed: must be at least 0"),
        (("demo", "--backends", "nope"), "unknown backend 'nope'"),
        (("demo", "--frames"), "unrecognized arguments: --frames"),
    ],
)
def test_demo_user_mistakes_print_one_line_and_exit_2(args, says):
    out = _run(*args)
    assert out.returncode == 2
    assert says in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr


def test_demo_without_scikit_learn_says_which_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn fails
    assert main(["demo", "--backends", "numpy", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "unified: error: the demo needs scikit-learn: pip install 'unified[demo]'"
    )


def test_demo_with_numpy_alone_says_how_to_add_the_others(monkeypatch, capsys):
    from unified.plugins import registry

    only_numpy = {"numpy": registry.get("numpy")}
    monkeypatch.setattr(registry, "usable", lambda: only_numpy)
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "torch " not in out
    assert "pip install 'unified[torch]' 'unified[jax]' 'unified[mxnet]'" in out


def test_inspect_and_port_a_checkpoint(tmp_path, capsys):
    """``unified port`` rewrites a state_dict for another framework under the same
    names, values bit for bit; ``unified inspect`` lists names, shapes, dtypes."""
    import numpy as np
    import torch
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
