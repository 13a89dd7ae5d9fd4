"""Evaluation figures: confusion matrix, the seeds' montage of predictions, and the worst misclassifications."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fmnist.fileio import atomic_path
from matplotlib.figure import Figure

from fmnist.plots.figure import save_figure

CORRECT_RGB = (0, 255, 0)
WRONG_RGB = (255, 0, 0)


def plot_confusion_matrix(cm: Any, classes: Sequence[str], path: str | os.PathLike, normalize: bool = False) -> Path:
    """Annotated heatmap of a [K, K] confusion matrix (rows true, columns predicted); `normalize` shows row fractions."""
    cm = np.asarray(cm)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix has shape {cm.shape}, expected ({k}, {k}) for {k} classes")
    if normalize:
        # Row fractions = per-class recall; an empty row (class absent) stays 0 instead of NaN.
        values = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    else:
        values = cm
    side = max(5.0, 0.75 * k + 2.0)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8)
    threshold = values.max() / 2 if values.size else 0
    for i in range(k):
        for j in range(k):
            v = values[i, j]
            ax.text(j, i, f"{v:.2f}" if normalize else str(int(v)), ha="center", va="center", fontsize=8,
                    color="white" if v > threshold else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix" + (" (row-normalized)" if normalize else ""))
    return save_figure(fig, path)


def _uint8_images(images: Any) -> np.ndarray:
    """Images as a uint8 [N, H, W] array; floats in [0, 1] would silently draw black, so they are refused."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
    return images


def _label_font(text_px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at `text_px` pixels (FreeType), or its fixed bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=text_px)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def fit_font(draw: ImageDraw.ImageDraw, texts: Sequence[str], width: int, size: int) -> Any:
    """The largest default font (at most size/7 px) in which every text fits within `width` pixels."""
    for px in range(max(8, size // 7), 7, -1):
        font = _label_font(px)
        if all(draw.textlength(t, font=font) <= width for t in texts):
            return font
    return _label_font(8)


def plot_montage(images: Any, labels: Any, preds: Any, classes: Sequence[str], path: str | os.PathLike,
                 size: int = 96, grid: int = 4) -> Path:
    """grid x grid tiles of size px: each image upscaled, its predicted class drawn in green (right) or red (wrong)."""
    images = _uint8_images(images)
    labels, preds = np.asarray(labels).reshape(-1), np.asarray(preds).reshape(-1)
    n = len(images)
    if not 0 < n <= grid * grid or len(labels) != n or len(preds) != n:
        raise ValueError(f"need 1..{grid * grid} images with N labels and N predictions; got images {images.shape}, "
                         f"{len(labels)} labels, {len(preds)} predictions")
    montage = Image.new("RGB", (grid * size, grid * size))
    draw = ImageDraw.Draw(montage)
    names = [str(classes[int(p)]) for p in preds]
    font = fit_font(draw, names, size - 6, size)
    for idx in range(n):
        # Bilinear upscaling, as the seed's cv2.INTER_LINEAR; grayscale becomes RGB so the label can be coloured.
        tile = Image.fromarray(images[idx]).resize((size, size), Image.Resampling.BILINEAR).convert("RGB")
        x, y = (idx % grid) * size, (idx // grid) * size
        montage.paste(tile, (x, y))
        color = CORRECT_RGB if int(preds[idx]) == int(labels[idx]) else WRONG_RGB
        # A black box behind the text keeps it readable over light garments.
        left, top, right, bottom = draw.textbbox((x + 3, y + 3), names[idx], font=font)
        draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
        draw.text((x + 3, y + 3), names[idx], fill=color, font=font)
    path = Path(path)
    with atomic_path(path) as tmp:
        montage.save(tmp, format="PNG")
    return path


def plot_misclassified(images: Any, labels: Any, preds: Any, losses: Any, classes: Sequence[str],
                       path: str | os.PathLike, n: int = 16) -> Path:
    """The `n` misclassified images with the highest loss, each titled "true → pred (loss)"."""
    images = _uint8_images(images)
    labels, preds = np.asarray(labels).reshape(-1), np.asarray(preds).reshape(-1)
    losses = np.asarray(losses, dtype=float).reshape(-1)
    if not len(images) == len(labels) == len(preds) == len(losses):
        raise ValueError("images, labels, preds and losses must have the same length")
    wrong = np.flatnonzero(labels != preds)
    worst = wrong[np.argsort(-losses[wrong], kind="stable")][:n]
    cols = max(1, math.ceil(math.sqrt(max(len(worst), 1))))
    rows = max(1, math.ceil(len(worst) / cols))
    fig = Figure(figsize=(2.2 * cols, 2.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, worst):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{classes[int(labels[i])]} → {classes[int(preds[i])]} ({losses[i]:.2f})", fontsize=8)
    if len(worst) == 0:
        axes[0, 0].text(0.5, 0.5, "no misclassified examples", ha="center", va="center")
    fig.suptitle(f"{len(worst)} misclassified with the highest loss (true → predicted (loss))", fontsize=10)
    return save_figure(fig, path)
