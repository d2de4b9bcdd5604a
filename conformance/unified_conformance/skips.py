"""The skips file of ``--unified-skips FILE``: known gaps of a backend, declared once.

One entry per line; ``#`` starts a comment::

    # pattern                                  action  reason
    test_ops.py::test_value[erf-mybackend]     xfail   erf is a 1e-4 approximation
    test_nn_kernels.py::*[mybackend]           skip    no convolution yet
    *::test_jit_*                              skip    compiled steps come in 2.0

A pattern is matched against the test id without its directory
(``test_ops.py::test_grad[tanh-mybackend]``) and against the full node id; ``*``
matches any run of characters and ``?`` one character (square brackets are
literal, unlike ``fnmatch``). A pattern without parameters also matches every
parametrization of the test (``test_ops.py::test_grad`` matches ``...[tanh-x]``).
``action`` is ``skip`` or ``xfail`` (not strict: an xfail that passes reports
XPASS); the reason is the rest of the line. An entry that matches no collected test
raises :class:`UnifiedSkipsWarning`, so stale entries do not accumulate.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ACTIONS = ("skip", "xfail")


class UnifiedSkipsWarning(pytest.PytestWarning):
    """An entry of the skips file matches no collected test."""


@dataclass
class Entry:
    """One line of the skips file."""

    pattern: str
    action: str
    reason: str
    line: int
    regex: re.Pattern[str] = field(init=False, repr=False)
    used: bool = False

    def __post_init__(self) -> None:
        body = re.escape(self.pattern).replace(r"\*", ".*").replace(r"\?", ".")
        self.regex = re.compile(rf"(?:{body})(?:\[.*\])?")

    def matches(self, short_id: str, nodeid: str) -> bool:
        return bool(self.regex.fullmatch(short_id) or self.regex.fullmatch(nodeid))


def parse(text: str, source: str = "<skips>") -> list[Entry]:
    """Parse the skips file format; raise ``pytest.UsageError`` on a bad line."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 2 or parts[1] not in ACTIONS:
            raise pytest.UsageError(
                f"{source}:{number}: expected 'PATTERN skip|xfail REASON', got {raw!r}"
            )
        reason = parts[2].strip() if len(parts) == 3 else f"listed in {source}"
        entries.append(Entry(parts[0], parts[1], reason, number))
    return entries


def load(path: str) -> list[Entry]:
    """Read and parse the skips file at ``path``."""
    file = Path(path)
    if not file.is_file():
        raise pytest.UsageError(f"--unified-skips: no such file: {path}")
    return parse(file.read_text(), str(path))


def short_id(item: pytest.Item) -> str:
    """The id of ``item`` without directories: ``test_ops.py::test_x[a]``."""
    return f"{item.path.name}::{item.nodeid.partition('::')[2]}"


def apply(entries: list[Entry], items: list[pytest.Item], source: str) -> None:
    """Mark the items each entry matches (the first matching entry wins) and warn
    about entries that match nothing."""
    for item in items:
        sid = short_id(item)
        for entry in entries:
            if entry.matches(sid, item.nodeid):
                entry.used = True
                reason = f"{entry.reason} ({source}:{entry.line})"
                if entry.action == "skip":
                    item.add_marker(pytest.mark.skip(reason=reason))
                else:
                    item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
                break
    for entry in entries:
        if not entry.used:
            warnings.warn_explicit(
                UnifiedSkipsWarning(
                    f"{entry.action} entry {entry.pattern!r} matches no collected "
                    "test (remove it or fix the pattern)"
                ),
                UnifiedSkipsWarning,
                source,
                entry.line,
            )
