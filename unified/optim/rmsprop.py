"""RMSProp (torch.optim's formulas: epsilon outside the square root)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unified.optim.base import Arrays, Coeffs, Group, Optimizer
from unified.parameters import Parameter


class RMSProp(Optimizer):
    """RMSProp (torch.optim): epsilon outside the square root.

    ``sq = alpha*sq + (1-alpha)*g*g``; ``avg = sqrt(sq) + eps`` (centered:
    ``sqrt(sq - ga*ga) + eps`` with ``ga = alpha*ga + (1-alpha)*g``); with momentum
    ``buf = momentum*buf + g/avg``, ``w = w - lr*buf``, else ``w = w - lr*g/avg``.
    """

    defaults = {
        "alpha": 0.99,
        "eps": 1e-8,
        "momentum": 0.0,
        "centered": False,
        "weight_decay": 0.0,
    }
    state_keys: tuple[str, ...] = ("square_avg",)

    def __init__(
        self,
        params: Any,
        lr: float | None = None,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        centered: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            params,
            lr,
            alpha=alpha,
            eps=eps,
            momentum=momentum,
            centered=centered,
            weight_decay=weight_decay,
        )
        self.state_keys = self.keys_for(self.param_groups)

    def keys_for(self, groups: list[Group]) -> tuple[str, ...]:
        return (
            "square_avg",
            *(("momentum_buffer",) if self._any("momentum", groups) else ()),
            *(("grad_avg",) if self._any("centered", groups) else ()),
        )

    def static(self, group: Group, p: Parameter) -> tuple[Any, ...]:
        return (
            group["weight_decay"] * p.wd_mult != 0,
            group["momentum"] != 0,
            bool(group["centered"]),
        )

    def coefficients(self, group: Group, p: Parameter, step: int) -> Coeffs:
        alpha = float(group["alpha"])
        return {
            "lr": float(group["lr"]) * p.lr_mult,
            "alpha": alpha,
            "1-alpha": 1 - alpha,
            "eps": float(group["eps"]),
            "momentum": float(group["momentum"]),
            "wd": float(group["weight_decay"]) * p.wd_mult,
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
        decay, use_momentum, centered = static
        if decay:
            g = B.add(g, B.multiply(w, c["wd"]))
        sq = B.axpby(c["1-alpha"], B.multiply(g, g), c["alpha"], s["square_avg"])
        new = {"square_avg": sq}
        if centered:
            ga = B.axpby(c["1-alpha"], g, c["alpha"], s["grad_avg"])
            new["grad_avg"] = ga
            sq = B.subtract(sq, B.multiply(ga, ga))
        avg = B.add(B.sqrt(sq), c["eps"])
        if use_momentum:
            buf = B.axpby(1.0, B.divide(g, avg), c["momentum"], s["momentum_buffer"])
            new["momentum_buffer"] = buf
            return B.axpby(-c["lr"], buf, 1.0, w), new
        return B.axpby(-c["lr"], B.divide(g, avg), 1.0, w), new


RMSprop = RMSProp
