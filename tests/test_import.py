"""Importing unified imports no framework (its time is measured in benchmarks/)."""

from __future__ import annotations

import subprocess
import sys


def test_import_loads_no_framework():
    code = (
        "import sys, unified, unified.ops, unified.optim, unified.losses\n"
        "print(sorted(m for m in ('torch', 'jax', 'mxnet', 'jaxlib')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
