"""``example_broken``: the example backend with one wrong gradient.

``tanh`` returns the right values, but its backward pass uses ``1 - y`` instead of
``1 - y**2``, a typical slip. The conformance kit must fail on it and name ``tanh``.
"""

from __future__ import annotations

from typing import Any

from unified_numpy.tape import Node, record

from unified import BackendInfo, hookimpl
from unified_float64 import *  # noqa: F403 - every hook of the example backend
from unified_float64 import info, widened


@hookimpl
def backend_info() -> BackendInfo:
    """The example backend under another name."""
    return info("example_broken")


def _tanh(x: Any) -> Any:
    """tanh with a wrong gradient (``1 - y`` instead of ``1 - y * y``)."""
    import numpy as np

    if type(x) is Node:
        out = np.tanh(x.value)
        return record(out, (x,), (lambda g: g * (1 - out),))
    return np.tanh(x)


tanh = hookimpl(widened(_tanh))
