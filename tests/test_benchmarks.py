"""Smoke tests of the benchmark scripts: ``cnn_step.py`` runs and its sanity check
(unified and native torch train identically from the same weights) passes;
``peers.py`` runs its NumPy worker (the peers CI installs; Keras is not)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, timeout: float) -> tuple[str, list[list[str]]]:
    """Run ``benchmarks/<script> --quick ARGS`` on one thread; return its output and
    the cells of its Markdown table rows."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "backends"), env.get("PYTHONPATH", "")]
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.stdout.splitlines()
        if line.startswith("| ")
    ]
    return out.stdout, rows


def test_cnn_step_numpy_lenet_smoke(tmp_path: Path) -> None:
    import torch  # noqa: F401  (the NumPy backend is compared with native torch)

    report = tmp_path / "report-cnn.md"
    stdout, rows = run_script(
        "cnn_step.py",
        *("--backends", "numpy", "--models", "lenet", "--steps", "1"),
        *("--repeats", "1", "--in-process", "--output", str(report)),
        timeout=120,
    )
    rows = [r for r in rows if r[:2] == ["numpy vs torch", "lenet"]]
    assert len(rows) == 1, stdout
    # backend, model, unified ms, native ms, ratio, range, target, ok
    assert float(rows[0][4]) > 0, rows[0]
    assert re.fullmatch(r"\d+\.\d\d-\d+\.\d\d", rows[0][5]), rows[0]
    assert "Sanity check passed" in stdout, stdout
    assert "Sanity check passed" in report.read_text()


def test_peers_numpy_small_smoke(tmp_path: Path) -> None:
    """One round of the NumPy worker: its table row, its JSON, and the two peers
    computed the same losses."""
    results = tmp_path / "peers.json"
    stdout, rows = run_script(
        "peers.py",
        *("--groups", "numpy", "--models", "small", "--repeats", "1"),
        *("--target", "0.002", "--output", str(tmp_path / "report-peers.md")),
        *("--json", str(results)),
        timeout=60,
    )
    rows = [r for r in rows if r[0] == "unified-numpy"]
    assert len(rows) == 1, stdout
    # peer, ms, vs native, range, first call, vs native, peak KiB, vs native, ...
    assert float(rows[0][2]) > 0, rows[0]
    assert re.fullmatch(r"\d+\.\d\d-\d+\.\d\d", rows[0][3]), rows[0]
    peers = json.loads(results.read_text())["models"]["small"]["peers"]
    assert set(peers) == {"unified-numpy", "native-numpy"}
    assert peers["unified-numpy"]["memory"] > 0  # tracemalloc saw the step
    u, n = peers["unified-numpy"]["losses"], peers["native-numpy"]["losses"]
    assert max(abs(a - b) for a, b in zip(u, n)) <= 1e-4 * max(1.0, abs(n[0]))
