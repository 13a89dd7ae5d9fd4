"""The sweep's figure: held-out accuracy against each searched parameter, and against training time."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter


def sweep_figure(rows: list[dict[str, Any]], params: list[tuple[str, bool]]) -> Figure:
    """One panel per parameter (name, log scale) plus one for seconds; `rows` hold "params", "accuracy" (a
    fraction), "seconds" and "state" (COMPLETE, PRUNED) per trial."""
    panels = len(params) + 1
    fig = Figure(figsize=(3.2 * panels, 3.3), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    done = [r for r in rows if r["state"] == "COMPLETE" and r["accuracy"] is not None]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["accuracy"] is not None]
    best = max(done, key=lambda r: r["accuracy"], default=None)
    for ax, (name, log) in zip(axes, params + [("seconds", False)]):
        for group, style in ((done, {"color": "tab:blue", "label": "finished"}),
                             (pruned, {"color": "tab:gray", "marker": "x", "label": "pruned (last epoch run)"})):
            xs = [r["seconds"] if name == "seconds" else r["params"].get(name) for r in group]
            pairs = [(x, r["accuracy"] * 100) for x, r in zip(xs, group) if isinstance(x, (int, float))]
            if pairs:
                ax.scatter(*zip(*pairs), s=18, **style)
        if best is not None:
            x = best["seconds"] if name == "seconds" else best["params"].get(name)
            if isinstance(x, (int, float)):
                ax.scatter([x], [best["accuracy"] * 100], s=60, facecolors="none", edgecolors="tab:red", label="best")
        if log:
            ax.set_xscale("log")
            # Four labelled ticks spread over the values tried: a range inside one decade would otherwise get
            # matplotlib's minor labels, which overlap.
            xs = [r["params"].get(name) for r in done + pruned]
            xs = [x for x in xs if isinstance(x, (int, float)) and x > 0]
            if xs and min(xs) < max(xs):
                ticks = np.geomspace(min(xs), max(xs), 4)
                ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
                ax.xaxis.set_minor_formatter(NullFormatter())
        elif name != "seconds" and all(isinstance(r["params"].get(name), int) for r in done + pruned):
            ax.xaxis.get_major_locator().set_params(integer=True)  # epochs 1, 2: no tick at 1.2
        ax.set_xlabel("training s" if name == "seconds" else name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy %")
    # Above the panels, where it covers no trial.
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="outside upper center", ncols=3, frameon=False)
    return fig
