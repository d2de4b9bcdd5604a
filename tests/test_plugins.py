"""Plugin loading, tested with fake distributions in a temporary directory.

Nothing is installed: each test writes ``<name>.dist-info`` folders (METADATA and
entry_points.txt) and the plugin modules into ``tmp_path`` and puts it on sys.path,
which is all ``importlib.metadata`` needs to discover them.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import unified as U
from unified import hookspecs
from unified.plugins import ENTRY_POINT_GROUP, Registry

GOOD = """
import numpy as np
from unified import BackendInfo, hookimpl
import unified_numpy as ref

@hookimpl
def backend_info():
    return BackendInfo(name="{name}", framework="numpy", version="0", \
capabilities=frozenset())
"""


def _good_module(name: str) -> str:
    """A complete third-party backend that re-exports the NumPy backend's hooks."""
    hooks = [h for h in hookspecs.hook_names() if h not in hookspecs.OPTIONAL_HOOKS]
    body = GOOD.format(name=name)
    for hook in hooks:
        if hook != "backend_info":
            body += f"\n{hook} = hookimpl(ref.{hook})\n"
    return body


def _fake_dist(root: Path, dist: str, entries: dict[str, str], modules: dict[str, str]):
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"
    )
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[mod]


def test_good_plugin_is_discovered_and_usable(site):
    _fake_dist(
        site,
        "fake-good",
        {"fakegood": "fake_good"},
        {"fake_good": _good_module("fakegood")},
    )
    registry = Registry()
    assert "fakegood" in registry.names() and "numpy" in registry.names()
    table = registry.get("fakegood")
    assert table.info.name == "fakegood" and table.add(1.0, 2.0) == 3.0
    assert "jit" not in table.capabilities


def test_broken_plugin_is_reported_and_does_not_break_others(site, caplog):
    _fake_dist(
        site,
        "fake-broken",
        {"fakebroken": "fake_broken"},
        {"fake_broken": "raise RuntimeError('boom at import')\n"},
    )
    registry = Registry()
    with pytest.raises(U.BackendNotAvailableError, match="boom at import"):
        registry.get("fakebroken")
    usable = registry.usable()
    assert "numpy" in usable and "fakebroken" not in usable
    assert "boom at import" in registry.failures()["fakebroken"]
    assert "boom at import" in caplog.text


def test_duplicate_names_name_both_packages(site):
    mod = _good_module("numpy")
    _fake_dist(site, "fake-dup", {"numpy": "fake_dup"}, {"fake_dup": mod})
    with pytest.raises(U.BackendPluginError) as err:
        Registry().names()
    msg = str(err.value)
    assert "'numpy'" in msg and "fake-dup" in msg and "'unified'" in msg


def test_incomplete_backend_lists_every_missing_hook(site):
    source = (
        GOOD.format(name="fakehalf") + "\n@hookimpl\ndef add(a, b):\n    return a + b\n"
    )
    _fake_dist(site, "fake-half", {"fakehalf": "fake_half"}, {"fake_half": source})
    with pytest.raises(U.BackendPluginError) as err:
        Registry().get("fakehalf")
    msg = str(err.value)
    missing = [
        h
        for h in hookspecs.hook_names()
        if h not in hookspecs.OPTIONAL_HOOKS and h not in ("add", "backend_info")
    ]
    assert f"lacks {len(missing)} required hook(s)" in msg
    for hook in missing:
        assert hook in msg
    assert "jit" not in msg.split("lacks")[1], "optional hooks are not required"


def test_misnamed_backend_is_rejected(site):
    _fake_dist(
        site, "fake-mis", {"fakemis": "fake_mis"}, {"fake_mis": _good_module("other")}
    )
    with pytest.raises(U.BackendPluginError, match="reports the name 'other'"):
        Registry().get("fakemis")


def test_unknown_name_lists_backends_and_extras():
    with pytest.raises(U.BackendNotAvailableError) as err:
        Registry().get("nope")
    msg = str(err.value)
    assert "numpy" in msg and "pip install 'unified[torch]'" in msg


def test_builtins_register_through_entry_points():
    from importlib import metadata

    eps = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert eps["numpy"] == "unified_numpy" and eps["torch"] == "unified_torch"
    assert eps["jax"] == "unified_jax" and eps["mxnet"] == "unified_mxnet"


def test_selection_env_var_and_context_manager(monkeypatch):
    import subprocess

    code = "import unified as U; print(U.current_backend().name)"
    env = {**__import__("os").environ, "UNIFIED_BACKEND": "jax"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "jax"
    with U.use_backend("numpy"):
        assert U.current_backend().name == "numpy"
        assert U.ops.add.__wrapped__.__module__.startswith("unified_numpy")


def test_ops_table_is_resolved_once():
    """The hot path calls plain functions from the table, not pm.hook."""
    table = U.set_backend("numpy")
    assert U.ops.linear.__wrapped__ is table.linear  # one thin SPEC 10 wrapper
    import unified_numpy

    assert table.linear is unified_numpy.linear
