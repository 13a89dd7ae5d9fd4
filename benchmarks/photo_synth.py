"""Photo-like images made from Fashion-MNIST test images, for benchmarks.photos (nothing here is used in training).

A test image is a negated product photo: pixel v (0..255) is how much darker than the light-grey background the
article was. Each distortion turns it back into something a camera or a shop might produce, in ways the photo
pipeline does not simply undo: smooth upscaling by 8-30x, the article's grey levels remapped to a colour and a
tone curve, a background that is not #fdfdfd (off-white, grey, dark, a gradient, a texture), a soft shadow, JPEG,
an off-centre placement with any margin, a photo cropped tight to the article (no margin: it touches the edges),
a small rotation, a transparent cut-out, sensor noise.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

DISTORTIONS = ("white", "off-white", "light-grey", "dark", "gradient", "texture", "shadow", "jpeg", "off-centre",
               "tight", "rotated", "cutout", "noise", "everything")


def _presence(img28: np.ndarray, scale: int) -> np.ndarray:
    """float32 [28*scale, 28*scale] in 0..1: the article's amount at each pixel, upscaled smoothly (bicubic)."""
    big = Image.fromarray(img28).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    return np.asarray(big, np.float32) / 255.0


def _canvas(h: int, w: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """float32 [h, w, 3] background in 0..1."""
    colours = {"white": (0.99, 0.99, 0.99), "off-white": (0.96, 0.94, 0.89), "light-grey": (0.80, 0.80, 0.82),
               "dark": (0.10, 0.10, 0.12)}
    if kind in colours:
        return np.ones((h, w, 3), np.float32) * np.array(colours[kind], np.float32)
    if kind == "gradient":
        ramp = np.linspace(0.78, 0.98, w, dtype=np.float32)[None, :, None]
        return np.ones((h, w, 3), np.float32) * ramp * np.array([1.0, 0.99, 0.97], np.float32)
    if kind == "texture":
        noise = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
        cloth = np.asarray(Image.fromarray(noise).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        return np.clip(0.90 + 0.025 * cloth, 0, 1)[..., None] * np.array([1.0, 0.98, 0.95], np.float32)
    raise ValueError(kind)


def photo(img28: np.ndarray, distortion: str, rng: np.random.Generator) -> Image.Image:
    """One photo-like image (RGB, or RGBA for "cutout") of the article in `img28` under `distortion`."""
    if distortion not in DISTORTIONS:
        raise ValueError(f"unknown distortion {distortion!r}")
    every = distortion == "everything"
    scale = int(rng.integers(8, 31))
    presence = _presence(img28, scale)  # [s, s]
    # The article's colour and tone: v maps to a colour between the background and a dark (or, on a dark
    # background, light) ink, through a gamma in 0.7..1.4.
    gamma = float(rng.uniform(0.7, 1.4))
    background = "dark" if distortion == "dark" else (
        rng.choice(["white", "off-white", "light-grey", "gradient", "texture"]) if every else
        distortion if distortion in ("off-white", "light-grey", "gradient", "texture") else "white")
    ink = rng.uniform(0.75, 1.0, 3).astype(np.float32) if background == "dark" else rng.uniform(0.0, 0.45, 3).astype(np.float32)
    margin = float(rng.uniform(0.05, 0.6)) if distortion in ("off-centre",) or every else 0.15
    s = presence.shape[0]
    h, w = int(s * (1 + 2 * margin)), int(s * (1 + 2 * margin) * float(rng.uniform(1.0, 1.4)))
    if distortion == "tight":  # cropped to the article's frame: it touches the photo's edges, as in the dataset
        h = w = s
    canvas = _canvas(h, w, background, rng)
    if distortion in ("off-centre",) or every:
        top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    else:
        top, left = (h - s) // 2, (w - s) // 2
    alpha = np.zeros((h, w), np.float32)
    alpha[top : top + s, left : left + s] = presence ** gamma
    if distortion == "shadow" or (every and rng.random() < 0.5):
        shadow = Image.fromarray((np.clip(alpha * 3, 0, 1) * 255).astype(np.uint8))
        shadow = np.asarray(shadow.filter(ImageFilter.GaussianBlur(s / 20)), np.float32) / 255.0
        dy, dx = int(s * 0.03), int(s * 0.04)
        shadow = np.roll(np.roll(shadow, dy, axis=0), dx, axis=1)
        canvas = canvas * (1 - 0.25 * shadow[..., None])
    rgb = canvas * (1 - alpha[..., None]) + ink * alpha[..., None]
    if distortion == "noise" or every:
        rgb = rgb + rng.normal(0, 0.02, rgb.shape).astype(np.float32)
    out = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    if distortion == "rotated" or every:
        angle = float(rng.uniform(-6, 6))
        fill = tuple(int(c * 255) for c in canvas[0, 0])
        out = out.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=fill)
    if distortion == "cutout":
        a = np.zeros((h, w), np.uint8)
        a[top : top + s, left : left + s] = (np.clip(presence * 4, 0, 1) * 255).astype(np.uint8)
        article = np.asarray(out)  # colours where the article is; the alpha decides the rest
        return Image.fromarray(np.dstack([article, a]), "RGBA")
    if distortion == "jpeg" or every:
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=int(rng.integers(60, 91)))
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return out


