"""Neutral math for custom ``forward`` code: each name is the active backend's hook.

``unified.ops.<name>`` is the implementation of hook ``<name>`` in
:mod:`unified.hookspecs` (which documents it) of the active backend, bound when the
backend is activated, so a call costs one plain function call. Inside
``value_and_grad`` the ops accept the backend's traced arrays, so a ``forward``
written with them differentiates on every backend.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> from unified import ops
    >>> x = ops.zeros((2, 3), "float32")
    >>> U.to_numpy(ops.relu(ops.add(x, 1.0))).shape
    (2, 3)
"""

from __future__ import annotations

from typing import Any

from unified.hookspecs import MATH_HOOKS

__all__ = list(MATH_HOOKS)


def __getattr__(name: str) -> Any:
    # First use before any backend was selected: select the default, which binds
    # every op into this module's namespace.
    if name in MATH_HOOKS:
        from unified.backend import current_backend

        current_backend()
        return globals()[name]
    raise AttributeError(f"module 'unified.ops' has no attribute {name!r}")
