"""pytest plugin: selects the backends under test once and parametrizes the suite.

Run it against any registered backend, from anywhere::

    pytest --pyargs unified_conformance --unified-backend NAME

Options:
  ``--unified-backend NAMES``: a backend name, a comma list, or ``all`` (every
  registered backend; a built-in one that fails to load is an error, not a skip).
  ``--unified-skips FILE``: known gaps, ``PATTERN skip|xfail REASON`` per line
  (:mod:`unified_conformance.skips`).
  ``--unified-fuzz-examples N``: examples per backend of the differential fuzz tests.
  ``--unified-device DEVICE``: the device the device tests place everything on
  (``cuda:0`` on a GPU machine); by default a second device of the backend when one
  exists here (MXNet's ``cpu:1``), else its default device.

The report header names the backends (framework, version, capabilities) and the
environment; a failed test gets a "unified reproduction" section with its id, its
backend and the command line that reruns it alone.

Fixtures:
  ``backend``: the active :class:`unified.plugins.BackendTable`, one test per backend.
  ``backend_pair``: ``(reference, other)`` tables, NumPy against every other backend.
  ``device``: the name of the device under test on the ``backend`` fixture's backend.

Marker:
  ``@pytest.mark.requires(capability)``: skip, with the reason, on a backend that does
  not declare ``capability``.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unified
from unified import plugins
from unified.backend import use_backend

from . import skips

REFERENCE = "numpy"
FUZZ_EXAMPLES = 12
_selected: list[str] = []
_skips: list[skips.Entry] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unified", "unified conformance suite")
    group.addoption(
        "--unified-backend",
        default=os.environ.get("UNIFIED_BACKEND") or REFERENCE,
        help="backend(s) to test: a name, a comma list, or 'all' (default: numpy)",
    )
    group.addoption(
        "--unified-skips",
        default=None,
        metavar="FILE",
        help="skip or xfail known gaps: lines of 'PATTERN skip|xfail REASON'",
    )
    group.addoption(
        "--unified-device",
        default=None,
        metavar="DEVICE",
        help="device of the device tests (test_devices.py), e.g. cuda:0 or gpu:1 "
        "(default: a non-default device of the backend when it has one here, such "
        "as MXNet's cpu:1, else its default device)",
    )
    group.addoption(
        "--unified-fuzz-examples",
        type=int,
        default=FUZZ_EXAMPLES,
        metavar="N",
        help=f"examples per backend of the fuzz tests (default {FUZZ_EXAMPLES})",
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
        "layers (e.g. Gluon); it runs when that framework's backend is under test, "
        "or, for a framework that is no backend (e.g. flax), when it is installed",
    )
    config.addinivalue_line(
        "markers",
        "zoo_large: a large model-zoo architecture (SPEC 14 acceptance); .ci/run runs "
        "these in a step of their own",
    )
    _selected[:] = _resolve(config.getoption("--unified-backend"))
    path = config.getoption("--unified-skips")
    _skips[:] = skips.load(path) if path else []


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [
        f"unified {unified.__version__}; python {platform.python_version()}; "
        f"numpy {np.__version__}; {platform.platform()}"
    ]
    for name in _selected:
        info = plugins.get_table(name).info
        caps = ", ".join(sorted(plugins.get_table(name).capabilities)) or "none"
        lines.append(
            f"unified backend under test: {name} "
            f"({info.framework} {info.version}; capabilities: {caps})"
        )
    device = config.getoption("--unified-device")
    if device:
        lines.append(f"unified device of the device tests: {device}")
    path = config.getoption("--unified-skips")
    if path:
        lines.append(f"unified skips file: {path} ({len(_skips)} entries)")
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


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: entries see every test
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Apply the skips file. Deselect backend-specific tests when none of their
    backends is selected, tests against a reference framework whose backend is not
    under test (a run without MXNet does not compare with Gluon; it does not skip
    either), and the ``zoo_large`` tests unless ``-m`` names that marker
    (``.ci/run`` has a step ``-m zoo_large`` for them)."""
    if _skips:
        skips.apply(_skips, items, config.getoption("--unified-skips"))
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
            and (
                callspec is None
                or "backend" not in callspec.params
                or not any(name in _selected for name in marker.args)
            )
        ) or (reference is not None and not _reference_present(reference.args[0])):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _reference_present(framework: str) -> bool:
    """Whether a ``reference(framework)`` test runs: a backend's framework when that
    backend is under test; any other framework (e.g. ``flax``) when installed."""
    if framework in _selected:
        return True
    if framework in plugins.registry.names():
        return False
    try:
        return importlib.util.find_spec(framework) is not None
    except (ImportError, ValueError):  # e.g. a broken installation
        return False


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
def device(request: pytest.FixtureRequest, backend: plugins.BackendTable) -> str:
    """The device the device tests use on ``backend`` (see ``--unified-device``)."""
    from unified.placement import available, resolve

    wanted = request.config.getoption("--unified-device")
    names = available(backend)
    if wanted is None:
        return names[1] if len(names) > 1 else names[0]
    try:
        return resolve(backend, wanted)
    except ValueError:
        pytest.skip(f"backend {backend.name!r} has no device {wanted!r}: {names}")


@pytest.fixture
def backend_pair(
    request: pytest.FixtureRequest,
) -> tuple[plugins.BackendTable, plugins.BackendTable]:
    ref, other = request.param
    if ref == other:
        pytest.skip("cross-backend tests need a second backend (--unified-backend)")
    return plugins.get_table(ref), plugins.get_table(other)


def _backends_of(item: pytest.Item) -> list[str]:
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    if "backend" in params:
        return [params["backend"]]
    if "backend_pair" in params:
        return list(params["backend_pair"])
    return list(_selected)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """Append to a failure its id, backend and a command line that reruns it."""
    report = yield
    ours = item.path.parent == Path(__file__).parent
    if ours and report.failed and report.when in ("setup", "call"):
        names = _backends_of(item)
        tables = [plugins.get_table(n) for n in names]
        described = ", ".join(
            f"{t.name} ({t.info.framework} {t.info.version})" for t in tables
        )
        test = f"{item.path}::{item.nodeid.partition('::')[2]}"
        args = [sys.executable, "-m", "pytest", test]
        args += ["--unified-backend", ",".join(names)]
        examples = item.config.getoption("--unified-fuzz-examples")
        if examples != FUZZ_EXAMPLES:
            args += ["--unified-fuzz-examples", str(examples)]
        command = shlex.join(args)
        report.sections.append(
            (
                "unified reproduction",
                f"test:    {item.nodeid}\nbackend: {described}\nrerun:   {command}\n",
            )
        )
    return report
