"""Image files to Pillow images: decoded safely (size limits, truncation, EXIF orientation), and to 8-bit grayscale."""

from __future__ import annotations

import functools
import io
import os
import warnings
from pathlib import Path
from struct import error as struct_error
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fmnist.errors import DataError, TooLargeError

ImageSource = Union[str, os.PathLike, bytes, BinaryIO]

# The raster formats decoded: Pillow tries only these (a phone's MPO comes through JPEG). Its other plugins stay
# off, EPS above all (it hands the file to Ghostscript, which an upload to the web service must never reach), and
# the rarer decoders with them.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "GIF", "TIFF", "ICO", "PPM", "JPEG2000", "TGA", "AVIF")
# How messages name them (DIB is BMP's headerless kind).
FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF", "ICO": "ICO",
                "PPM": "PNM", "JPEG2000": "JPEG 2000", "TGA": "TGA", "AVIF": "AVIF"}


def open_image(source: ImageSource, name: str | None = None, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file (path, bytes or binary file) with its EXIF orientation applied; DataError if unreadable.

    `max_pixels` refuses (TooLargeError) an image with more pixels than that, from its header, before decoding;
    Pillow's own decompression-bomb limit applies in any case.
    """
    name = name or _source_name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise DataError(f"image file {name} does not exist; check the path")
        if not path.is_file():
            raise DataError(f"image file {name} is not a regular file; pass image files (PNG, JPEG, BMP, WebP, ...)")
        if path.stat().st_size == 0:
            raise DataError(f"image file {name} is empty; pass a {formats_named()} image")
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; any image that large is refused here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=readable_formats()) as img:
                if max_pixels is not None and img.width * img.height > max_pixels:
                    raise TooLargeError(f"image {name} is {img.width}x{img.height} pixels, over the limit of "
                                        f"{max_pixels:,}; downscale it first")
                img.load()  # decode now, so truncated or corrupt data fails here with the file's name
                img = _oriented(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow refuses these at open, before the header's size reaches the check above: name the lower limit.
        limit = min(n for n in (max_pixels, Image.MAX_IMAGE_PIXELS) if n)
        raise TooLargeError(f"image file {name} is too large: over the limit of {limit:,} pixels that decode safely; "
                            "downscale it first") from None
    except UnidentifiedImageError:
        if _is_svg(source, name):
            raise DataError(f"image file {name} is an SVG drawing, which is vector graphics, not pixels; convert it to "
                            "PNG first (e.g. `rsvg-convert -o drawing.png drawing.svg`)") from None
        raise DataError(f"image file {name} is corrupt or not an image in a format read here; pass a "
                        f"{formats_named()} image") from None
    # TypeError: Pillow's TIFF reader on a strip offset that is not a whole number (found by benchmarks.fuzz).
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, struct_error) as e:
        raise DataError(f"image file {name} is corrupt or truncated ({e}); re-export or re-download it") from None
    if img.width == 0 or img.height == 0:
        raise DataError(f"image file {name} has zero size ({img.width}x{img.height}); pass a non-empty image")
    return img


# Where a PNG may carry an orientation (Pillow's getexif reads these); one without them needs no transposing.
PNG_EXIF_KEYS = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


@functools.cache
def readable_formats() -> tuple[str, ...]:
    """FORMATS that this Pillow has a reader for (AVIF came with Pillow 11.2; an older one lacks it)."""
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def formats_named() -> str:
    """The formats this Pillow decodes, as messages name them: "PNG, JPEG, ... or AVIF"."""
    names = [FORMAT_NAMES[f] for f in readable_formats() if f in FORMAT_NAMES]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _oriented(img: Image.Image) -> Image.Image:
    """The decoded image turned by its EXIF orientation, as a copy independent of the file. A PNG without EXIF or
    XMP skips Pillow's EXIF parsing (a third of the decode time of a 28x28 PNG, where the web service decodes
    thousands a second)."""
    if img.format == "PNG" and not any(key in img.info for key in PNG_EXIF_KEYS):
        return img.copy()
    return ImageOps.exif_transpose(img)


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


def _stretch_to_8bit(img: Image.Image) -> Image.Image:
    """Map a 16/32-bit integer or float image linearly from [min(0, lowest), highest] to 0..255."""
    a = np.asarray(img, dtype=np.float32).copy()  # [H, W]; float32 halves the memory of float64
    a[~np.isfinite(a)] = 0.0
    lo, hi = min(float(a.min()), 0.0), float(a.max())
    if hi <= lo:
        return Image.new("L", img.size, 0)
    # In float64: a float32 range near its limits, or a denormal one, overflows a float32 product.
    scaled = (a.astype(np.float64) - lo) / (hi - lo) * 255.0
    return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8))  # uint8 [H, W] -> mode L


def _is_svg(source: ImageSource, name: str) -> bool:
    """Whether an unreadable image is an SVG file: by its name, or by an <svg tag near its start."""
    if name.lower().endswith((".svg", ".svgz")):
        return True
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                head = f.read(4096)
        else:
            source.seek(0)
            head = source.read(4096)
    except (OSError, AttributeError, ValueError):
        return False
    return b"<svg" in head.lower()


def _source_name(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return str(getattr(source, "name", "<image data>"))


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".bmp", ".dib", ".webp", ".gif", ".tif", ".tiff",
                  ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".jp2", ".j2k", ".jpx", ".tga", ".avif")


def image_files(paths: list[str | os.PathLike] | list[Path]) -> list[Path]:
    """`paths` with each directory replaced by the image files in it (by suffix, sorted; hidden files skipped)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        else:
            files.append(path)
    return files


