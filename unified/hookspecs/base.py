"""What every hookspec module shares: the marker and the array aliases."""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("unified")

Array = Any
"""A native array of the backend (or, inside ``value_and_grad``, its traced
stand-in)."""

Axis = int | tuple[int, ...] | None
