"""Recurrent parameter names: unified (Gluon's), PyTorch's, and Gluon's file keys.

One layer ``k`` and direction (``l`` forward, ``r`` reverse) has four parameters;
the names correspond one to one:

=================  ======================  ====================================
unified / Gluon    PyTorch                 Gluon 1.x ``save_parameters`` key
=================  ======================  ====================================
``l0_i2h_weight``  ``weight_ih_l0``        ``_unfused.0.i2h_weight``
``l0_h2h_weight``  ``weight_hh_l0``        ``_unfused.0.h2h_weight``
``l0_i2h_bias``    ``bias_ih_l0``          ``_unfused.0.i2h_bias``
``r1_h2h_bias``    ``bias_hh_l1_reverse``  ``_unfused.1.r_cell.h2h_bias`` (bidir.)
=================  ======================  ====================================

(In a bidirectional layer the forward direction's keys read ``_unfused.0.l_cell...``.)
"""

from __future__ import annotations

import re

__all__ = ["gluon_file_name", "gluon_name", "torch_name"]

_GLUON = re.compile(r"(?P<d>[lr])(?P<k>\d+)_(?P<kind>i2h|h2h)_(?P<what>weight|bias)")
_TORCH = re.compile(
    r"(?P<what>weight|bias)_(?P<kind>ih|hh)_l(?P<k>\d+)(?P<r>_reverse)?"
)


def torch_name(name: str) -> str:
    """PyTorch's name of a recurrent parameter: ``l0_i2h_weight`` -> ``weight_ih_l0``.

    A structural prefix is kept (``enc.r1_h2h_bias`` -> ``enc.bias_hh_l1_reverse``).

    Example::

        >>> from unified.layers.recurrent import torch_name
        >>> torch_name("l0_i2h_weight"), torch_name("rnn.r1_h2h_bias")
        ('weight_ih_l0', 'rnn.bias_hh_l1_reverse')
    """
    prefix, dot, last = name.rpartition(".")
    m = _GLUON.fullmatch(last)
    if m is None:
        raise ValueError(
            f"{name!r} is not a recurrent parameter name; expected e.g. "
            "'l0_i2h_weight' or 'r1_h2h_bias'"
        )
    kind = "ih" if m["kind"] == "i2h" else "hh"
    reverse = "_reverse" if m["d"] == "r" else ""
    return f"{prefix}{dot}{m['what']}_{kind}_l{m['k']}{reverse}"


def gluon_name(name: str) -> str:
    """The unified (Gluon) name of a PyTorch recurrent parameter name.

    Example::

        >>> from unified.layers.recurrent import gluon_name
        >>> gluon_name("weight_hh_l1_reverse"), gluon_name("0.bias_ih_l0")
        ('r1_h2h_weight', '0.l0_i2h_bias')
    """
    prefix, dot, last = name.rpartition(".")
    m = _TORCH.fullmatch(last)
    if m is None:
        raise ValueError(
            f"{name!r} is not a PyTorch recurrent parameter name; expected e.g. "
            "'weight_ih_l0' or 'bias_hh_l1_reverse'"
        )
    kind = "i2h" if m["kind"] == "ih" else "h2h"
    return f"{prefix}{dot}{'r' if m['r'] else 'l'}{m['k']}_{kind}_{m['what']}"


def gluon_file_name(name: str, bidirectional: bool) -> str:
    """The key Gluon 1.x's ``save_parameters`` writes for a recurrent parameter.

    Gluon's fused layers save their parameters under the names of the cells they
    unfuse to (``l0_i2h_weight`` -> ``_unfused.0.i2h_weight``, or
    ``_unfused.0.l_cell.i2h_weight`` when the layer is bidirectional), although
    the block's attributes are ``l0_i2h_weight``.

    Example::

        >>> from unified.layers.recurrent import gluon_file_name
        >>> gluon_file_name("1.r0_h2h_bias", bidirectional=True)
        '1._unfused.0.r_cell.h2h_bias'
        >>> gluon_file_name("l1_i2h_weight", bidirectional=False)
        '_unfused.1.i2h_weight'
    """
    prefix, dot, last = name.rpartition(".")
    m = _GLUON.fullmatch(last)
    if m is None:
        raise ValueError(
            f"{name!r} is not a recurrent parameter name; expected e.g. "
            "'l0_i2h_weight' or 'r1_h2h_bias'"
        )
    cell = f"{m['d']}_cell." if bidirectional else ""
    return f"{prefix}{dot}_unfused.{m['k']}.{cell}{m['kind']}_{m['what']}"
