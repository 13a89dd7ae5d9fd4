"""Photo figures: a montage of photos beside the 28x28 view the model saw, and one photo's preprocessing sheet."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fmnist.fileio import atomic_path
from fmnist.plots.evaluation import CORRECT_RGB, WRONG_RGB, fit_font

UNSURE_RGB = (255, 200, 0)  # the mark of a prediction below the confidence threshold


def _fit(img: np.ndarray, side: int) -> Image.Image:
    """An RGB (or gray) uint8 image scaled to fit side x side, centred on black."""
    tile = Image.fromarray(img).convert("RGB")
    scale = side / max(tile.size)
    tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (side, side))
    canvas.paste(tile, ((side - tile.width) // 2, (side - tile.height) // 2))
    return canvas


def _save(img: Image.Image, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def plot_photo_montage(photos: Sequence[np.ndarray], views: np.ndarray, labels: Sequence[int], preds: Sequence[int],
                       confident: Sequence[bool], classes: Sequence[str], path: str | os.PathLike,
                       side: int = 96, columns: int = 4) -> Path:
    """One tile per photo: the photo, the 28x28 view upscaled, and the predicted class in green (right) or red
    (wrong, followed by "not" and the true class), with a yellow "?" when the prediction was not confident."""
    n = len(photos)
    if n == 0 or len(views) != n or len(labels) != n or len(preds) != n or len(confident) != n:
        raise ValueError("need one view, label, prediction and confidence flag per photo, and at least one photo")
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    tile_w, tile_h = 2 * side, side + side // 4
    sheet = Image.new("RGB", (columns * tile_w, rows * tile_h))
    draw = ImageDraw.Draw(sheet)
    names = [f"{classes[int(p)]}{'' if c else ' ?'}{'' if int(p) == int(t) else f' (not {classes[int(t)]})'}"
             for p, c, t in zip(preds, confident, labels)]
    font = fit_font(draw, names, tile_w - 6, tile_w // 2)
    for i in range(n):
        x, y = (i % columns) * tile_w, (i // columns) * tile_h
        sheet.paste(_fit(photos[i], side), (x, y))
        sheet.paste(_fit(views[i], side), (x + side, y))
        color = CORRECT_RGB if int(preds[i]) == int(labels[i]) else WRONG_RGB
        draw.text((x + 3, y + side + 2), names[i], fill=color if confident[i] else UNSURE_RGB, font=font)
    return _save(sheet, path)


def plot_preprocessing(original: Image.Image, working: np.ndarray | None, mask: np.ndarray | None,
                       box: tuple[int, int, int, int] | None, view: np.ndarray, path: str | os.PathLike,
                       side: int = 224) -> Path:
    """Side by side: the original, the article mask with its crop box (photo mode), the 28x28 input upscaled."""
    panels = [_fit(np.asarray(original.convert("RGB")), side)]
    if working is not None and mask is not None and box is not None:
        shown = (working * 255).astype(np.uint8).copy()
        shown[mask] = (0.5 * shown[mask] + 0.5 * np.array([255, 0, 160])).astype(np.uint8)  # the mask tinted magenta
        overlay = Image.fromarray(shown)
        top, left, bottom, right = box
        ImageDraw.Draw(overlay).rectangle((left, top, right - 1, bottom - 1), outline=(0, 255, 0), width=max(1, side // 112))
        panels.append(_fit(np.asarray(overlay), side))
    panels.append(Image.fromarray(view).resize((side, side), Image.Resampling.NEAREST).convert("RGB"))
    sheet = Image.new("RGB", (side * len(panels) + 8 * (len(panels) - 1), side), (40, 40, 40))
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * (side + 8), 0))
    return _save(sheet, path)
