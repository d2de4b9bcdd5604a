"""The matrix ``unified conformance`` prints: SPEC section by backend, with pass,
fail and skip counts.

:class:`Matrix` is a small pytest plugin object (``pytest.main(plugins=[matrix])``):
it learns each test's backend at collection (the ``backend`` parameter, or the
second of a ``backend_pair``) and counts the outcome reports. A test file names its
row: ``test_spec6_optim.py`` is section ``6 optim``, another file its name
(``test_cross_backend.py`` is ``cross backend``).

Example::

    >>> from unified.report import section
    >>> section("conformance/unified_conformance/test_spec6_optim.py")
    '6 optim'
    >>> section("test_cross_backend.py::test_x[numpy]")
    'cross backend'
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

__all__ = ["Matrix", "section"]

_SPEC = re.compile(r"test_spec(\d+)_(\w+)")
NO_BACKEND = "-"


def section(nodeid: str) -> str:
    """The row of a test: its SPEC section, or its file's name."""
    stem = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    match = _SPEC.fullmatch(stem)
    if match:
        return f"{match.group(1)} {match.group(2).replace('_', ' ')}"
    return stem.removeprefix("test_").replace("_", " ")


def _order(row: str) -> tuple[int, int, str]:
    number = row.split(" ", 1)[0]
    return (0, int(number), row) if number.isdigit() else (1, 0, row)


class Matrix:
    """Counts outcomes per (section, backend); a pytest plugin object."""

    def __init__(self) -> None:
        self.backend_of: dict[str, str] = {}
        self.counts: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: {"passed": 0, "failed": 0, "skipped": 0}
        )
        self._seen: dict[str, str] = {}

    # -- pytest hooks ---------------------------------------------------------------
    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            name = params.get("backend")
            pair = params.get("backend_pair")
            if isinstance(pair, (tuple, list)) and len(pair) == 2:
                name = pair[1]
            self.backend_of[item.nodeid] = str(name) if name else NO_BACKEND

    def pytest_runtest_logreport(self, report: Any) -> None:
        outcome = report.outcome
        if report.when != "call" and outcome == "passed":
            return
        if report.when == "teardown" and report.nodeid in self._seen:
            if outcome != "failed" or self._seen[report.nodeid] == "failed":
                return
            self._count(report.nodeid, self._seen[report.nodeid], -1)
        self._seen[report.nodeid] = outcome
        self._count(report.nodeid, outcome, 1)

    # -- results --------------------------------------------------------------------
    def _count(self, nodeid: str, outcome: str, delta: int) -> None:
        key = (section(nodeid), self.backend_of.get(nodeid, NO_BACKEND))
        self.counts[key][outcome] += delta

    def backends(self) -> list[str]:
        """The columns: backends in the order they were collected, then ``-``."""
        names = list(dict.fromkeys(b for _, b in self.counts))
        return [b for b in names if b != NO_BACKEND] + (
            [NO_BACKEND] if NO_BACKEND in names else []
        )

    def failed(self) -> int:
        """How many tests failed."""
        return sum(c["failed"] for c in self.counts.values())

    def render(self) -> str:
        """The matrix as plain text: one row per section, ``pass/fail/skip`` cells."""
        columns = self.backends()
        rows = sorted({s for s, _ in self.counts}, key=_order)
        if not rows:
            return "no tests ran"
        cells = []
        for row in rows:
            line = [row]
            for b in columns:
                c = self.counts.get((row, b))
                line.append(
                    "" if c is None else f"{c['passed']}/{c['failed']}/{c['skipped']}"
                )
            cells.append(line)
        header = [
            "SPEC section",
            *(b if b != NO_BACKEND else "(none)" for b in columns),
        ]
        widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
        out = ["conformance by SPEC section and backend (pass/fail/skip):"]
        for i, line in enumerate([header, *cells]):
            out.append(
                "  ".join(
                    c.ljust(w) if j == 0 else c.rjust(w)
                    for j, (c, w) in enumerate(zip(line, widths))
                )
            )
            if i == 0:
                out.append("-" * len(out[-1]))
        total = {
            k: sum(c[k] for c in self.counts.values())
            for k in ("passed", "failed", "skipped")
        }
        out.append(
            f"total: {total['passed']} passed, {total['failed']} failed, "
            f"{total['skipped']} skipped"
        )
        return "\n".join(out)
