"""Persistent worker processes and the round-robin across them (``peers.py``).

``harness.py``'s scripts run one backend per subprocess and interleave runners
*within* it. ``peers.py`` compares peers that cannot share a process (each
framework, and Keras once per ``KERAS_BACKEND``), so its workers stay alive for
the whole run: :func:`serve` (worker side) answers one JSON request line per run
request, :class:`Worker` (parent side) sends them, and :func:`round_robin` asks
every worker in turn, one process busy at a time, reversing the order every other
round.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable

from harness import RESULT_TAG, Result, Runner, reply


def serve(setup: Result, handle: Callable[[Result], Result]) -> None:
    """Worker side: send ``setup``, then answer each JSON request read from stdin
    with ``handle(request)`` until a ``{"quit": true}`` request or end of input."""
    reply(setup)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            reply({})
            return
        reply(handle(request))


def timed_runs(runners: dict[str, Runner], steps: dict[str, int]) -> Result:
    """Run each runner named in ``steps``, in that order, for its number of steps;
    return ``{"times": {label: seconds per step}}``."""
    times = {}
    for label, n in steps.items():
        t0 = time.perf_counter()
        runners[label](n)
        times[label] = (time.perf_counter() - t0) / n
    return {"times": times}


class Worker:
    """Parent side of a persistent worker subprocess (:func:`serve`): one request
    line in, one result line out. Its other output (libraries' chatter) is
    skipped; its stderr is the parent's."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.setup: Result = {}  # what the worker sent first (its ``serve`` setup)
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def read(self) -> Result:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(RESULT_TAG):
                result: Result = json.loads(line[len(RESULT_TAG) :])
                return result
        status = self.proc.wait()
        raise RuntimeError(f"worker {self.name} exited with status {status}")

    def ask(self, request: Result) -> Result:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(RuntimeError, OSError):
                self.ask({"quit": True})
        self.proc.wait(timeout=60)


def round_robin(
    plan: list[tuple[Worker, dict[str, int]]], request: Result, repeats: int
) -> dict[str, list[float]]:
    """``repeats`` rounds; in each, every worker of ``plan`` runs each of its
    runners once for its number of steps (``request`` plus ``"steps"``), one
    process at a time. The order of workers, and of runners within a worker, is
    reversed every other round (A B C, C B A, ...). Returns the seconds per step
    of every runner in every round."""
    times: dict[str, list[float]] = {}
    for r in range(repeats):
        for worker, steps in plan if r % 2 == 0 else plan[::-1]:
            items = list(steps.items())
            ordered = dict(items if r % 2 == 0 else items[::-1])
            answer = worker.ask({**request, "steps": ordered})
            for label, seconds in answer["times"].items():
                times.setdefault(label, []).append(seconds)
    return times
