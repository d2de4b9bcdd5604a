"""The optimizer base class, parameter groups and ``lr_groups`` (SPEC 6).

How an update splits into host ``coefficients`` and a backend ``rule`` is described
in :mod:`unified.optim`. Here: groups, their options and their names.

Example::

    >>> import unified as U
    >>> net = U.Sequential(U.Dense(2, in_units=2), U.Dense(1, in_units=2))
    >>> net.initialize()
    >>> opt = U.optim.SGD(U.optim.lr_groups(net, {r"0\\..*": 0.01}), lr=0.1)
    >>> [(len(g["params"]), g["lr"]) for g in opt.param_groups]
    [(2, 0.01), (2, 0.1)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from unified.errors import CheckpointError, StructureError
from unified.nets import Net
from unified.parameters import ParamDict, Parameter, compile_pattern, no_match_message
from unified.placement import track_optimizer
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
        track_optimizer(self)  # net.to(device) moves the state held here
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
