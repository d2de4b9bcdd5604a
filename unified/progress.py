"""The progress display of :meth:`unified.Trainer.fit` and the tables of the CLI.

``verbose=1`` draws a progress bar with the running loss and metrics, with ``rich``
when it is installed and as one plain rewritten line otherwise, replaced by the
epoch's summary line at its end, and only when standard output is a terminal (so
logs and CI output stay clean). ``verbose=2``
prints one line per epoch wherever the output goes; ``verbose=0`` prints nothing.

Example::

    >>> from unified.progress import format_logs
    >>> format_logs({"loss": 0.25, "accuracy": 0.5})
    'loss 0.2500  accuracy 0.5000'
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["Bar", "format_logs", "make_bar", "print_table"]


def format_logs(logs: dict[str, float]) -> str:
    """``"name value"`` pairs, four decimals each."""
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items())


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class Bar:
    """The silent display (``verbose=0``, or not a terminal); the base of the
    others."""

    def update(self, done: int, logs: dict[str, float]) -> None:
        """Show that ``done`` batches of the epoch are finished."""

    def close(self, logs: dict[str, float]) -> None:
        """End the epoch's display with its final ``logs``."""


class _EpochLine(Bar):
    """``verbose=2``: one line per epoch."""

    def __init__(self, title: str, stream: IO[str]) -> None:
        self.title, self.stream, self.start = title, stream, time.perf_counter()

    def close(self, logs: dict[str, float]) -> None:
        seconds = time.perf_counter() - self.start
        print(f"{self.title}  {seconds:.1f}s  {format_logs(logs)}", file=self.stream)


class _PlainBar(_EpochLine):
    """One line, rewritten with ``\\r`` at most ten times a second."""

    def __init__(self, title: str, total: int | None, stream: IO[str]) -> None:
        super().__init__(title, stream)
        self.total, self.last, self.width = total, 0.0, 0

    def update(self, done: int, logs: dict[str, float]) -> None:
        now = time.perf_counter()
        if now - self.last < 0.1 and done != self.total:
            return
        self.last = now
        if self.total:
            filled = int(20 * done / self.total)
            bar = f"[{'=' * filled}{'.' * (20 - filled)}] {done}/{self.total}"
        else:
            bar = f"{done} batches"
        line = f"{self.title} {bar}  {format_logs(logs)}"
        self.width = max(self.width, len(line))
        self.stream.write(f"\r{line}")
        self.stream.flush()

    def close(self, logs: dict[str, float]) -> None:
        self.stream.write(f"\r{' ' * self.width}\r")  # clear the bar
        super().close(logs)


class _RichBar(_EpochLine):
    """A ``rich.progress`` bar during the epoch, replaced by the epoch's line."""

    def __init__(self, title: str, total: int | None, stream: IO[str]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        super().__init__(title, stream)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[logs]}"),
            transient=True,
        )
        self.task = self.progress.add_task(title, total=total, logs="")
        self.progress.start()

    def update(self, done: int, logs: dict[str, float]) -> None:
        self.progress.update(self.task, completed=done, logs=format_logs(logs))

    def close(self, logs: dict[str, float]) -> None:
        self.progress.stop()
        super().close(logs)


def make_bar(
    verbose: int, title: str, total: int | None, stream: IO[str] | None = None
) -> Bar:
    """The display for one epoch of ``total`` batches (``None``: unknown)."""
    stream = sys.stdout if stream is None else stream
    if verbose == 2:
        return _EpochLine(title, stream)
    if verbose == 0 or not _isatty(stream):
        return Bar()
    if _rich_available() and stream is sys.stdout:
        return _RichBar(title, total, stream)
    return _PlainBar(title, total, stream)


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Print a table: a ``rich`` table when installed, else aligned plain text."""
    cells = [[str(c) for c in row] for row in rows]
    if _rich_available():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in cells:
            table.add_row(*row)
        width = None if _isatty(sys.stdout) else 200
        Console(width=width).print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(title)
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths))
    )
    print(line)
    print("-" * len(line))
    for row in cells:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths))
            )
        )
