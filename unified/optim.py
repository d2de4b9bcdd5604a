"""Optimizers with torch.optim's formulas, written once in backend ops (SPEC 6).

Each update has two halves: ``coefficients`` runs on the host in float64 (learning
rate times ``lr_mult``, bias corrections, the step count) and ``rule`` applies them
with backend ops. The coefficients are Python floats cast once by the backend op,
or, in a compiled JAX step, inputs of the compiled function, so changing ``lr`` or
``lr_mult`` between steps is always honoured.

Example::

    >>> import numpy as np
    >>> import unified as U
    >>> net = U.Dense(1, in_units=2); net.initialize(U.init.Ones())
    >>> opt = U.optim.SGD(net.params(), lr=0.1, momentum=0.9)
    >>> _ = U.value_and_grad(lambda n: U.ops.sum(n.weight.data()))(net)
    >>> opt.step(); net.weight.numpy().tolist()
    [[0.8999999761581421, 0.8999999761581421]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from unified.errors import CheckpointError, StructureError
from unified.nets import Net
from unified.parameters import ParamDict, Parameter, compile_pattern, no_match_message
from unified.validation import number

Group = dict[str, Any]
Arrays = dict[str, Any]
Coeffs = dict[str, float]


class Optimizer:
    """Base class: parameter groups, per-parameter state keyed by identity and name.

    ``params`` is a ``ParamDict``, a list of them (or of parameters), or a list of
    group dicts ``{"params": ..., "lr": ..., ...}`` whose keys override the
    defaults. A parameter listed twice is updated once (its first group wins).
    """

    defaults: dict[str, Any] = {}
    state_keys: tuple[str, ...] = ()

    def __init__(self, params: Any, lr: float | None = None, **hyper: Any) -> None:
        owner = type(self).__name__
        self.defaults = {**type(self).defaults, "lr": lr, **hyper}
        self.param_groups: list[Group] = []
        # Names given by ParamDict keys (plus a group's optional "prefix"); a bare
        # Parameter is named by p.name when state is saved, so that it gets the
        # structural name a later net.initialize() gives it.
        self._names: dict[int, str | None] = {}
        seen: set[int] = set()
        for group in _as_groups(params):
            unknown = set(group) - set(self.defaults) - {"params", "prefix"}
            if unknown:
                raise ValueError(
                    f"unknown option(s) {sorted(unknown)} in a parameter group of "
                    f"{type(self).__name__}; valid options: {sorted(self.defaults)} "
                    "and 'prefix'"
                )
            prefix = str(group.get("prefix", ""))
            members = []
            for name, p in group["params"]:
                if id(p) not in seen:
                    seen.add(id(p))
                    members.append(p)
                    self._names[id(p)] = None if name is None else prefix + name
            merged = {**self.defaults, **group, "params": members}
            self.param_groups.append(_checked_group(merged, owner))
        self.state: dict[int, dict[str, Any]] = {}
        self._by_structure: set[int] = set()  # named by p.name after a clash
        self._resolve_name_clashes()
        self.names(explicit_only=True)  # duplicates fail now, not as lost state later

    def _resolve_name_clashes(self) -> None:
        """Groups from sub-nets (``enc.params()``, ``dec.params()``) give several
        parameters the same key (``weight``): those are named by their structural
        ``p.name`` instead (``enc.weight`` once the model is initialized)."""
        count: dict[str, int] = {}
        for name in self._names.values():
            if name is not None:
                count[name] = count.get(name, 0) + 1
        for key, name in list(self._names.items()):
            if name is not None and count[name] > 1:
                self._names[key] = None
                self._by_structure.add(key)

    def name_of(self, p: Parameter) -> str:
        """The name ``p``'s state is saved under: its ParamDict key, else ``p.name``."""
        return self._names.get(id(p)) or p.name

    def names(self, explicit_only: bool = False) -> dict[str, Parameter]:
        """Map the name each parameter's state is saved under to the parameter.

        Raises :class:`~unified.StructureError` when two parameters share a name
        (for example the same structural names from two nets).
        """
        by_name: dict[str, Parameter] = {}
        clashes = []
        for group in self.param_groups:
            for p in group["params"]:
                if (
                    explicit_only
                    and self._names.get(id(p)) is None
                    and id(p) not in self._by_structure
                ):
                    continue  # named by p.name once a net has initialized it
                name = self.name_of(p)
                if name in by_name:
                    clashes.append(name)
                by_name[name] = p
        if clashes:
            raise StructureError(
                f"{type(self).__name__}: several parameters are named {clashes}, so "
                "their optimizer state could not be saved and restored by name. Give "
                "each net's group a prefix, e.g. [{'params': gen.params(), 'prefix': "
                "'gen.'}, {'params': disc.params(), 'prefix': 'disc.'}]."
            )
        return by_name

    def _any(self, option: str, groups: list[Group] | None = None) -> bool:
        """Whether some group turns ``option`` on (decides which state arrays exist)."""
        groups = self.param_groups if groups is None else groups
        return any(bool(g[option]) for g in groups)

    def keys_for(self, groups: list[Group]) -> tuple[str, ...]:
        """The state arrays each parameter has under the options of ``groups``."""
        return type(self).state_keys

    # -- learning rate -----------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate of the first group; setting it sets every group's."""
        return float(self.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = float(value)

    def set_learning_rate(self, lr: float) -> None:
        """Gluon's spelling of ``opt.lr = lr``."""
        self.lr = lr

    # -- the two halves of an update -------------------------------------------------
    def static(self, group: Group, p: Parameter) -> tuple[Any, ...]:
        """The structure of the update (which terms exist); compiled steps key on it."""
        return ()

    def coefficients(self, group: Group, p: Parameter, step: int) -> Coeffs:
        """Host-side float64 scalars of step number ``step`` (1 for the first)."""
        raise NotImplementedError

    def rule(
        self,
        B: Any,
        w: Any,
        g: Any,
        s: Arrays,
        c: Mapping[str, Any],
        static: tuple[Any, ...],
    ) -> tuple[Any, Arrays]:
        """Return the new value and state arrays, written with backend ``B``'s ops."""
        raise NotImplementedError

    # -- stepping --------------------------------------------------------------------
    def entries(self) -> Iterable[tuple[Group, Parameter]]:
        """Yield ``(group, parameter)`` for every parameter that steps now."""
        for group in self.param_groups:
            for p in group["params"]:
                if not p.frozen and p.trainable and p._data is not None:
                    yield group, p

    def state_for(self, p: Parameter) -> dict[str, Any]:
        """Return (creating on first use) the state of ``p``: arrays and ``step``."""
        st = self.state.get(id(p))
        if st is None:
            B: Any = p._backend
            st = {
                "step": 0,
                "arrays": {k: B.zeros_like(p._data) for k in self.state_keys},
            }
            self.state[id(p)] = st
        return st

    def step(self) -> None:
        """Update every trainable parameter from its current gradient.

        Frozen parameters are skipped entirely (no decay, no momentum, no step
        count), and so are state parameters (``trainable=False``) always;
        parameters without a gradient yet use zeros. Every coefficient is
        computed before any parameter moves, so a bad option (say a group's lr set
        to a string) raises with nothing changed, as in a compiled step.
        """
        plan = []
        for group, p in self.entries():
            st = self.state.get(id(p))
            step = (st["step"] if st is not None else 0) + 1
            plan.append((group, p, self.coefficients(group, p, step), step))
        for group, p, c, step in plan:
            B: Any = p._backend
            st = self.state_for(p)
            grad = p._grad if p._grad is not None else B.zeros_like(p._data)
            new, st["arrays"] = self.rule(
                B, p._data, grad, st["arrays"], c, self.static(group, p)
            )
            st["step"] = step
            if new is not p._data:  # axpby updated it in place already
                p._data = B.assign(p._data, new)

    def zero_grad(self) -> None:
        """Reset the gradients of every parameter this optimizer updates."""
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad()

    # -- persistence -------------------------------------------------------------------
    def forget(self, params: list[Parameter]) -> None:
        """Stop updating ``params`` and drop their state (e.g. after re-tying)."""
        gone = {id(p) for p in params}
        for group in self.param_groups:
            group["params"] = [p for p in group["params"] if id(p) not in gone]
        for key in gone:
            self.state.pop(key, None)
            self._names.pop(key, None)

    def state_dict(self) -> dict[str, Any]:
        """Return the state keyed by parameter name: NumPy arrays and step counts."""
        names = {id(p): n for n, p in self.names().items()}
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(id(p))
                if st is not None:
                    arrays = {
                        k: np.array(p._backend.to_numpy(v), copy=True)
                        for k, v in st["arrays"].items()
                    }
                    state[names[id(p)]] = {"step": st["step"], **arrays}
        groups = [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": [names[id(p)] for p in g["params"]],
            }
            for g in self.param_groups
        ]
        return {"state": state, "param_groups": groups}

    def check_state_dict(self, state_dict: Mapping[str, Any]) -> list[str]:
        """Return every reason :meth:`load_state_dict` would refuse ``state_dict``."""
        by_name = self.names()
        problems = []
        keys = self.keys_for(self._restored_groups(state_dict))
        for name, entry in state_dict["state"].items():
            p = by_name.get(name)
            if p is None:
                problems.append(f"optimizer state for unknown parameter {name!r}")
                continue
            for key in keys:
                if key not in entry:
                    problems.append(
                        f"optimizer state of {name!r} lacks {key!r} (saved by another "
                        "optimizer or configuration?)"
                    )
                elif np.shape(entry[key]) != p.shape:
                    problems.append(
                        f"optimizer state {name}.{key}: expected shape {p.shape}, "
                        f"got {np.shape(entry[key])}"
                    )
        groups = state_dict.get("param_groups", [])
        if groups and len(groups) != len(self.param_groups):
            problems.append(
                f"{len(groups)} parameter groups saved, {len(self.param_groups)} here"
            )
        return problems

    def _restored_groups(self, state_dict: Mapping[str, Any]) -> list[Group]:
        """The groups as :meth:`load_state_dict` leaves them (saved options win)."""
        saved = state_dict.get("param_groups") or [{} for _ in self.param_groups]
        return [
            {**mine, **{k: v for k, v in theirs.items() if k != "params"}}
            for mine, theirs in zip(self.param_groups, saved)
        ]

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; parameters are matched by name.

        Everything is checked first: on any problem one
        :class:`~unified.CheckpointError` lists them all and nothing changes.
        """
        problems = self.check_state_dict(state_dict)
        if problems:
            raise CheckpointError(
                f"cannot load the state of {type(self).__name__}: "
                + "; ".join(problems)
                + ". Load state saved by the same optimizer over the same parameters."
            )
        by_name = self.names()
        for mine, restored in zip(self.param_groups, self._restored_groups(state_dict)):
            mine.update(restored)
        # Restored options may add state arrays (e.g. momentum turned on): a
        # parameter without saved state gets zeros for them.
        self.state_keys = self.keys_for(self.param_groups)
        for name, entry in state_dict["state"].items():
            p = by_name[name]
            B: Any = p._backend
            arrays = {
                k: B.asarray(np.array(entry[k], dtype=p.dtype), p.dtype)
                for k in self.state_keys
            }
            self.state[id(p)] = {"step": int(entry["step"]), "arrays": arrays}
        for group in self.param_groups:
            for p in group["params"]:
                arrays = self.state.get(id(p), {}).get("arrays", {})
                for k in set(self.state_keys) - set(arrays):
                    arrays[k] = p._backend.zeros_like(p._data)


_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "lr": (0.0, None, False),
    "weight_decay": (0.0, None, False),
    "momentum": (0.0, None, False),
    "dampening": (0.0, 1.0, False),
    "eps": (0.0, None, False),
    "alpha": (0.0, 1.0, False),
}


def _checked_group(group: Group, owner: str) -> Group:
    """Validate one group's options (after defaults are merged in)."""
    if group.get("lr") is None:
        raise TypeError(
            f"{owner}: lr is required: pass lr=... or give every parameter group "
            "its own 'lr', e.g. SGD([{'params': a.params(), 'lr': 0.1}, ...])."
        )
    for key, (low, high, high_open) in _RANGES.items():
        if key in group:
            group[key] = number(group[key], key, owner, low, high, high_open)
    if "betas" in group:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{owner}: betas must be a pair, got {betas!r}")
        group["betas"] = tuple(
            number(b, "betas", owner, 0.0, 1.0, high_open=True) for b in betas
        )
    return group