def not_clothing(rng: np.random.Generator, side: int = 400) -> Image.Image:
    """A photo of something that is not clothing, on a light background: a disk, a ring, a triangle, a star,
    a checkerboard, a box (a cabinet seen from the front), or several random blobs."""
    from PIL import ImageDraw

    kind = rng.choice(["disk", "ring", "triangle", "star", "checker", "box", "blobs"])
    img = Image.new("RGB", (side, side), tuple(int(c) for c in rng.integers(215, 256, 3)))
    draw = ImageDraw.Draw(img)
    ink = tuple(int(c) for c in rng.integers(0, 140, 3))
    c, r = side / 2 + rng.uniform(-40, 40), side * rng.uniform(0.2, 0.35)
    if kind == "disk":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=ink)
    elif kind == "ring":
        draw.ellipse((c - r, c - r, c + r, c + r), outline=ink, width=int(r / 3))
    elif kind == "triangle":
        draw.polygon([(c, c - r), (c - r, c + r), (c + r, c + r)], fill=ink)
    elif kind == "star":
        angles = np.linspace(0, 2 * np.pi, 11)[:-1]
        radii = np.where(np.arange(10) % 2 == 0, r, r / 2.5)
        draw.polygon([(c + q * np.cos(a), c + q * np.sin(a)) for q, a in zip(radii, angles)], fill=ink)
    elif kind == "checker":
        cell = int(r / 3)
        for i in range(6):
            for j in range(6):
                if (i + j) % 2 == 0:
                    x, y = int(c - r) + i * cell, int(c - r) + j * cell
                    draw.rectangle((x, y, x + cell, y + cell), fill=ink)
    elif kind == "box":
        draw.rectangle((c - r, c - 1.3 * r, c + r, c + 1.3 * r), fill=ink)
        draw.line((c, c - 1.3 * r, c, c + 1.3 * r), fill=(230, 230, 230), width=4)  # two doors
        draw.ellipse((c - 12, c - 6, c - 4, c + 2), fill=(230, 230, 230))
    else:
        for _ in range(int(rng.integers(3, 7))):
            x, y, q = rng.uniform(80, side - 80), rng.uniform(80, side - 80), rng.uniform(15, 50)
            draw.ellipse((x - q, y - q, x + q, y + q), fill=ink)
    return img


if __name__ == "__main__":
    raise SystemExit("benchmarks.photo_synth is a helper module of benchmarks.photos, not a script; the scripts are the other "
                     "modules of benchmarks/ (`python -m benchmarks.NAME --help`)")
