"""SGD with momentum, dampening, Nesterov and coupled weight decay (torch.optim)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unified.optim.base import Arrays, Coeffs, Group, Optimizer
from unified.parameters import Parameter


class SGD(Optimizer):
    """SGD with momentum, dampening, Nesterov and coupled weight decay (torch.optim).

    ``g = grad + wd*wd_mult*w``; ``buf = momentum*buf + (1-dampening)*g`` (``buf = g``
    at the first step); ``g = g + momentum*buf`` with Nesterov, else ``buf``;
    ``w = w - lr*lr_mult*g``.
    """

    defaults = {
        "momentum": 0.0,
        "dampening": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    state_keys: tuple[str, ...] = ("momentum_buffer",)

    def __init__(
        self,
        params: Any,
        lr: float | None = None,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                "Nesterov momentum requires momentum > 0 and dampening = 0"
            )
        super().__init__(
            params,
            lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )
        self.state_keys = self.keys_for(self.param_groups)

    def keys_for(self, groups: list[Group]) -> tuple[str, ...]:
        return ("momentum_buffer",) if self._any("momentum", groups) else ()

    def static(self, group: Group, p: Parameter) -> tuple[Any, ...]:
        return (
            group["weight_decay"] * p.wd_mult != 0,
            group["momentum"] != 0,
            bool(group["nesterov"]),
            # without dampening ``fresh`` is always 1: the update skips g * 1
            float(group["dampening"]) != 0,
        )

    def coefficients(self, group: Group, p: Parameter, step: int) -> Coeffs:
        momentum = float(group["momentum"])
        first = step == 1
        return {
            "lr": float(group["lr"]) * p.lr_mult,
            "wd": float(group["weight_decay"]) * p.wd_mult,
            "momentum": momentum,
            "keep": 0.0 if first else momentum,
            "fresh": 1.0 if first else 1.0 - float(group["dampening"]),
        }

    def rule(
        self,
        B: Any,
        w: Any,
        g: Any,
        s: Arrays,
        c: Mapping[str, Any],
        static: tuple[Any, ...],
    ) -> tuple[Any, Arrays]:
        decay, use_momentum, nesterov, damped = static
        if decay:
            g = B.add(g, B.multiply(w, c["wd"]))
        if use_momentum:
            # first step: keep=0, fresh=1, so buf = g exactly, as torch's clone
            fresh = c["fresh"] if damped else 1.0
            buf = B.axpby(fresh, g, c["keep"], s["momentum_buffer"])
            s = {**s, "momentum_buffer": buf}
            g = B.add(g, B.multiply(buf, c["momentum"])) if nesterov else buf
        return B.axpby(-c["lr"], g, 1.0, w), s
