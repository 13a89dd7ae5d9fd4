"""The sweep's figure: held-out accuracy against each searched parameter, and against training time."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter


def sweep_figure(rows: list[dict[str, Any]], params: list[tuple[str, bool]],
                 choices: dict[str, tuple[Any, ...]] | None = None) -> Figure:
    """One panel per parameter (name, log scale) plus one for seconds; `rows` hold "params", "accuracy" (a
    fraction), "seconds" and "state" (COMPLETE, PRUNED) per trial. A parameter with `choices` of which one is not
    a number is drawn as categories, one tick per choice in the order given."""
    choices = choices or {}
    panels = len(params) + 1
    fig = Figure(figsize=(3.2 * panels, 3.3), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    done = [r for r in rows if r["state"] == "COMPLETE" and r["accuracy"] is not None]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["accuracy"] is not None]
    best = max(done, key=lambda r: r["accuracy"], default=None)
    for ax, (name, log) in zip(axes, params + [("seconds", False)]):
        # Choices that are not all numbers (an optimizer's name, true/false, null) are categories, one tick each,
        # labelled as --set takes them.
        given = choices.get(name, ())
        categories = [_label(c) for c in given] if not all(map(_number, given)) else []
        if categories:
            ax.set_xticks(range(len(categories)), categories)
            ax.set_xlim(-0.5, len(categories) - 0.5)

        def position(x: Any) -> float | None:
            if categories:
                return categories.index(_label(x)) if _label(x) in categories else None
            return x if _number(x) else None

        for group, style in ((done, {"color": "tab:blue", "label": "finished"}),
                             (pruned, {"color": "tab:gray", "marker": "x", "label": "pruned (last epoch run)"})):
            xs = [position(r["seconds"] if name == "seconds" else r["params"].get(name)) for r in group]
            pairs = [(x, r["accuracy"] * 100) for x, r in zip(xs, group) if x is not None]
            if pairs:
                ax.scatter(*zip(*pairs), s=18, **style)
        if best is not None:
            x = position(best["seconds"] if name == "seconds" else best["params"].get(name))
            if x is not None:
                ax.scatter([x], [best["accuracy"] * 100], s=60, facecolors="none", edgecolors="tab:red", label="best")
        if log and not categories:
            ax.set_xscale("log")
            # Four labelled ticks spread over the values tried: a range inside one decade would otherwise get
            # matplotlib's minor labels, which overlap.
            xs = [r["params"].get(name) for r in done + pruned]
            xs = [x for x in xs if isinstance(x, (int, float)) and x > 0]
            if xs and min(xs) < max(xs):
                ticks = np.geomspace(min(xs), max(xs), 4)
                ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
                ax.xaxis.set_minor_formatter(NullFormatter())
        elif not categories and name != "seconds" and all(type(r["params"].get(name)) is int for r in done + pruned):
            ax.xaxis.get_major_locator().set_params(integer=True)  # epochs 1, 2: no tick at 1.2
        ax.set_xlabel("training s" if name == "seconds" else name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy %")
    # Above the panels, where it covers no trial: each kind of marker once, from whichever panel drew it.
    legend: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), fontsize=7, loc="outside upper center", ncols=3, frameon=False)
    return fig


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _label(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x)
