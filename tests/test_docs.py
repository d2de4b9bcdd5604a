"""Every ```python block of the documentation runs, on every selected backend.

Each page (``docs/*.md`` and ``README.md``) runs as one script: its blocks share a
namespace and run in order, as a reader would type them, in a temporary working
directory (some write checkpoints) with the page's backend selected by the
``backend`` fixture. A block that cannot run here (it needs a file or a framework
the reader has and CI does not) is marked, rarely, by a ``<!-- norun -->`` comment
on the line before it or by a title (```python title="..."); such blocks are
listed below so that they stay few. A block after ``<!-- requires: MODULE -->`` runs
where MODULE is installed (flax: environment 1 has it, the NumPy 2 one does not).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import unified as U

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
PAGES.append("README.md")

_FENCE = re.compile(
    r"(?P<before>[^\n]*)\n```python(?P<attrs>[^\n]*)\n(?P<code>.*?)```", re.S
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _blocks(page: str) -> tuple[list[str], list[str]]:
    """The page's runnable blocks, and the first line of each block marked norun."""
    runnable, skipped = [], []
    for m in _FENCE.finditer("\n" + (ROOT / page).read_text()):
        needs = re.search(r"requires: *([\w.]+)", m["before"])
        missing = needs is not None and not _installed(needs[1])
        if "norun" in m["before"] or "title=" in m["attrs"] or missing:
            skipped.append(m["code"].splitlines()[0] if m["code"] else "")
        else:
            runnable.append(m["code"])
    return runnable, skipped


def test_pages_have_python_blocks():
    assert sum(len(_blocks(p)[0]) for p in PAGES) >= 15
    # The blocks that do not run: keep this list short, and say why in the page.
    marked = {p: _blocks(p)[1] for p in PAGES if _blocks(p)[1]}
    assert sorted(marked) == ["docs/porting.md"], marked


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)[0]])
def test_page_runs(backend, page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, block in enumerate(_blocks(page)[0]):
        code = compile(block, f"{page} (python block {i + 1})", "exec")
        exec(code, namespace)
    if page == "docs/training.md":
        assert "final loss" in capsys.readouterr().out
    assert U.current_backend() is backend
