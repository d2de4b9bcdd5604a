"""pytest plugin: selects the backends under test once and parametrizes the suite.

Options:
  ``--unified-backend NAMES``: a backend name, a comma list, or ``all`` (every
  registered backend; a built-in one that fails to load is an error, not a skip).

Fixtures:
  ``backend``: the active :class:`unified.plugins.BackendTable`, one test per backend.
  ``backend_pair``: ``(reference, other)`` tables, NumPy against every other backend.

Marker:
  ``@pytest.mark.requires(capability)``: skip, with the reason, on a backend that does
  not declare ``capability``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from unified import plugins
from unified.backend import use_backend

REFERENCE = "numpy"
_selected: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unified", "unified conformance suite")
    group.addoption(
        "--unified-backend",
        default=os.environ.get("UNIFIED_BACKEND") or REFERENCE,
        help="backend(s) to test: a name, a comma list, or 'all' (default: numpy)",
    )


def _resolve(option: str) -> list[str]:
    registry = plugins.registry
    names = (
        registry.names()
        if option.strip() == "all"
        else [n.strip() for n in option.split(",") if n.strip()]
    )
    problems = []
    for name in names:
        try:
            registry.get(name)
        except Exception as exc:  # reported all at once below
            problems.append(f"  {name}: {exc}")
    if problems:
        raise pytest.UsageError(
            "--unified-backend: these backends cannot be tested:\n"
            + "\n".join(problems)
        )
    return names


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(capability): run only on backends declaring capability"
    )
    config.addinivalue_line(
        "markers",
        "only_backends(*names): a backend-specific test (e.g. the Gluon port); it is "
        "generated only for those of the selected backends",
    )
    config.addinivalue_line(
        "markers",
        "reference(framework): the test compares against that framework's own "
        "layers (e.g. Gluon); it runs when that framework's backend is under test",
    )
    config.addinivalue_line(
        "markers",
        "zoo_large: a large model-zoo architecture (SPEC 14 acceptance); .ci/run runs "
        "these in a step of their own",
    )
    _selected[:] = _resolve(config.getoption("--unified-backend"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for name in _selected:
        info = plugins.get_table(name).info
        caps = ", ".join(sorted(plugins.get_table(name).capabilities)) or "none"
        lines.append(
            f"unified backend under test: {name} "
            f"({info.framework} {info.version}; capabilities: {caps})"
        )
    return lines


def selected_backends() -> list[str]:
    """Return the backend names chosen with ``--unified-backend``."""
    return list(_selected)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        names = list(_selected)
        only = metafunc.definition.get_closest_marker("only_backends")
        if only is not None:
            names = [n for n in names if n in only.args]
        metafunc.parametrize("backend", names, indirect=True, ids=names)
    if "backend_pair" in metafunc.fixturenames:
        others = [n for n in _selected if n != REFERENCE]
        pairs = [(REFERENCE, n) for n in others]
        ids = [f"{a}-vs-{b}" for a, b in pairs]
        if not pairs:
            pairs, ids = [(REFERENCE, REFERENCE)], ["numpy-only"]
        metafunc.parametrize("backend_pair", pairs, indirect=True, ids=ids)


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Deselect backend-specific tests when none of their backends is selected, and
    tests against a reference framework whose backend is not under test (a run
    without MXNet does not compare with Gluon; it does not skip either). The
    ``zoo_large`` tests unless ``-m`` names that marker (``.ci/run`` has a step
    ``-m zoo_large`` for them)."""
    keep, drop = [], []
    large = "zoo_large" in (config.getoption("markexpr", "") or "")
    for item in items:
        if not large and item.get_closest_marker("zoo_large") is not None:
            drop.append(item)
            continue
        marker = item.get_closest_marker("only_backends")
        callspec = getattr(item, "callspec", None)
        reference = item.get_closest_marker("reference")
        if (
            marker is not None
            and (callspec is None or "backend" not in callspec.params)
        ) or (reference is not None and reference.args[0] not in _selected):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[plugins.BackendTable]:
    name = request.param
    marker = request.node.get_closest_marker("requires")
    table = plugins.get_table(name)
    if marker is not None:
        needed = marker.args[0]
        if needed not in table.capabilities:
            pytest.skip(f"backend {name!r} does not declare capability {needed!r}")
    with use_backend(name):
        yield table


@pytest.fixture
def backend_pair(
    request: pytest.FixtureRequest,
) -> tuple[plugins.BackendTable, plugins.BackendTable]:
    ref, other = request.param
    if ref == other:
        pytest.skip("cross-backend tests need a second backend (--unified-backend)")
    return plugins.get_table(ref), plugins.get_table(other)
