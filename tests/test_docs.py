"""The documentation's runnable examples run (on the NumPy backend)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import unified as U

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _blocks(name: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), re.S)


@pytest.mark.parametrize("page", ["training.md"])
def test_page_runs(page, capsys):
    with U.use_backend("numpy"):
        for block in _blocks(page):
            exec(compile(block, f"docs/{page}", "exec"), {})
    assert "final loss" in capsys.readouterr().out
