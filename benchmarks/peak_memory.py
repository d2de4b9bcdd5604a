"""Peak memory of one training step, by the counter each framework offers on CPU.

:func:`peak_bytes` runs a runner for one step (``run(1)``) under one of three
counters and returns the highest amount of memory the step held *on top of* what
was allocated before it (weights, optimizer state and cached buffers alive before
the step are not counted; what the step keeps, e.g. new gradients, is):

* ``"tracemalloc"`` (NumPy): :mod:`tracemalloc`'s peak minus its count at the
  start; NumPy reports its array buffers to it.
* ``"torch-profiler"`` (PyTorch, Keras on torch): ``torch.profiler`` with
  ``profile_memory=True``; the running sum of the allocator's ``[memory]`` events
  (allocations positive, frees negative) in time order, its maximum.
* ``"rss"`` (JAX, Keras on JAX, MXNet: JAX's ``device.memory_stats()`` is ``None``
  on CPU and MXNet has no CPU counter): the resident set size sampled every
  0.2 ms by a thread during :data:`RSS_STEPS` steps, its maximum minus the value
  before. Coarse: memory the allocator reuses from an earlier step (glibc keeps
  freed blocks; XLA and MXNet pool buffers) does not show, so after warm-up this
  is a lower bound, often near 0 for small steps.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

RSS_STEPS = 3
"""Steps sampled by the ``"rss"`` counter (it sees the highest of them)."""

COUNTERS = ("tracemalloc", "torch-profiler", "rss")


def peak_bytes(run: Callable[[int], Any], counter: str) -> int:
    """The peak memory of one step of ``run`` above its start, by ``counter``."""
    if counter == "tracemalloc":
        return _tracemalloc_peak(run)
    if counter == "torch-profiler":
        return _torch_peak(run)
    if counter == "rss":
        return _rss_peak(run)
    raise ValueError(f"unknown memory counter {counter!r}; choose from {COUNTERS}")


def _tracemalloc_peak(run: Callable[[int], Any]) -> int:
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run(1)
        return max(0, tracemalloc.get_traced_memory()[1] - start)
    finally:
        tracemalloc.stop()


def _torch_peak(run: Callable[[int], Any]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run(1)
    events = [
        e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    ]
    events.sort(key=lambda e: e.start_ns())
    total = peak = 0
    for event in events:
        total += event.nbytes()
        peak = max(peak, total)
    return peak


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_peak(run: Callable[[int], Any]) -> int:
    start = _rss()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.0002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        run(RSS_STEPS)
    finally:
        done.set()
        thread.join()
    return max(0, max(peak[0], _rss()) - start)
