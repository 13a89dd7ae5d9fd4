"""Preprocessing modes: each maps a decoded image of any size and mode to the model input, uint8 [28, 28].

    dataset  the seeds' way: 8-bit grayscale, plain resize to 28x28 (aspect ratio not kept). Right for images
             that already look like Fashion-MNIST (light article on black, centred, filling the frame).
    photo    fmnist.imaging.photo: find the article against its background, crop, negate a light background,
             longest edge to 28, sharpen, centre. Right for photos of an article.
    auto     (the default) `dataset` for an image that already looks like the dataset (28x28, or small, grayscale
             and dark at the border) or is too thin for `photo` (a line or a dot: fewer than 3 pixels across once
             shrunk to 256 on its longest edge), else `photo`. The result says which mode ran.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fmnist.errors import DataError, UsageError
from fmnist.imaging.decode import ImageSource, open_image, to_grayscale
from fmnist.imaging.photo import PhotoSteps, photo_steps, too_thin

SIZE = (28, 28)  # (width, height) of the model input, in pixels
MODES = ("auto", "photo", "dataset")
SMALL = 64  # an image whose longest edge is at most this many pixels may be a dataset-style thumbnail
DARK_BORDER = 40  # mean border grey level (0..255) below which a small grayscale image counts as dataset-style


@dataclass(frozen=True)
class Preprocessed:
    """The model input of one image and how it was made."""

    image: np.ndarray  # uint8 [28, 28]
    mode: str  # the mode that ran: "dataset" or "photo"
    steps: PhotoSteps | None = None  # the photo pipeline's intermediate results (photo mode only)


def resize_dataset(img: Image.Image) -> np.ndarray:
    """The seeds' preprocessing: grayscale, then stretch to 28x28 whatever the aspect ratio."""
    gray = to_grayscale(img)
    # Lanczos, antialiased: a large photo shrunk to 28x28 keeps its edges without aliasing (the seeds'
    # Keras load_img uses nearest, which drops most pixels). reducing_gap=3 first box-reduces by an integer
    # factor, making multi-megapixel inputs cheap with a result Pillow documents as indistinguishable.
    # A 28x28 input is returned unchanged, pixel for pixel.
    if gray.size != SIZE:
        gray = gray.resize(SIZE, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(gray, dtype=np.uint8).copy()


def looks_like_dataset(img: Image.Image) -> bool:
    """Whether `img` already looks like a Fashion-MNIST image: 28x28, or small, grayscale and dark at the border;
    never a cut-out (transparency shown: a dark article on it flattened onto the dataset's black vanished)."""
    if max(img.size) > SMALL or _see_through(img):
        return False
    if img.size == SIZE:
        return True
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    if img.mode not in ("L", "LA", "1", "I", "I;16", "F") and np.abs(rgb - rgb[..., :1]).max() > 8:
        return False  # colour
    gray = np.asarray(to_grayscale(img), dtype=np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(border.mean()) < DARK_BORDER


def _see_through(img: Image.Image) -> bool:
    """Whether some pixel of `img` is not fully opaque."""
    if not (img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info):
        return False
    return img.convert("RGBA").getchannel("A").getextrema()[0] < 255


def _photo(img: Image.Image) -> Preprocessed:
    steps = photo_steps(img)
    return Preprocessed(steps.image, "photo", steps)


def _dataset(img: Image.Image) -> Preprocessed:
    return Preprocessed(resize_dataset(img), "dataset")


def _auto(img: Image.Image) -> Preprocessed:
    return _dataset(img) if looks_like_dataset(img) or too_thin(img) else _photo(img)


PREPROCESSORS: dict[str, Callable[[Image.Image], Preprocessed]] = {"auto": _auto, "photo": _photo, "dataset": _dataset}


def check_mode(mode: str) -> str:
    """`mode` itself if it is a preprocessing mode, else a UsageError listing them."""
    if mode not in PREPROCESSORS:
        raise UsageError(f"unknown preprocessing mode {mode!r}; known modes: {', '.join(MODES)}")
    return mode


def preprocess(img: Image.Image, mode: str = "dataset") -> np.ndarray:
    """A decoded image of any size and mode as model input, uint8 [28, 28], by the named preprocessing mode."""
    return prepare(img, mode).image


def prepare(img: Image.Image, mode: str = "dataset") -> Preprocessed:
    """A decoded image of any size and mode as model input, with the mode that ran (and the photo steps)."""
    fn = PREPROCESSORS[check_mode(mode)]
    if img.width == 0 or img.height == 0:
        raise DataError(f"image has zero size ({img.width}x{img.height}); pass a non-empty image")
    return fn(img)


def load_image(source: ImageSource, mode: str = "dataset", name: str | None = None) -> np.ndarray:
    """An image file as model input: uint8 [28, 28], preprocessed with `mode`."""
    return prepare_file(source, mode, name).image


def prepare_file(source: ImageSource, mode: str = "dataset", name: str | None = None,
                 max_pixels: int | None = None) -> Preprocessed:
    """An image file decoded and preprocessed with `mode`; DataError naming the file when either fails (see
    open_image for `max_pixels`)."""
    check_mode(mode)
    img = open_image(source, name, max_pixels)
    try:
        return prepare(img, mode)
    except DataError as e:
        label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "image")
        raise DataError(f"image file {label}: {e}") from None


def load_images(paths: Sequence[str | os.PathLike], mode: str = "dataset") -> np.ndarray:
    """Several image files as one uint8 batch [N, 28, 28]."""
    images = [load_image(p, mode) for p in paths]
    return np.stack(images) if images else np.zeros((0, SIZE[1], SIZE[0]), np.uint8)