def required_image_files(paths: list[str | os.PathLike] | list[Path]) -> list[Path]:
    """`image_files(paths)`, or a DataError saying where none was found (`predict`, `preprocess`). A directory
    among them that holds none is for the caller to report (`empty_folders`) while the rest are used."""
    files = image_files(paths)
    if not files:
        raise DataError(_no_images(list(map(Path, paths))))
    return files


def empty_folders(paths: list[str | os.PathLike] | list[Path]) -> list[tuple[str, str]]:
    """(directory, why) for each directory among `paths` that holds no image files, so it is named, not passed
    over in silence."""
    return [(str(p), _no_images([p])) for p in map(Path, paths) if p.is_dir() and not image_files([p])]


def passed_over(paths: list[str | os.PathLike] | list[Path]) -> list[tuple[Path, str]]:
    """(path, why) for each entry of the directories among `paths` that image_files passes over: a file not named
    as an image (notes.txt, IMG_1.heic), a link to nothing, a folder; hidden ones aside. Named, not passed over in
    silence."""
    found = []
    for d in (Path(p) for p in paths):
        for p in sorted(d.iterdir()) if d.is_dir() else ():
            if p.name.startswith("."):
                continue
            if p.is_symlink() and not p.exists():
                found.append((p, "a link to nothing"))
            elif p.is_dir():
                found.append((p, f"a folder inside {d}: its images are not read; put them in {d} itself"))
            elif p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES:
                heic = p.suffix.lower() in (".heic", ".heif")
                found.append((p, "HEIC photos are not read: save them as JPEG" if heic else
                              f"not named as an image (images end in {', '.join(IMAGE_SUFFIXES[:4])}, ...)"))
    return found


def _no_images(where: list[Path]) -> str:
    folders = [p for p in where if p.is_dir() and any(q.is_dir() and not q.name.startswith(".") for q in p.iterdir())]
    hint = (f"; {folders[0]} holds folders: images sorted into class folders are scored with "
            f"`fmnist evaluate MODEL --images {folders[0]}`" if folders else "")
    return f"no image files in {', '.join(map(str, where))} (looked for {', '.join(IMAGE_SUFFIXES)}){hint}"
