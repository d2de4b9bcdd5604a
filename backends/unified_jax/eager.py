"""``eager_jit``: a jitted kernel for eager calls, inlined while tracing.

Called eagerly, a Python-level composition of ``jax.numpy`` ops costs one
dispatch per op; behind ``jax.jit`` it is one dispatch. Inside a trace (an outer
``jax.jit``, ``jax.value_and_grad``: the compiled training step) the nested jit
buys nothing: XLA inlines it anyway, while JAX still traces it as a separate
function, linearizes and transposes it as a call, and lowers it to a function of
its own. ``eager_jit`` therefore calls the plain function whenever an argument is
a tracer, so the compiled step's trace and lowering are those of the inlined
composition (the same numbers: the program XLA compiles is the same).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

_Tracer = jax.core.Tracer


def eager_jit(fn: Callable[..., Any] | None = None, **jit_options: Any) -> Any:
    """``jax.jit(fn, **jit_options)`` for concrete arguments, ``fn`` itself when
    a positional or keyword argument is a tracer. Usable as a decorator, with or
    without options (``@eager_jit(static_argnums=(1,))``)."""
    if fn is None:
        return functools.partial(eager_jit, **jit_options)
    jitted = jax.jit(fn, **jit_options)
    plain = fn

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        for a in args:
            if isinstance(a, _Tracer):
                return plain(*args, **kwargs)
        for a in kwargs.values():
            if isinstance(a, _Tracer):
                return plain(*args, **kwargs)
        return jitted(*args, **kwargs)

    return call
