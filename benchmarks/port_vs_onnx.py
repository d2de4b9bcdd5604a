"""Porting a Gluon model to PyTorch: ``unified`` against the ONNX path (issue 12).

For ResNet-50 v1 and MobileNet v2 (1.0) of ``mxnet.gluon.model_zoo.vision``, built
with random Xavier weights (no download) at 224x224, it times:

* ``unified``: ``U.from_gluon(block)`` on the torch backend plus
  ``net.to_native("torch")`` (median of ``--repeats`` runs);
* ``bytes``: a plain copy of the parameter bytes into torch tensors (every
  ``p.data().asnumpy()`` into ``torch.from_numpy(...).clone()``), the floor of any
  converter;
* ``graph``: Gluon producing its own symbol graph (``block(mx.sym.var("data"))``),
  the graph walk any converter of a custom ``hybrid_forward`` needs;
* ``onnx``: ``HybridBlock.export`` + ``mx.onnx.export_model`` + ``onnx2torch.convert``
  (once: it is slow), when ``onnx<1.14`` and ``onnx2torch`` are installed (the
  ``bench-port`` extra).

Targets (issue 12): ``unified`` under 2x (bytes + graph), at least 10x faster than
the ONNX path. Then inference of the ported ResNet-50 on torch (eval mode,
``torch.no_grad``, batch ``--batch``) against the same network written natively
in torch below (``GluonResNet50V1``, weights copied over by order), interleaved
repeats, target within 1.10x. One thread (``--threads``) for both sides.

Usage: ``python benchmarks/port_vs_onnx.py [--repeats 5] [--no-onnx]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def gluon_block(name: str) -> Any:
    import unified_mxnet

    mx = unified_mxnet.mx
    from mxnet.gluon.model_zoo import vision

    mx.random.seed(0)
    block = vision.get_model(name, classes=1000, pretrained=False)
    block.initialize(mx.init.Xavier())
    block(mx.nd.zeros((1, 3, 224, 224)))
    return block


def time_unified(block: Any) -> tuple[float, Any]:
    import unified as U

    t = time.perf_counter()
    with U.use_backend("torch"):
        net = U.from_gluon(block)
        module = net.to_native("torch")
    return time.perf_counter() - t, module


def time_bytes(block: Any) -> float:
    import torch

    t = time.perf_counter()
    out = {
        k: torch.from_numpy(p.data().asnumpy()).clone()
        for k, p in block._collect_params_with_prefix().items()
    }
    assert out
    return time.perf_counter() - t


def time_graph(block: Any) -> float:
    import unified_mxnet

    mx = unified_mxnet.mx
    t = time.perf_counter()
    sym = block(mx.sym.var("data"))
    sym.tojson()
    return time.perf_counter() - t


def _import_onnx2torch() -> Any:
    """``onnx2torch``; it imports torchvision only for its NMS converter, and no
    torchvision wheel matches the CPU build of torch 2.13 here, so an empty
    stand-in module takes its place when torchvision cannot be imported."""
    import sys
    import types

    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or built for another torch
        for key in [k for k in sys.modules if k.startswith("torchvision")]:
            del sys.modules[key]

        def missing(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)

            def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError(f"torchvision.ops.{name} is not installed")

            return unavailable

        stub = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")
        ops.__getattr__ = missing  # type: ignore[method-assign]
        stub.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"] = stub
        sys.modules["torchvision.ops"] = ops
    import onnx2torch

    return onnx2torch


def time_onnx(name: str, block: Any) -> float:
    import unified_mxnet

    onnx2torch = _import_onnx2torch()

    mx = unified_mxnet.mx
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "net")
        t = time.perf_counter()
        block.hybridize()
        block(mx.nd.zeros((1, 3, 224, 224)))
        block.export(prefix)
        path = str(Path(tmp) / "net.onnx")
        mx.onnx.export_model(
            prefix + "-symbol.json",
            prefix + "-0000.params",
            [(1, 3, 224, 224)],
            np.float32,
            path,
        )
        module = onnx2torch.convert(path)
        elapsed = time.perf_counter() - t
    assert module is not None
    return elapsed


# ----------------------------------------------------------------------------------
# ResNet-50 v1 as Gluon's model zoo defines it, written natively in torch
# ----------------------------------------------------------------------------------


def native_resnet50_v1() -> Any:
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        """Gluon's ``BottleneckV1``: the stride sits on the first 1x1 conv; the
        body's convs keep Gluon's default bias, the shortcut's has none."""

        def __init__(self, channels: int, stride: int, downsample: bool, cin: int):
            super().__init__()
            mid = channels // 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, mid, 1, stride),
                nn.BatchNorm2d(mid),
                nn.ReLU(),
                nn.Conv2d(mid, mid, 3, 1, 1, bias=False),
                nn.BatchNorm2d(mid),
                nn.ReLU(),
                nn.Conv2d(mid, channels, 1, 1),
                nn.BatchNorm2d(channels),
            )
            self.downsample = (
                nn.Sequential(
                    nn.Conv2d(cin, channels, 1, stride, bias=False),
                    nn.BatchNorm2d(channels),
                )
                if downsample
                else None
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            residual = x if self.downsample is None else self.downsample(x)
            return torch.relu(self.body(x) + residual)

    layers = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for count, channels, stride in (
        (3, 256, 1),
        (4, 512, 2),
        (6, 1024, 2),
        (3, 2048, 2),
    ):
        stage = [Bottleneck(channels, stride, channels != cin, cin)]
        stage += [Bottleneck(channels, 1, False, channels) for _ in range(count - 1)]
        layers.append(nn.Sequential(*stage))
        cin = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def copy_by_order(src: Any, dst: Any) -> None:
    """Copy parameters and running statistics in registration order (shapes
    checked); BatchNorm's ``num_batches_tracked`` is skipped."""
    import torch

    def slots(m: Any) -> list[Any]:
        return [
            v
            for k, v in m.state_dict().items()
            if not k.endswith("num_batches_tracked")
        ]

    a, b = slots(src), slots(dst)
    assert len(a) == len(b), (len(a), len(b))
    with torch.no_grad():
        for x, y in zip(a, b):
            assert tuple(x.shape) == tuple(y.shape), (x.shape, y.shape)
            y.copy_(x)


def time_inference(
    ported: Any, native: Any, batch: int, repeats: int
) -> dict[str, Any]:
    import torch

    x = torch.from_numpy(
        np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype("float32")
    )
    ported.eval()
    native.eval()
    with torch.no_grad():
        want = native(x)
        diff = float((ported(x) - want).abs().max())
        scale = float(want.abs().max())
        times: dict[str, list[float]] = {"ported": [], "native": []}
        for i in range(repeats):
            order = [("ported", ported), ("native", native)]
            for label, m in order if i % 2 == 0 else order[::-1]:
                t = time.perf_counter()
                m(x)
                times[label].append(time.perf_counter() - t)
    ratios = [p / n for p, n in zip(times["ported"], times["native"])]
    return {
        "ported": statistics.median(times["ported"]),
        "native": statistics.median(times["native"]),
        "ratio": statistics.median(ratios),
        "range": (min(ratios), max(ratios)),
        "max_diff": diff,
        "scale": scale,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-onnx", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    onnx = not args.no_onnx and all(
        importlib.util.find_spec(m) for m in ("onnx", "onnx2torch")
    )
    rows = []
    ported50 = None
    for name in ("resnet50_v1", "mobilenetv2_1.0"):
        block = gluon_block(name)
        time_unified(block)  # first call: imports and caches
        ours, module = [], None
        for _ in range(args.repeats):
            t, module = time_unified(block)
            ours.append(t)
        raw = statistics.median(time_bytes(block) for _ in range(args.repeats))
        graph = statistics.median(time_graph(block) for _ in range(args.repeats))
        onnx_t = time_onnx(name, block) if onnx else float("nan")
        rows.append((name, statistics.median(ours), raw, graph, onnx_t))
        if name == "resnet50_v1":
            ported50 = module
    head = "| model | unified | bytes | graph | unified / (bytes + graph) "
    print(head + "| ONNX path | ONNX / unified |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, ours_t, raw, graph, onnx_t in rows:
        ms = [f"{v * 1e3:.0f} ms" for v in (ours_t, raw, graph)]
        print(
            f"| {name} | {' | '.join(ms)} | {ours_t / (raw + graph):.2f} "
            f"| {onnx_t:.1f} s | {onnx_t / ours_t:.0f}x |"
        )
    native = native_resnet50_v1()
    copy_by_order(ported50, native)
    inf = time_inference(ported50, native, args.batch, max(args.repeats, 7))
    lo, hi = inf["range"]
    print(
        f"\nResNet-50 v1 inference, batch {args.batch}, {args.threads} thread(s): "
        f"ported {inf['ported'] * 1e3:.0f} ms, native {inf['native'] * 1e3:.0f} ms, "
        f"ratio {inf['ratio']:.3f} (range {lo:.3f}-{hi:.3f}); "
        f"max |diff| of the logits {inf['max_diff']:.1e} (scale {inf['scale']:.1e})"
    )


if __name__ == "__main__":
    main()
