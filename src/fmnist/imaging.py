"""Image files to model input: uint8 grayscale arrays [28, 28], the way the dataset's images look.

Every preprocessing mode maps a Pillow image of any size and mode to uint8 [28, 28]:
    dataset  the seeds' way: 8-bit grayscale, plain resize to 28x28 (aspect ratio not kept). Right for
             images that already look like Fashion-MNIST (light article on black, centred, filling the frame).
A later issue adds "photo" (Zalando's conversion for real-world photos: trim the background border, resize
the longest edge to 28, sharpen, pad to 28x28 centred, negate so the article is light on black) to
PREPROCESSORS; nothing else needs to change.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from struct import error as struct_error
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fmnist.errors import DataError, UsageError

SIZE = (28, 28)  # (width, height) of the model input, in pixels
ImageSource = Union[str, os.PathLike, bytes, BinaryIO]


def open_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Decode an image file (path, bytes or binary file) with its EXIF orientation applied; DataError if unreadable."""
    name = name or _source_name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise DataError(f"image file {name} does not exist; check the path")
        if not path.is_file():
            raise DataError(f"image file {name} is not a regular file; pass image files (PNG, JPEG, BMP, WebP, ...)")
        if path.stat().st_size == 0:
            raise DataError(f"image file {name} is empty; pass a PNG, JPEG, BMP or WebP image")
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; any image that large is refused here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                img.load()  # decode now, so truncated or corrupt data fails here with the file's name
                img = ImageOps.exif_transpose(img)  # a copy, independent of the file
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"image file {name} is too large to decode safely (over {Image.MAX_IMAGE_PIXELS} pixels, "
                        "a possible decompression bomb); downscale it first") from None
    except UnidentifiedImageError:
        raise DataError(f"image file {name} is corrupt or not an image Pillow can read; pass a PNG, JPEG, BMP or WebP image") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct_error) as e:
        raise DataError(f"image file {name} is corrupt or truncated ({e}); re-export or re-download it") from None
    if img.width == 0 or img.height == 0:
        raise DataError(f"image file {name} has zero size ({img.width}x{img.height}); pass a non-empty image")
    return img


def load_image(source: ImageSource, mode: str = "dataset", name: str | None = None) -> np.ndarray:
    """An image file as model input: uint8 [28, 28], preprocessed with `mode` (see PREPROCESSORS)."""
    return preprocess(open_image(source, name), mode)


def load_images(paths: Sequence[str | os.PathLike], mode: str = "dataset") -> np.ndarray:
    """Several image files as one uint8 batch [N, 28, 28]."""
    images = [load_image(p, mode) for p in paths]
    return np.stack(images) if images else np.zeros((0, SIZE[1], SIZE[0]), np.uint8)


def preprocess(img: Image.Image, mode: str = "dataset") -> np.ndarray:
    """A Pillow image of any size and mode as model input: uint8 [28, 28], by the named preprocessing mode."""
    try:
        fn = PREPROCESSORS[mode]
    except KeyError:
        raise UsageError(f"unknown preprocessing mode {mode!r}; known modes: {', '.join(PREPROCESSORS)}") from None
    if img.width == 0 or img.height == 0:
        raise DataError(f"image has zero size ({img.width}x{img.height}); pass a non-empty image")
    return fn(img)


def to_grayscale(img: Image.Image) -> Image.Image:
    """8-bit grayscale ("L") of any Pillow image.

    RGB uses Pillow's ITU-R 601-2 luma (as Keras' load_img(grayscale=True) does). Transparent pixels are
    composited onto black, because Fashion-MNIST articles are light on a black background. 16-bit, 32-bit
    integer and float images are stretched from their actual range to 0..255 (a 12-bit scan with values
    0..4095 would otherwise be clipped to white, or come out nearly black if divided by 65535).
    """
    if img.mode.startswith("I") or img.mode == "F":
        return _stretch_to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    if img.mode == "L":
        return img
    try:
        return img.convert("L")
    except ValueError:  # modes without a direct conversion to L (e.g. LAB, HSV) go through RGB
        return img.convert("RGB").convert("L")


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


# Preprocessing modes by name: each maps a Pillow image to uint8 [28, 28]. "photo" is to come (see top).
PREPROCESSORS: dict[str, Callable[[Image.Image], np.ndarray]] = {
    "dataset": resize_dataset,
}


def _stretch_to_8bit(img: Image.Image) -> Image.Image:
    """Map a 16/32-bit integer or float image linearly from [min(0, lowest), highest] to 0..255."""
    a = np.asarray(img, dtype=np.float32).copy()  # [H, W]; float32 halves the memory of float64
    a[~np.isfinite(a)] = 0.0
    lo, hi = min(float(a.min()), 0.0), float(a.max())
    if hi <= lo:
        return Image.new("L", img.size, 0)
    a -= lo
    a *= 255.0 / (hi - lo)
    return Image.fromarray(np.rint(a).clip(0, 255).astype(np.uint8))  # uint8 [H, W] -> mode L


def _source_name(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return str(getattr(source, "name", "<image data>"))
