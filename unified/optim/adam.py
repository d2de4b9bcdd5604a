"""Adam and AdamW (torch.optim's formulas)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from unified.optim.base import Arrays, Coeffs, Group, Optimizer
from unified.parameters import Parameter


class Adam(Optimizer):
    """Adam (torch.optim): epsilon added after bias-correcting ``sqrt(v)``.

    ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g*g``;
    ``w = w - lr/(1-b1**t) * m / (sqrt(v)/sqrt(1-b2**t) + eps)``; ``t`` per parameter;
    coupled L2 decay ``g + wd*w`` (AdamW decouples it).
    """

    defaults = {
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
    }
    state_keys: tuple[str, ...] = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(
        self,
        params: Any,
        lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
        )
        self.state_keys = self.keys_for(self.param_groups)

    def keys_for(self, groups: list[Group]) -> tuple[str, ...]:
        amsgrad = self._any("amsgrad", groups)
        return ("exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if amsgrad else ()))

    def static(self, group: Group, p: Parameter) -> tuple[Any, ...]:
        return (group["weight_decay"] * p.wd_mult != 0, bool(group["amsgrad"]))

    def coefficients(self, group: Group, p: Parameter, step: int) -> Coeffs:
        b1, b2 = (float(b) for b in group["betas"])
        lr = float(group["lr"]) * p.lr_mult
        wd = float(group["weight_decay"]) * p.wd_mult
        return {
            "b1": b1,
            "1-b1": 1.0 - b1,
            "b2": b2,
            "1-b2": 1.0 - b2,
            "step_size": lr / (1.0 - b1**step),
            "bc2_sqrt": math.sqrt(1.0 - b2**step),
            "eps": float(group["eps"]),
            "wd": wd,
            "decay": 1.0 - lr * wd,
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
        decay, amsgrad = static
        if decay and not self.decoupled:
            g = B.add(g, B.multiply(w, c["wd"]))
        m = B.axpby(c["1-b1"], g, c["b1"], s["exp_avg"])
        v = B.axpby(c["1-b2"], B.multiply(g, g), c["b2"], s["exp_avg_sq"])
        new = {"exp_avg": m, "exp_avg_sq": v}
        if amsgrad:
            v = new["max_exp_avg_sq"] = B.maximum(s["max_exp_avg_sq"], v)
        denom = B.add(B.divide(B.sqrt(v), c["bc2_sqrt"]), c["eps"])
        keep = c["decay"] if decay and self.decoupled else 1.0  # AdamW: w*(1-lr*wd)
        return B.axpby(-c["step_size"], B.divide(m, denom), keep, w), new


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w = w * (1 - lr*wd)`` before the Adam
    step."""

    decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