def _as_groups(params: Any) -> list[dict[str, Any]]:
    """Normalize every accepted ``params`` form to groups of ``(name, parameter)``."""
    if isinstance(params, Net):
        raise TypeError("pass net.params(), not the net itself, to an optimizer")
    if isinstance(params, (ParamDict, Parameter, dict)):
        params = [params]
    groups = []
    for entry in params:
        group = entry if isinstance(entry, dict) else {"params": entry}
        members = group["params"]
        pairs: list[tuple[str | None, Parameter]] = []
        for item in members if isinstance(members, list) else [members]:
            if isinstance(item, ParamDict):
                pairs.extend(item.items())
            elif isinstance(item, Parameter):
                pairs.append((None, item))
            else:
                raise TypeError(
                    f"optimizer params must be ParamDicts or Parameters, got "
                    f"{type(item).__name__}"
                )
        groups.append({**group, "params": pairs})
    if not any(g["params"] for g in groups):
        raise ValueError("the optimizer got an empty parameter list")
    return groups


def lr_groups(net: Net, patterns: Mapping[str, float]) -> list[dict[str, Any]]:
    """Build parameter groups from ``{regex: lr}`` (first full match wins).

    Parameters that match no pattern form a last group that keeps the optimizer's
    base learning rate.

    Example::

        >>> import unified as U
        >>> net = U.Sequential(U.Dense(4, in_units=3), U.Dense(2, in_units=4))
        >>> [(list(g["params"]), g.get("lr"))
        ...  for g in U.lr_groups(net, {"0\\\\..*": 0.1})]
        [(['0.weight', '0.bias'], 0.1), (['1.weight', '1.bias'], None)]
    """
    compiled = [
        (compile_pattern(p), number(lr, "lr", "lr_groups", low=0.0))
        for p, lr in patterns.items()
    ]
    buckets: dict[int, dict[str, Parameter]] = {i: {} for i in range(len(compiled) + 1)}
    for name, p in net._listing().items():
        index = next(
            (i for i, (c, _) in enumerate(compiled) if c.fullmatch(name)), len(compiled)
        )
        buckets[index][name] = p
    names = list(net._listing())
    for i, (c, _) in enumerate(compiled):
        if not buckets[i]:
            taken = [n for n in names if c.fullmatch(n)]
            if not taken:
                raise ValueError(no_match_message(c.pattern, names, "lr_groups"))
            raise ValueError(
                f"lr_groups: every name the pattern {c.pattern!r} matches ({taken[:4]}"
                f"{' ...' if len(taken) > 4 else ''}) was taken by an earlier pattern "
                "(the first match wins). Reorder the patterns or remove this one."
            )
    groups: list[dict[str, Any]] = [
        {"params": ParamDict(buckets[i]), "lr": lr}
        for i, (_, lr) in enumerate(compiled)
    ]
    if buckets[len(compiled)]:
        groups.append({"params": ParamDict(buckets[len(compiled)])})
    return groups


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
        decay, use_momentum, nesterov = static
        if decay:
            g = B.add(g, B.multiply(w, c["wd"]))
        if use_momentum:
            # first step: keep=0, fresh=1, so buf = g exactly, as torch's clone
            buf = B.axpby(c["fresh"], g, c["keep"], s["momentum_buffer"])
            s = {**s, "momentum_buffer": buf}
            g = B.add(g, B.multiply(buf, c["momentum"])) if nesterov else buf
        return B.axpby(-c["lr"], g, 1.0, w), s


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
