"""SPEC 1: stable structural names and regex selection."""

from __future__ import annotations

import numpy as np
import pytest

import unified as U


class Encoder(U.Net):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = U.Sequential(U.Dense(4, activation="relu"), U.Dense(3))
        self.head = U.Dense(2)

    def forward(self, x):
        return self.head(self.encoder(x))


def test_names_are_structural(backend):
    """S1.1: Sequential children are 0, 1, ...; attributes use their names."""
    net = Encoder()
    net.initialize()
    assert list(net.params()) == [
        "encoder.0.weight",
        "encoder.0.bias",
        "encoder.1.weight",
        "encoder.1.bias",
        "head.weight",
        "head.bias",
    ]


def test_names_do_not_depend_on_process_counters(backend):
    """S1.1: building the same net twice gives the same names (no global counters)."""
    first = U.Sequential(U.Dense(8), U.Dense(1))
    for _ in range(3):
        U.Dense(5)  # unrelated layers created in between change nothing
    second = U.Sequential(U.Dense(8), U.Dense(1))
    assert (
        list(first.params())
        == list(second.params())
        == ["0.weight", "0.bias", "1.weight", "1.bias"]
    )


def test_layer_numbering_counts_children(backend):
    """S1.3: an activation argument is part of Dense; a ReLU layer is a child."""
    fused = U.Sequential(U.Dense(8, activation="relu"), U.Dense(1))
    split = U.Sequential(U.Dense(8), U.ReLU(), U.Dense(1))
    assert list(fused.params(".*weight")) == ["0.weight", "1.weight"]
    assert list(split.params(".*weight")) == ["0.weight", "2.weight"]


def test_select_uses_fullmatch(backend):
    """S1.2: select is matched with re.fullmatch; a list means any of them."""
    net = Encoder()
    assert list(net.params(".*weight")) == [
        "encoder.0.weight",
        "encoder.1.weight",
        "head.weight",
    ]
    assert list(net.params("weight")) == []  # would match with re.search
    assert list(net.params("head")) == []  # would match with re.match
    assert list(net.params(["head\\..*", "encoder\\.1\\.bias"])) == [
        "encoder.1.bias",
        "head.weight",
        "head.bias",
    ]


def test_invalid_pattern_names_it(backend):
    """S1.2: an invalid pattern raises ValueError naming the pattern."""
    with pytest.raises(ValueError, match=r"\(unclosed"):
        Encoder().params("(unclosed")
    with pytest.raises(ValueError, match=r"\[bad"):
        Encoder().params([".*weight", "[bad"])


def test_params_is_ordered_and_dict_like(backend):
    """S1.2: ParamDict keeps registration order and works as a mapping."""
    net = U.Sequential(U.Dense(3, in_units=2))
    net.initialize()
    params = net.params()
    assert isinstance(params, U.ParamDict)
    assert "0.weight" in params and len(params) == 2
    assert params["0.weight"] is net[0].weight
    assert [p.shape for p in params.values()] == [(3, 2), (3,)]


def test_shared_parameter_listed_once_under_first_name(backend):
    """S1.4: a shared parameter is listed once, where it was first registered."""
    shared = U.Dense(4, in_units=4)
    net = U.Sequential(U.Dense(4, in_units=4), shared, shared)
    assert list(net.params()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert net.ties() == {"2.weight": "1.weight", "2.bias": "1.bias"}
    net.initialize()
    out = net(np.ones((1, 4), "float32"))
    assert out.shape == (1, 4)
