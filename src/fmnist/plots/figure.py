"""Bare matplotlib Figures: they render with Agg when saved and touch no pyplot state or backend setting."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from fmnist.fileio import atomic_path


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100, tight: bool = True) -> Path:
    """Save `fig` atomically in the format of `path`'s suffix (PNG by default) and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi,
                    bbox_inches="tight" if tight else None)
    return path
