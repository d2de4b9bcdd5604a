"""SPEC 9: the error hierarchy and what backend errors say."""

from __future__ import annotations

import pytest

import unified as U

PAIRS = [
    (U.BackendNotAvailableError, ImportError),
    (U.ParameterNotInitializedError, RuntimeError),
    (U.DeferredInitializationError, RuntimeError),
    (U.ShapeError, ValueError),
    (U.CheckpointError, ValueError),
]


@pytest.mark.parametrize("error,builtin", PAIRS, ids=[e.__name__ for e, _ in PAIRS])
def test_errors_subclass_unified_and_builtin(backend, error, builtin):
    """S9: every error is a UnifiedError and the matching builtin."""
    assert issubclass(error, U.UnifiedError) and issubclass(error, builtin)


def test_unknown_backend_lists_choices_and_extras(backend):
    """S9: an unknown backend lists the installed ones and the pip extra of each
    built-in."""
    with pytest.raises(U.BackendNotAvailableError) as err:
        U.set_backend("no-such-backend")
    msg = str(err.value)
    assert "no-such-backend" in msg and backend.name in msg
    for extra in ("unified[torch]", "unified[jax]", "unified[mxnet]"):
        assert extra in msg


def test_backend_info_is_complete(backend):
    """S9/plugins: the backend_info hook names the backend, framework and version."""
    info = backend.backend_info()
    assert info.name == backend.name and info.framework and info.version
    assert (info.framework, info.version) == (
        backend.info.framework,
        backend.info.version,
    )
    assert set(info.capabilities) <= set(backend.capabilities)
