"""Smoke test of the benchmark harness: ``cnn_step.py`` runs and its sanity check
(unified and native torch train identically from the same weights) passes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cnn_step_numpy_lenet_smoke(tmp_path: Path) -> None:
    import torch  # noqa: F401  (the NumPy backend is compared with native torch)

    report = tmp_path / "report-cnn.md"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "backends"), env.get("PYTHONPATH", "")]
    )
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "cnn_step.py"),
            "--quick",
            "--backends",
            "numpy",
            "--models",
            "lenet",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--in-process",
            "--output",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.stdout.splitlines()
        if line.startswith("| numpy vs torch | lenet |")
    ]
    assert len(rows) == 1, out.stdout
    # backend, model, unified ms, native ms, ratio, range, target, ok
    assert float(rows[0][4]) > 0, rows[0]
    assert re.fullmatch(r"\d+\.\d\d-\d+\.\d\d", rows[0][5]), rows[0]
    assert "Sanity check passed" in out.stdout, out.stdout
    assert "Sanity check passed" in report.read_text()


def test_peers_numpy_small_smoke(tmp_path: Path) -> None:
    """``peers.py`` runs one round of the NumPy worker (the peers CI installs),
    writes its table and JSON, and the two peers computed the same losses."""
    import json

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "backends"), env.get("PYTHONPATH", "")]
    )
    results = tmp_path / "peers.json"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "peers.py"),
            "--quick",
            "--groups",
            "numpy",
            "--models",
            "small",
            "--repeats",
            "1",
            "--target",
            "0.002",
            "--output",
            str(tmp_path / "report-peers.md"),
            "--json",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.stdout.splitlines()
        if line.startswith("| unified-numpy |")
    ]
    assert len(rows) == 1, out.stdout
    # peer, ms, vs native, range, first call, vs native, peak KiB, vs native, ...
    assert float(rows[0][2]) > 0, rows[0]
    assert re.fullmatch(r"\d+\.\d\d-\d+\.\d\d", rows[0][3]), rows[0]
    peers = json.loads(results.read_text())["models"]["small"]["peers"]
    assert set(peers) == {"unified-numpy", "native-numpy"}
    assert peers["unified-numpy"]["memory"] > 0  # tracemalloc saw the step
    u, n = peers["unified-numpy"]["losses"], peers["native-numpy"]["losses"]
    assert max(abs(a - b) for a, b in zip(u, n)) <= 1e-4 * max(1.0, abs(n[0]))
