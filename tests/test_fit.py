"""``Trainer.fit``'s argument checks, its display, and the conformance matrix.

The numbers of ``fit``/``evaluate``/``predict`` and the callbacks are checked on
every backend against a float64 oracle in ``unified_conformance/test_fit.py``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

import unified as U
from unified.progress import make_bar
from unified.report import Matrix, section

X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
Y = np.arange(10) % 2


def _trainer():
    U.seed(0)
    net = U.Dense(2, in_units=3)
    net.initialize()
    return U.Trainer(net, U.SGD(net.params(), lr=0.1))


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"epochs": 0}, ValueError, "Trainer.fit: epochs must be > 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be a whole number"),
        ({"verbose": 3}, ValueError, "verbose must be one of [0, 1, 2]"),
        ({"metrics": ["f1"]}, ValueError, "a metric name must be one of ['accuracy']"),
        ({"metrics": [3]}, TypeError, "metrics must be names"),
        ({"loss": "mse"}, TypeError, "loss must be a callable loss(net, x, y)"),
        ({"callbacks": [print]}, TypeError, "callbacks must be unified.callbacks"),
        ({"data": (X, Y[:5])}, ValueError, "same number (> 0) of samples"),
        ({"data": "xy"}, TypeError, "must be a tuple (x, y) of arrays or an iterable"),
        ({"data": [(X, Y)], "batch_size": 4}, ValueError, "batch_size applies to"),
        ({"data": [X]}, TypeError, "each batch must be an (x, y) pair"),
        ({"data": (X, Y.astype("float32"))}, ValueError, "takes integer class labels"),
        ({"validation_data": 5}, TypeError, "validation_data must be a tuple"),
    ],
)
def test_fit_arguments_are_checked(kwargs, error, says):
    data = kwargs.pop("data", (X, Y))
    with pytest.raises(error) as info:
        _trainer().fit(data, **{"verbose": 0, **kwargs})
    assert says in str(info.value)


def test_a_used_up_iterator_is_a_clear_error():
    batches = iter([(X, Y)])
    with pytest.raises(ValueError, match="used up after one pass"):
        _trainer().fit(batches, epochs=2, verbose=0)


def test_a_monitor_missing_from_the_logs_is_named():
    stop = U.EarlyStopping(monitor="val_loss")
    with pytest.raises(ValueError, match="pass validation_data"):
        _trainer().fit((X, Y), verbose=0, callbacks=[stop])


def test_progress_is_off_when_stdout_is_not_a_terminal(capsys):
    history = _trainer().fit((X, Y), epochs=2, batch_size=4, verbose=1)
    assert len(history["loss"]) == 2
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    _trainer().fit((X, Y), epochs=3, batch_size=4, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["epoch", "1/3"],
        ["epoch", "2/3"],
        ["epoch", "3/3"],
    ]
    assert all("loss" in line and "accuracy" in line for line in lines)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_bar_on_a_terminal_rewrites_one_line():
    stream = _Terminal()
    bar = make_bar(1, "epoch 1/1", 4, stream)
    for done in range(1, 5):
        bar.update(done, {"loss": 1.0 / done})
    bar.close({"loss": 0.25, "accuracy": 1.0})
    text = stream.getvalue()
    assert "\r" in text and "[====================] 4/4" in text
    assert text.endswith("loss 0.2500  accuracy 1.0000\n")
    assert make_bar(0, "epoch", 4, _Terminal()).__class__.__name__ == "Bar"


def test_matrix_rows_and_counts():
    assert section("pkg/test_spec12_modes.py::test_a[jax]") == "12 modes"
    assert section("tests/test_gluon_port.py::t") == "gluon port"

    class Item:
        def __init__(self, nodeid, params):
            self.nodeid = nodeid
            self.callspec = type("C", (), {"params": params})()

    class Report:
        def __init__(self, nodeid, when, outcome):
            self.nodeid, self.when, self.outcome = nodeid, when, outcome

    m = Matrix()
    a, b, c = (
        "x/test_spec2_params.py::a",
        "x/test_ops.py::b",
        "x/test_spec2_params.py::c",
    )
    m.pytest_collection_modifyitems(
        [Item(a, {"backend": "numpy"}), Item(b, {"backend_pair": ("numpy", "jax")})]
        + [Item(c, {"backend": "numpy"})]
    )
    for report in [
        Report(a, "setup", "passed"),
        Report(a, "call", "passed"),
        Report(a, "teardown", "failed"),  # a passing test whose teardown fails: failed
        Report(b, "setup", "skipped"),
        Report(c, "call", "passed"),
    ]:
        m.pytest_runtest_logreport(report)
    assert m.counts[("2 params", "numpy")] == {"passed": 1, "failed": 1, "skipped": 0}
    assert m.counts[("ops", "jax")]["skipped"] == 1
    assert m.failed() == 1
    text = m.render()
    assert text.splitlines()[1].split() == ["SPEC", "section", "numpy", "jax"]
    assert "2 params" in text and "1/1/0" in text and "0/0/1" in text
