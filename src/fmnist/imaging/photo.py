"""Photo preprocessing: any photo of one article -> a 28x28 image that looks like Fashion-MNIST.

How the dataset was made (Xiao, Rasul & Vollgraf 2017, section 2): front-view product photos on a light-grey
#fdfdfd background; trim the border whose colour is within 5% of the corner's; resize the longest edge to 28;
sharpen (Gaussian, radius and sigma 1); extend the shorter edge to 28, centred; negate; 8-bit grayscale. So an
article is light on an exactly black background, touches two opposite edges of the frame, and (measured on the
test set) its brightest pixel is 254-255 in 92% of images.

A real photo differs in every step's assumption: its background is off-white, grey, dark or a little uneven, it
is noisy or JPEG-blocky, the article is off-centre with any margin, and cut-outs are transparent. The steps, each a
pure function:

1. `flatten_alpha`       transparency composited onto white (a transparent cut-out is an article on white), onto
                         black when the article is mostly light, and onto its own border's colour around a
                         rectangular photo (`backdrop`), so the article stands out either way
2. `working_array`       RGB floats 0..1, shrunk so the longest edge is at most WORK_SIDE (speed; 28 px is the goal)
3. `estimate_background` a smooth (planar) background colour fitted robustly to the border pixels, so a
                         gradient or a shadowed side is background too
4. `foreground_mask`     distance from that background, thresholded (Otsu, floored above the border's noise)
                         with hysteresis, specks opened away, holes filled, the largest objects kept
5. `article_box`         the mask's bounding box: the crop
6. `article_intensity`   grayscale contrast against the background: negated on a light background, so the article
                         is light on black; exactly 0 outside the mask
7. `fit_to_frame`        longest edge to 28 (aspect kept), sharpened, centred on 28x28, brightest pixel 255
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from fmnist.errors import DataError

FRAME = 28  # the model input is FRAME x FRAME pixels
WORK_SIDE = 256  # longest edge of the working copy, in pixels
MIN_SIDE = 3  # the working copy's shorter edge needs a border pixel on each side of an article pixel
BORDER = 0.04  # the border strip (a fraction of the shorter side) that samples the background
MIN_CONTRAST = 0.06  # the least colour distance (0..sqrt(3)) that can separate an article from its background
# The hysteresis' low threshold as a fraction of the high one. Chosen on 400 held-out training images (photo-like:
# white / shadow / texture / light-grey): 0 scored 92.5 / 89.0 / 91.5 / 92.0%, 0.25 92.2 / 91.5 / 91.8 / 92.2%,
# 0.4 90.8 / 93.0 / 91.2 / 91.2%: lower keeps an article's faint edges, higher drops a soft shadow.
WEAK = 0.25
KEEP_FRACTION = 0.15  # objects at least this share of the largest one are kept (a pair of shoes, a sandal's straps)
SHARPEN_PERCENT = 50  # unsharp mask (radius 1 px) strength on the 28x28 image; see below
# Both chosen on 300 held-out training images (never the test set), photo-like under three distortions: sharpening
# 0 / 50 / 100 / 200% scored 95.3 / 96.7 / 95.7 / 92.3% (white background), 85.0 / 90.3 / 90.3 / 90.0% (soft shadow)
# and 93.0 / 94.0 / 93.0 / 91.7% (everything) with Lanczos; bicubic and box filters were no better.
RESIZE = Image.Resampling.LANCZOS  # the filter that scales the crop to 28 px
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, Pillow's "L"


@dataclass(frozen=True)
class PhotoSteps:
    """What the photo pipeline saw, for a person checking why a prediction went wrong (`fmnist preprocess`)."""

    image: np.ndarray  # uint8 [28, 28]: the model input
    working: np.ndarray  # float32 [h, w, 3]: the (shrunk) photo the mask was computed on
    mask: np.ndarray  # bool [h, w]: the article
    box: tuple[int, int, int, int]  # (top, left, bottom, right) of the article in `working`, bottom/right exclusive
    light_background: bool  # the background was light, so the intensities were negated
    background: tuple[float, float, float]  # the mean background colour, RGB 0..1


def backdrop(img: Image.Image) -> tuple[int, int, int]:
    """The colour transparency is composited onto, decided on a thumbnail. A rectangular photo padded with
    transparency gets its own border's colour, so the padding is more of its background. A cut-out article gets
    white, unless it is mostly light (a white shirt), then black: it stands out of its background either way."""
    if not (img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info):
        return (255, 255, 255)
    scale = min(1.0, 128 / max(img.size))  # shrunk before converting: a 40-megapixel upload is not copied whole
    small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)
    rgba = np.asarray(small.convert("RGBA"), dtype=np.float32) / 255
    opaque = rgba[..., 3] >= 0.5
    if not opaque.any():
        return (255, 255, 255)
    rows, cols = np.flatnonzero(opaque.any(axis=1)), np.flatnonzero(opaque.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    if opaque[box].mean() >= 0.95 and min(opaque[box].shape) > 4:
        ring = np.zeros_like(opaque[box])
        ring[1:-1, 1:-1] = True
        ring[2:-2, 2:-2] = False
        rim = rgba[box][..., :3][opaque[box] & ring]  # the rectangle's border, inside the edge the shrinking blurs
        colour = rim.mean(axis=0)
        inside = rgba[box][2:-2, 2:-2, :3]
        # A photo: an even border (its background, not a shaded cut-out's edge) around something else (its article).
        if float((rim @ LUMA).std()) < 0.03 and (np.linalg.norm(inside - colour, axis=-1) > MIN_CONTRAST).mean() > 0.01:
            return tuple(int(round(float(c) * 255)) for c in colour)  # type: ignore[return-value]
    return (0, 0, 0) if float((rgba[..., :3][opaque] @ LUMA).mean()) >= 0.5 else (255, 255, 255)


def flatten_alpha(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """An RGB image: transparency (alpha, a palette's transparent index) composited onto `background`."""
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        a = np.asarray(img, dtype=np.float32).copy()
        finite = np.isfinite(a)  # a float TIFF may hold NaN or infinite pixels: stretched over the others, then black
        lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 0.0)
        a[~finite] = lo
        a = np.zeros_like(a) if hi <= lo else (a.astype(np.float64) - lo) / (hi - lo) * 255
        return Image.fromarray(np.rint(a).clip(0, 255).astype(np.uint8)).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError:
        return img.convert("L").convert("RGB")


