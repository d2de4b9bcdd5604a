"""Every docstring example in ``unified/`` runs, on every selected backend.

The examples are written backend-neutrally (``U.to_numpy(...)`` before printing), so
one expected output holds for NumPy, PyTorch, JAX and MXNet alike.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import unified


def _modules() -> list[str]:
    names = ["unified"]
    for info in pkgutil.walk_packages(unified.__path__, "unified."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples_run(backend, module):
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures = []
    for test in finder.find(mod, module):
        result = runner.run(test, out=failures.append)
        del result
    assert not failures, "".join(failures)
