"""``unified inspect FILE`` and ``unified port SRC --to FRAMEWORK`` (SPEC 14).

``inspect`` lists the arrays of a checkpoint (``.safetensors``, a weights-only
PyTorch ``.pt``/``.pth``, a Gluon ``.params`` file): name, shape, dtype, and the
metadata a safetensors file carries. ``port`` rewrites such a file for another
framework under the same structural names (``SRC`` may also be the prefix of a
``HybridBlock.export`` pair, whose global names are kept): ``--to torch`` a
``.pt`` state_dict, ``--to mxnet`` a Gluon ``.params`` file (``load_parameters``
reads it), ``--to jax``/``numpy`` a ``.safetensors`` file; the values are copied
bit for bit.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from unified.interop.native import read_native

SUFFIX = {
    "torch": ".pt",
    "mxnet": ".params",
    "jax": ".safetensors",
    "numpy": ".safetensors",
}


def inspect(path: str) -> list[str]:
    """The lines ``unified inspect`` prints."""
    arrays, what = read_native(path)
    lines = [f"{path}: {what}, {len(arrays)} arrays"]
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, "np") as f:
            for k, v in (f.metadata() or {}).items():
                lines.append(f"  metadata {k} = {v[:120]}")
    width = max((len(n) for n in arrays), default=0)
    total = 0
    for name, a in arrays.items():
        total += a.size
        lines.append(f"  {name:{width}s}  {str(tuple(a.shape)):18s} {a.dtype}")
    lines.append(f"  {total} values")
    return lines


def port_file(src: str, framework: str, out: str | None) -> str:
    """Write ``src``'s arrays for ``framework``; return the path written."""
    arrays, _ = read_native(src)
    if out is None:
        stem = os.path.splitext(src)[0]
        out = stem + ("-ported" if src.endswith(SUFFIX[framework]) else "")
        out += SUFFIX[framework]
    if framework == "torch":
        import torch

        torch.save({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, out)
    elif framework == "mxnet":
        from unified.interop.common import mxnet

        mx = mxnet()

        mx.nd.save(out, {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})
    else:
        from safetensors.numpy import save_file

        meta: dict[str, Any] = {"ported_from": os.path.basename(src)}
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, out, meta)
    return out
