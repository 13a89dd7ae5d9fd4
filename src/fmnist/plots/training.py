"""Training figures: learning curves of a run, of every cross-validation fold, and fold scores as box plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fmnist.plots.figure import save_figure

TRAIN_COLOR = "tab:blue"
HELD_OUT_COLOR = "tab:orange"


def _series(history: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> np.ndarray:
    """One history column as floats; missing values become NaN so matplotlib leaves a gap."""
    return np.array([np.nan if row.get(key) is None else float(row[key]) * scale for row in history], dtype=float)


def _draw_curves(loss_ax: Axes, acc_ax: Axes, history: Sequence[dict[str, Any]], label: bool, held_out: str) -> None:
    """Plot train vs held-out loss on `loss_ax` and accuracy (%) on `acc_ax` for one history."""
    epochs = [int(row["epoch"]) for row in history]
    for key, ax, scale in (("loss", loss_ax, 1.0), ("acc", acc_ax, 100.0)):
        ax.plot(epochs, _series(history, f"train_{key}", scale), color=TRAIN_COLOR, marker=".", label="train" if label else None)
        val = _series(history, f"val_{key}", scale)
        if not np.isnan(val).all():
            ax.plot(epochs, val, color=HELD_OUT_COLOR, marker=".", label=held_out if label else None)


def _style(loss_ax: Axes, acc_ax: Axes) -> None:
    loss_ax.set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss")
    acc_ax.set(title="Classification accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)
        low, high = ax.get_xlim()
        if high - low < 2:  # one or two epochs: a tick at each and none beyond, not 0.96 ... 1.04
            ax.set_xlim(round(low) - 0.5, round(high) + 0.5)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()


def plot_learning_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike, title: str | None = None,
                         val_label: str = "validation") -> Path:
    """Loss and accuracy per epoch, train vs validation (legend `val_label`), side by side; validation omitted when absent."""
    if not history:
        raise ValueError("history has no epochs to plot")
    fig = Figure(figsize=(11, 4), layout="constrained")
    (loss_ax, acc_ax) = fig.subplots(1, 2)
    _draw_curves(loss_ax, acc_ax, history, label=True, held_out=val_label)
    _style(loss_ax, acc_ax)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_fold_curves(histories: Sequence[Sequence[dict[str, Any]]], path: str | os.PathLike, title: str | None = None) -> Path:
    """Every fold's loss and accuracy curves in one figure: train in blue, held-out fold in orange."""
    if not histories or not all(histories):
        raise ValueError("need at least one fold, each with at least one epoch")
    fig = Figure(figsize=(8, 9), layout="constrained")
    (loss_ax, acc_ax) = fig.subplots(2, 1)
    for i, history in enumerate(histories):
        # Label the first fold only: one legend entry per colour, not one per fold.
        _draw_curves(loss_ax, acc_ax, history, label=i == 0, held_out="held-out fold")
    _style(loss_ax, acc_ax)
    fig.suptitle(title or f"Learning curves of {len(histories)} folds")
    return save_figure(fig, path)


def plot_boxplot(scores: dict[str, Sequence[float]], path: str | os.PathLike, title: str | None = None) -> Path:
    """Box-and-whisker plot of fold accuracies (given as fractions 0..1, drawn in %) per recipe; the mean marked."""
    if not scores or any(len(v) == 0 for v in scores.values()):
        raise ValueError("every recipe needs at least one fold score")
    names = list(scores)
    data = [np.asarray(scores[n], dtype=float) * 100.0 for n in names]
    fig = Figure(figsize=(max(4.0, 1.8 * len(names) + 1.5), 5), layout="constrained")
    ax = fig.subplots()
    ax.boxplot(data, showmeans=True, meanprops={"marker": "^", "markerfacecolor": "tab:green", "markeredgecolor": "tab:green"})
    # Tick labels carry mean ± sd so the figure stands alone: the sample standard deviation (n - 1), the one the
    # console, cv.json and report.md give.
    ax.set_xticks(range(1, len(names) + 1),
                  [f"{n}\n{d.mean():.3f} ± {d.std(ddof=1) if len(d) > 1 else 0.0:.3f}" for n, d in zip(names, data)])
    ax.set(ylabel="fold accuracy (%)", title=title or "Cross-validation accuracy (▲ = mean; mean ± sd below)")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
