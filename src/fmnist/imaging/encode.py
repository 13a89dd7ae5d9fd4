"""Arrays to image files in memory (the service's model-input previews, test fixtures, load payloads)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_image(image: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """A uint8 image array ([H, W] grayscale or [H, W, 3] RGB) encoded as a `fmt` file (PNG, JPEG, ...)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format=fmt, **options)
    return buf.getvalue()
