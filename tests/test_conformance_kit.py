"""The conformance kit, used the way a backend author uses it.

The example third-party backend in ``tests/example_backend`` (``unified_float64``:
NumPy arrays, float32 ops computed in float64) is registered through a fake
distribution (a ``.dist-info`` with an ``entry_points.txt`` for ``unified.backends``
in a temporary directory on ``PYTHONPATH``), and the documented command

    python -m pytest --pyargs unified_conformance --unified-backend example

runs in a subprocess from a temporary directory outside the repository. The good
backend must pass, a variant with one wrong gradient must fail naming the op, and the
skips file, the report header and the reproduction section must do what
docs/backend-authors.md says.

To keep CI fast the certification run selects a representative subset with ``-k``:
it leaves out the layer-level comparisons with torch.nn and Gluon
(``test_layers_conv``, ``test_norm_dropout``, ``test_activations``,
``test_gluon_port``), whose ops the op-level tests cover, and runs 4 fuzz examples
instead of 12. Run the command above without ``-k`` for the full certification
(about 740 tests; the example backend passes them all).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unified.plugins import ENTRY_POINT_GROUP

EXAMPLE = Path(__file__).resolve().parent / "example_backend"
SUBSET = (
    "not test_layers_conv and not test_norm_dropout and not test_activations "
    "and not test_gluon_port"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the fake distribution that registers both variants."""
    root = tmp_path_factory.mktemp("site")
    info = root / "unified_example-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: unified-example\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "example = unified_float64\n"
        "example_broken = unified_float64.broken\n"
    )
    return root


def kit(
    site: Path, tmp_path: Path, *args: str, target: str = "unified_conformance"
) -> subprocess.CompletedProcess[str]:
    """Run the documented command with ``args`` from a directory outside the repo
    (``target``: the package, or one of its test modules for a quicker run)."""
    env = dict(os.environ)
    paths = [str(site), str(EXAMPLE), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.pop("UNIFIED_BACKEND", None)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "--pyargs", target]
    cmd += ["-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", *args]
    return subprocess.run(
        cmd, cwd=run_dir, env=env, capture_output=True, text=True, timeout=900
    )


def test_example_backend_is_certified(site, tmp_path):
    """The example backend passes the kit; the header names it and the environment."""
    out = kit(
        site,
        tmp_path,
        "--unified-backend",
        "example",
        "-k",
        SUBSET,
        "--unified-fuzz-examples",
        "4",
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]
    assert "unified backend under test: example (numpy-float64" in report
    assert "python " in report and "numpy " in report
    assert " passed" in report and "failed" not in report


def test_broken_gradient_is_caught_and_named(site, tmp_path):
    """A wrong tanh backward fails the gradient test of tanh (and only gradient
    tests: tanh's values are right), with the values, the op and a rerun line."""
    out = kit(
        site,
        tmp_path,
        "--unified-backend",
        "example_broken",
        "-k",
        "tanh or relu",
        target="unified_conformance.test_ops",
    )
    report = out.stdout + out.stderr
    assert out.returncode == 1, report[-6000:]
    failed = [line for line in report.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, failed
    assert "test_gradient_matches_oracle_differences[example_broken-tanh]" in failed[0]
    assert "gradient of op tanh w.r.t. input 0" in report
    assert "received" in report and "expected" in report
    assert "unified reproduction" in report
    assert "--unified-backend example_broken" in report


def test_skips_file_turns_the_failure_into_an_xfail(site, tmp_path):
    """--unified-skips: a listed known gap is an xfail with its reason, and an entry
    that matches no test is reported as a warning."""
    skips = tmp_path / "skips.txt"
    skips.write_text(
        "# known gaps of example_broken\n"
        "test_ops.py::test_gradient_matches_oracle_differences[*-tanh]  xfail  "
        "tanh backward is being fixed\n"
        "test_ops.py::test_no_such_test  skip  stale entry\n"
    )
    out = kit(
        site,
        tmp_path,
        "--unified-backend",
        "example_broken",
        "--unified-skips",
        str(skips),
        "-k",
        "tanh",
        "-rx",
        target="unified_conformance.test_ops",
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]
    assert "1 xfailed" in report and "tanh backward is being fixed" in report
    assert "unified skips file:" in report and "(2 entries)" in report
    assert "UnifiedSkipsWarning" in report and "test_no_such_test" in report


def test_skips_file_format():
    """Patterns: ``*``/``?`` wildcards, literal brackets, a bare test name matches
    its parametrizations; a malformed line is a usage error naming the line."""
    from unified_conformance import skips

    entries = skips.parse(
        "# comment\n\n"
        "test_ops.py::test_grad[*-tanh]  xfail  tanh is wrong  # trailing comment\n"
        "test_ops.py::test_value  skip\n"
        "*::test_jit_?  skip  later\n",
        "known.txt",
    )
    assert [(e.action, e.reason, e.line) for e in entries] == [
        ("xfail", "tanh is wrong", 3),
        ("skip", "listed in known.txt", 4),
        ("skip", "later", 5),
    ]
    grad, value, jit = entries

    def hits(entry, short):
        return entry.matches(short, "some/dir/" + short)

    assert hits(grad, "test_ops.py::test_grad[mine-tanh]")
    assert not hits(grad, "test_ops.py::test_grad[mine-tanhshrink]x")
    assert not hits(grad, "test_ops.py::test_grad[mine-t]")  # brackets are literal
    assert hits(value, "test_ops.py::test_value[mine-exp]")
    assert not hits(value, "test_ops.py::test_value_is_0d[mine]")
    assert hits(jit, "test_trainer.py::test_jit_a[mine]")
    assert not hits(jit, "test_trainer.py::test_jit_ab")
    with pytest.raises(pytest.UsageError, match=r"known.txt:2: expected"):
        skips.parse("ok  skip\ntest_x  ignore  why\n", "known.txt")
