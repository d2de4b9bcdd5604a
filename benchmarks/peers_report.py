"""The table and the plot of ``peers.py``'s results."""

from __future__ import annotations

import statistics
from typing import Any

from harness import CHECK_STEPS

Result = dict[str, Any]


def reference(label: str, peers: Result) -> str | None:
    """The native peer ``label`` is compared with: the same framework's
    (``keras-jax-*`` -> ``native-jax``), else ``native-torch`` (the NumPy backend
    on the CNNs and the LSTM)."""
    parts = label.split("-")
    group = parts[1] if parts[0] == "keras" else parts[-1]
    for native in (f"native-{group}", "native-torch"):
        if native in peers:
            return native
    return None


def ratios(peers: Result, label: str, ref: str) -> list[float]:
    """Per-round ratios of ``label``'s time to ``ref``'s."""
    return [a / b for a, b in zip(peers[label]["times"], peers[ref]["times"])]


RSS_FLOOR = 1024 * 1024
"""Below this, an ``rss`` reading is noise (page granularity, reused blocks): no
ratio is shown."""


def _ratio(value: float | None, ref: float | None, floor: float = 0.0) -> str:
    if not value or not ref or min(value, ref) < max(floor, 1e-12):
        return "-"
    return f"{value / ref:.2f}"


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.0f}"


def rows(model: str, data: Result) -> list[str]:
    peers = {k: v for k, v in data["peers"].items() if not k.startswith("matmul")}
    out = [
        f"### {model}: {data['describe']}",
        "",
        "| peer | ms / step | vs native | range | first call ms | vs native "
        f"| peak KiB | vs native | counter | loss after {CHECK_STEPS} steps |",
        "| --- | ---: | ---: | :-: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for label, p in peers.items():
        ref = reference(label, peers)
        median = statistics.median(p["times"])
        ratio = spread = "-"
        if ref is not None:
            rs = ratios(peers, label, ref)
            ratio = f"{statistics.median(rs):.2f}"
            spread = f"{min(rs):.2f}-{max(rs):.2f}"
        r = peers.get(ref or "", {})
        floor = RSS_FLOOR if "rss" in (p["counter"], r.get("counter")) else 0.0
        first = _ratio(p["first_call"], r.get("first_call"))
        counter = p["counter"]
        if r and r["counter"] != counter:
            counter += f" (native: {r['counter']})"
        out.append(
            f"| {label} | {median * 1e3:.3f} | {ratio} | {spread} "
            f"| {p['first_call'] * 1e3:.1f} | {first} "
            f"| {_kib(p['memory'])} | {_ratio(p['memory'], r.get('memory'), floor)} "
            f"| {counter} | {p['losses'][-1]:.6f} |"
        )
    return out


def roofline(results: Result) -> list[str]:
    data = results["models"].get("large")
    flops = results["settings"].get("large_flops")
    if not data or not flops:
        return []
    n = results["settings"]["matmul"]
    mats = {
        k.split("-")[1]: 2.0 * n**3 / statistics.median(v["times"]) / 1e9
        for k, v in data["peers"].items()
        if k.startswith("matmul")
    }
    if not mats:
        return []
    best = max(mats.values())
    out = [
        "### large MLP against the float32 matmul roofline",
        "",
        f"Plain {n} x {n} x {n} float32 matmul, same run and threads: "
        + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in mats.items())
        + f". The step's matmuls are {flops / 1e6:.1f} MFLOP (forward, weight "
        "gradients, input gradients but the first layer's).",
        "",
        "| peer | GFLOP/s | of its framework's matmul | of the fastest matmul |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, p in data["peers"].items():
        if label.startswith("matmul"):
            continue
        achieved = flops / statistics.median(p["times"]) / 1e9
        parts = label.split("-")
        own = mats.get(
            parts[1] if parts[0] == "keras" else parts[-1], mats.get("numpy")
        )
        share = "-" if own is None else f"{achieved / own:.0%}"
        out.append(f"| {label} | {achieved:.1f} | {share} | {achieved / best:.0%} |")
    return out


def table(results: Result) -> str:
    """The Markdown report."""
    s = results["settings"]
    lines = [
        "# unified, native code and Keras 3: one training step",
        "",
        f"- date: {s['date']}; {s['machine']}; run took {s['seconds']:.0f} s",
        f"- command: `{s['command']}`",
        "- versions: " + ", ".join(v for v in results["groups"].values() if v),
        f"- {s['repeats']} interleaved rounds, runs of about {s['target']} s; "
        f"OpenMP/MKL/OpenBLAS threads {s['threads'] or 'framework defaults'}",
        "- ms / step: median over rounds; vs native: median of per-round ratios to the "
        "native peer of the same framework (range: lowest-highest); first call: "
        "the first step incl. trace and compile; peak KiB: memory a step allocates "
        "above what existed before it",
        "",
    ]
    for model, data in results["models"].items():
        lines += rows(model, data) + [""]
    lines += roofline(results)
    if results["notes"]:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"


def plot(results: Result, path: str) -> None:
    """Horizontal bars of each peer's time ratio to native (log scale), one panel
    per model, the per-round range as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["models"])
    cols = min(3, len(models))
    rows = -(-len(models) // cols)
    fig, grid = plt.subplots(
        rows, cols, figsize=(4.0 * cols, 3.4 * rows + 0.6), squeeze=False
    )
    axes = list(grid.flat)
    for ax in axes[len(models) :]:
        ax.axis("off")
    colors = {"unified": "tab:blue", "native": "tab:gray", "keras": "tab:orange"}
    for ax, model in zip(axes, models):
        peers = {
            k: v for k, v in results["models"][model]["peers"].items()
            if not k.startswith("matmul")
        }  # fmt: skip
        labels, mids, lows, highs = [], [], [], []
        for label in peers:
            ref = reference(label, peers)
            if ref is None or ref == label:  # native: 1 by definition
                continue
            rs = ratios(peers, label, ref)
            mid = statistics.median(rs)
            labels.append(label)
            mids.append(mid)
            lows.append(mid - min(rs))
            highs.append(max(rs) - mid)
        y = range(len(labels))
        ax.barh(
            y, mids, xerr=[lows, highs],
            color=[colors[label.split("-")[0]] for label in labels],
        )  # fmt: skip
        names = [f"{label} {mid:.2f}" for label, mid in zip(labels, mids)]
        ax.set_yticks(list(y), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        lo = min([m - d for m, d in zip(mids, lows)] + [1.0])
        ticks = [
            t
            for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32)
            if lo / 2 <= t <= 2 * max(mids + [1])
        ]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=7)
        ax.minorticks_off()
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("time / native (log)", fontsize=8)
    fig.suptitle(
        "one training step: time / native code of the same framework "
        f"({results['settings']['date']})\nblue: unified, orange: Keras 3; bar: "
        "median of per-round ratios, line: their range",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
