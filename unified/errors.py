"""The exceptions of unified: each a :class:`UnifiedError` and the matching builtin.

Example::

    >>> import unified as U
    >>> issubclass(U.ShapeError, ValueError) and issubclass(
    ...     U.ShapeError, U.UnifiedError
    ... )
    True
"""

from __future__ import annotations


class UnifiedError(Exception):
    """Base class of every error raised by unified."""


class BackendNotAvailableError(UnifiedError, ImportError):
    """A backend is unknown, not installed, or failed to import."""


class BackendPluginError(UnifiedError, RuntimeError):
    """A backend plugin is malformed: incomplete, duplicated, or misnamed."""


class ParameterNotInitializedError(UnifiedError, RuntimeError):
    """A parameter was used before ``initialize()``."""


class DeferredInitializationError(UnifiedError, RuntimeError):
    """A parameter was initialized but its shape is not known yet."""


class ShapeError(UnifiedError, ValueError):
    """An array's shape does not match what a parameter or layer expects."""


class CheckpointError(UnifiedError, ValueError):
    """A checkpoint cannot be saved or loaded; the message lists every problem."""


class FrozenParameterError(UnifiedError, RuntimeError):
    """A frozen parameter was asked for something only trainable ones have."""


class NothingToDifferentiateError(UnifiedError, ValueError):
    """``value_and_grad`` found no trainable parameter."""


class StructureError(UnifiedError, ValueError):
    """Nets that must have the same parameters (names, shapes, dtypes) do not."""


class DeviceNotAvailableError(UnifiedError, ValueError):
    """A device that the backend does not have (or cannot read) was asked for."""