def working_array(img: Image.Image, side: int = WORK_SIDE) -> np.ndarray:
    """RGB float32 [h, w, 3] in 0..1, shrunk (antialiased) so that max(h, w) <= `side`."""
    scale = side / max(img.size)
    if scale < 1:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(img, dtype=np.float32) / 255.0


def border_indices(h: int, w: int, fraction: float = BORDER) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels in the border strip of an h x w image."""
    k = max(1, round(min(h, w) * fraction))
    strip = np.zeros((h, w), bool)
    strip[:k], strip[-k:], strip[:, :k], strip[:, -k:] = True, True, True, True
    return np.nonzero(strip)


def estimate_background(rgb: np.ndarray) -> np.ndarray:
    """The background colour at every pixel, float32 [h, w, 3]: a plane a + b*x + c*y per channel, fitted to the
    border pixels by least squares, refitted twice without the pixels it fits worst (an article touching the border,
    a logo in a corner)."""
    h, w, _ = rgb.shape
    rows, cols = border_indices(h, w)
    design = np.stack([np.ones(len(rows)), cols / max(1, w - 1), rows / max(1, h - 1)], axis=1)  # [n, 3]
    values = rgb[rows, cols].astype(np.float64)  # [n, 3]
    keep = np.ones(len(rows), bool)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)  # [3 terms, 3 channels]
        residual = np.linalg.norm(design @ coef - values, axis=1)
        spread = np.median(residual[keep]) * 1.4826 + 1e-3  # robust standard deviation (MAD)
        keep = residual <= max(3 * spread, 0.02)
        if keep.sum() < 3:
            keep = residual <= np.median(residual)
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    coef = coef.astype(np.float32)
    return np.clip(coef[0] + x * coef[1] + y * coef[2], 0, 1)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that maximises the between-class variance of `values` (Otsu 1979)."""
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    sum0 = np.cumsum(hist * centers)
    mean0 = sum0 / np.maximum(weight0, 1)
    mean1 = (sum0[-1] - sum0) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(centers[int(np.argmax(between))])


