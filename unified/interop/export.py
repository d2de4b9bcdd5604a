"""``net.to_native(framework)``: a unified net as the framework's own model (SPEC 14).

* ``"torch"``: a ``torch.nn.Module`` whose parameters (``nn.Parameter``) and running
  statistics (buffers) carry the unified structural names; its ``forward`` runs the
  net on the torch backend directly on those tensors, so ``loss.backward()`` and
  ``torch.optim`` work as for any module, and ``train()``/``eval()`` choose the mode.
  A ``Sequential`` of layers with an exact ``torch.nn`` twin becomes that
  ``torch.nn.Sequential`` instead (see :mod:`unified.interop.torch_export`).
* ``"mxnet"``: a Gluon ``HybridBlock`` with Gluon ``Parameter`` s under the same
  structural names (``_collect_params_with_prefix`` keys); it runs imperatively
  (``hybridize`` has no effect), in training mode inside ``autograd.record()`` as
  Gluon blocks do, so ``gluon.Trainer`` trains it.
* ``"jax"``: ``(apply_fn, params)``: ``params`` maps names to ``jax.Array`` s and
  ``apply_fn(params, *inputs, training=False)`` returns the outputs, with
  ``training=True`` the pair ``(outputs, new_state)`` (the updated running
  statistics, by name); a pure function of its arguments apart from dropout's
  host-drawn masks, so ``jax.jit`` and ``jax.grad`` apply.

The exported object holds its own copy of the values (bit for bit) and is in
inference mode on a plain call.
"""

from __future__ import annotations

from typing import Any

from unified import modes as _modes
from unified.checkpoint import port
from unified.nets import Net

FRAMEWORKS = ("torch", "mxnet", "jax")


def to_native(net: Net, framework: str) -> Any:
    """Return ``net`` as a native model of ``framework`` (see the module docstring)."""
    if framework not in FRAMEWORKS:
        raise ValueError(
            f"to_native: unknown framework {framework!r}; expected one of {FRAMEWORKS}"
        )
    missing = [n for n, p in net._listing().items() if p._data is None]
    if missing:
        raise ValueError(
            f"to_native needs every parameter's value; {', '.join(missing[:4])} "
            "have none yet: initialize the net and run one batch through it"
        )
    if framework == "torch":
        from unified.interop.torch_export import to_torch

        return to_torch(net)
    if framework == "mxnet":
        return _to_gluon(net)
    return _to_jax(net)


def _to_jax(net: Net) -> tuple[Any, dict[str, Any]]:
    twin = port(net, "jax")
    listing = twin._listing()
    params = {n: p._data for n, p in listing.items()}
    states = [n for n, p in listing.items() if not p.trainable]

    def apply_fn(params: dict[str, Any], *inputs: Any, training: bool = False) -> Any:
        """Run the net with ``params``; see :mod:`unified.interop.export`."""
        saved = {n: p._data for n, p in listing.items()}
        for n, p in listing.items():
            p._data = params[n]
        try:
            if not training:
                with _modes.training(False):
                    return twin(*inputs)
            with _modes.training(True):
                out, writes = _modes.differentiated(
                    lambda m, *a: m(*a), twin, tuple(inputs)
                )
            new_state = {}
            for n in states:
                hit = writes.get(id(listing[n]))
                new_state[n] = params[n] if hit is None else hit[1]
            return out, new_state
        finally:
            for n, p in listing.items():
                p._data = saved[n]

    return apply_fn, params


def _to_gluon(net: Net) -> Any:
    from unified.interop.common import mxnet

    mx = mxnet()

    twin = port(net, "mxnet")

    class _Box(mx.gluon.HybridBlock):  # type: ignore[name-defined]
        """A container of the exported tree (parameters and children only)."""

        def hybrid_forward(self, F: Any, *args: Any, **kwargs: Any) -> Any:
            raise TypeError("only the exported root block can be called")

    class UnifiedBlock(mx.gluon.HybridBlock):  # type: ignore[name-defined]
        """A unified net as a Gluon block (see :mod:`unified.interop.export`)."""

        def __init__(self) -> None:
            super().__init__(prefix="unified_")
            self._links: list[tuple[Any, Any]] = []
            boxes: dict[str, Any] = {"": self}
            for name, p in twin._listing().items():
                parent = ""
                for part in name.split(".")[:-1]:
                    path = f"{parent}.{part}" if parent else part
                    if path not in boxes:
                        box = _Box(prefix=path.replace(".", "_") + "_")
                        boxes[parent].register_child(box, part)
                        boxes[path] = box
                    parent = path
                leaf = name.split(".")[-1]
                gp = mx.gluon.Parameter(
                    name.replace(".", "_"),
                    shape=tuple(p.shape),
                    dtype=p.dtype,
                    grad_req="write" if p.trainable and not p.frozen else "null",
                    lr_mult=p.lr_mult,
                    wd_mult=p.wd_mult,
                )
                gp.initialize(mx.init.Zero(), ctx=mx.cpu())
                gp.set_data(mx.nd.array(p.numpy(), dtype=p.dtype))
                setattr(boxes[parent], leaf, gp)
                self._links.append((p, gp))

        def forward(self, *args: Any) -> Any:
            for p, gp in self._links:
                p._data = gp.data()
            with _modes.training(bool(mx.autograd.is_training())):
                return twin(*args)

        def hybrid_forward(self, F: Any, *args: Any, **kwargs: Any) -> Any:
            raise TypeError("UnifiedBlock runs imperatively")  # forward overrides

    return UnifiedBlock()
