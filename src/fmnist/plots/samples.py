"""A labelled grid of dataset images, as the seeds plot their first 9 or 25 training images."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders with Agg and touches no pyplot global state

from fmnist.fileio import atomic_path


def plot_sample_grid(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Draw images [N, 28, 28] in a ceil(sqrt(N))-wide grid, each under its class name; write `path` atomically."""
    n = len(images)
    if n == 0 or len(labels) != n:
        raise ValueError(f"need one label per image and at least one image, got {n} images and {len(labels)} labels")
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(1.4 * cols, 1.55 * rows + (0.4 if title else 0)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            ax.set_title(classes[int(labels[i])], fontsize=8)
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=100)
    return path