def foreground_mask(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """bool [h, w]: the article's pixels. Empty when nothing stands out from the background."""
    h, w, _ = rgb.shape
    distance = np.linalg.norm(rgb - background, axis=2)  # [h, w], 0..sqrt(3)
    rows, cols = border_indices(h, w)
    border = distance[rows, cols]
    noise = float(np.median(border) + 4 * np.median(np.abs(border - np.median(border))) * 1.4826)
    if distance.max() <= max(MIN_CONTRAST, noise):
        return np.zeros((h, w), bool)
    strong_at = max(otsu_threshold(distance), MIN_CONTRAST, noise)
    # Hysteresis: faint parts of the article (a light sleeve) count when they touch a clearly different part.
    weak = distance > max(MIN_CONTRAST / 2, noise, WEAK * strong_at)
    labels, n = ndimage.label(weak)
    strong_labels = np.unique(labels[distance > strong_at])
    mask = np.isin(labels, strong_labels[strong_labels > 0])
    side = max(1, round(max(h, w) / 128))  # specks of a pixel or two at the working size
    mask = ndimage.binary_opening(mask, structure=np.ones((2 * side + 1, 2 * side + 1)))
    mask = ndimage.binary_closing(mask, structure=np.ones((3, 3)), iterations=side)
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    keep = np.flatnonzero(areas >= KEEP_FRACTION * areas.max()) + 1
    return np.isin(labels, keep)


def article_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the mask's bounding box, bottom and right exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def article_intensity(rgb: np.ndarray, background: np.ndarray, mask: np.ndarray, light: bool) -> np.ndarray:
    """float32 [h, w] in 0..1: the article light on black, as the dataset's negated images are; 0 outside the mask.

    On a light background the dataset's negation is 1 - pixel; measured against the background's own level
    instead of white, an off-white or grey background comes out black too. On a dark one the article is already
    the lighter part: pixel - background.
    """
    gray, bg = rgb @ LUMA, background @ LUMA
    value = (bg - gray) / np.maximum(bg, 1e-3) if light else (gray - bg) / np.maximum(1 - bg, 1e-3)
    return np.where(mask, np.clip(value, 0, 1), 0).astype(np.float32)


def fit_to_frame(crop: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """uint8 [frame, frame]: `crop` (float 0..1, the article's box) with its longest edge scaled to `frame` (aspect
    kept), sharpened (Gaussian unsharp mask, radius 1), centred on black, and stretched so its brightest pixel is 255."""
    h, w = crop.shape
    scale = frame / max(h, w)
    size = (max(1, min(frame, round(w * scale))), max(1, min(frame, round(h * scale))))  # (width, height)
    small = Image.fromarray(crop.astype(np.float32), mode="F").resize(size, RESIZE)
    a = np.clip(np.asarray(small, dtype=np.float32), 0, 1)
    peak = float(a.max())
    if peak <= 0:
        raise DataError("the article vanished when scaled to 28x28 (it is too thin or too faint)")
    img = Image.fromarray(np.rint(a / peak * 255).astype(np.uint8))
    if SHARPEN_PERCENT:
        img = img.filter(ImageFilter.UnsharpMask(radius=1, percent=SHARPEN_PERCENT, threshold=0))
    out = np.zeros((frame, frame), np.uint8)
    top, left = (frame - size[1]) // 2, (frame - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = np.asarray(img)
    if out.max() > 0:
        out = np.rint(out.astype(np.float32) * (255.0 / out.max())).astype(np.uint8)
    return out


def too_thin(img: Image.Image, side: int = WORK_SIDE) -> bool:
    """Whether the working copy of `img` would be under MIN_SIDE pixels across (a line, a dot): too thin for the
    background, sampled on its border, to be told from an article inside it."""
    scale = min(1.0, side / max(img.size))
    return max(1, round(min(img.size) * scale)) < MIN_SIDE


def photo_steps(img: Image.Image) -> PhotoSteps:
    """Run every step on a decoded photo (EXIF orientation already applied by fmnist.imaging.decode)."""
    if too_thin(img):
        raise DataError(f"a {img.width}x{img.height} image is too thin to find an article in; crop it around the "
                        "article, or use the dataset preprocessing, which stretches it to 28x28 (`--preprocess "
                        "dataset` on the command line, `preprocess=dataset` in the web service's query, \"dataset\" "
                        "on its page)")
    rgb = working_array(flatten_alpha(img, backdrop(img)))
    background = estimate_background(rgb)
    mask = foreground_mask(rgb, background)
    if not mask.any():
        raise DataError("found no article against the background (a blank or uniform image, or one whose edges are "
                        "not a plain background: an article touching them, a grid of several images); photograph "
                        "one article against a plain background, with a margin around it")
    top, left, bottom, right = article_box(mask)
    light = float((background @ LUMA).mean()) >= 0.5
    intensity = article_intensity(rgb, background, mask, light)
    image = fit_to_frame(intensity[top:bottom, left:right])
    mean_bg = tuple(float(c) for c in background.reshape(-1, 3).mean(axis=0))
    return PhotoSteps(image, rgb, mask, (top, left, bottom, right), light, mean_bg)  # type: ignore[arg-type]


def photo_to_dataset(img: Image.Image) -> np.ndarray:
    """A decoded photo as model input: uint8 [28, 28], light article on black."""
    return photo_steps(img).image
