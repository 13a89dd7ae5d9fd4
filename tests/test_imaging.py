"""Image files of any format, mode and size become uint8 [28, 28]; unreadable files are DataErrors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fmnist.errors import DataError, UsageError
from fmnist.imaging import PREPROCESSORS, load_image, load_images, open_image, preprocess, to_grayscale

SIZES = [(7, 13), (300, 41), (28, 28)]  # (width, height)
MODES = ["L", "LA", "RGB", "RGBA", "P", "1", "I;16", "I", "F"]

# The (mode, format) pairs Pillow can write; each loads back in some mode that load_image must handle.
WRITABLE = {
    "PNG": ["L", "LA", "RGB", "RGBA", "P", "1", "I;16"],
    "JPEG": ["L", "RGB", "1"],
    "BMP": ["L", "RGB", "RGBA", "P", "1"],
    "WEBP": ["L", "LA", "RGB", "RGBA", "P", "1", "I;16", "I", "F"],
    "TIFF": ["I", "F", "I;16"],
}


def gradient(size: tuple[int, int], mode: str) -> Image.Image:
    """An image of `size` and `mode` with a horizontal ramp, so every mode has real content."""
    w, h = size
    ramp = np.tile(np.linspace(0, 255, w, dtype=np.float32), (h, 1))  # [H, W]
    if mode in ("I;16", "I"):
        deep = Image.fromarray((ramp * 4).astype(np.uint16))  # 0..1020: a 10-bit range in 16 bits
        return deep if mode == "I;16" else deep.convert("I")
    if mode == "F":
        return Image.fromarray(ramp / 255.0)
    return Image.fromarray(ramp.astype(np.uint8)).convert(mode)


def check(arr: np.ndarray) -> None:
    assert arr.dtype == np.uint8 and arr.shape == (28, 28)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_and_size_preprocesses(mode, size):
    img = gradient(size, mode)
    assert img.mode == mode
    arr = preprocess(img)
    check(arr)
    if mode != "1":  # a 1-bit ramp is mostly one value; every other mode keeps the dark-to-light ramp
        assert arr[:, 0].mean() < arr[:, -1].mean()


@pytest.mark.parametrize(("fmt", "mode"), [(f, m) for f, modes in WRITABLE.items() for m in modes])
def test_every_format_loads_from_file(tmp_path, fmt, mode):
    path = tmp_path / f"img.{fmt.lower()}"
    gradient((300, 41), mode).save(path, fmt)
    check(load_image(path))


def test_dataset_sized_image_is_unchanged(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    assert np.array_equal(load_image(tmp_path / "x.png"), pixels)


def test_16_bit_is_stretched_by_its_range_not_clipped(tmp_path):
    values = np.linspace(0, 1000, 28 * 28).reshape(28, 28).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")  # 16-bit grayscale PNG
    arr = load_image(tmp_path / "deep.png")
    assert arr.max() >= 254 and arr.min() == 0
    assert np.array_equal(arr, np.rint(values / 1000 * 255).astype(np.uint8))


def test_float_image_with_negative_values():
    arr = preprocess(Image.fromarray(np.linspace(-1, 1, 28 * 28, dtype=np.float32).reshape(28, 28)))
    assert arr.min() == 0 and arr.max() == 255


def test_transparency_is_composited_on_black():
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[:, :14] = (255, 255, 255, 0)  # left: white but fully transparent
    rgba[:, 14:] = (255, 255, 255, 255)  # right: opaque white
    arr = preprocess(Image.fromarray(rgba))
    assert (arr[:, :14] == 0).all() and (arr[:, 14:] == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((28, 28), np.uint8)
    pixels[:5, :] = 255  # a bright top band
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    assert np.array_equal(load_image(tmp_path / "rotated.png"), np.rot90(pixels, k=-1))


def test_bytes_and_file_objects(tmp_path):
    buf = io.BytesIO()
    gradient((40, 40), "RGB").save(buf, "PNG")
    check(load_image(buf.getvalue()))
    buf.seek(0)
    check(load_image(buf))


def test_load_images_stacks_a_batch(tmp_path):
    paths = []
    for i, size in enumerate(SIZES):
        paths.append(tmp_path / f"{i}.png")
        gradient(size, "L").save(paths[-1])
    batch = load_images(paths)
    assert batch.shape == (3, 28, 28) and batch.dtype == np.uint8
    assert load_images([]).shape == (0, 28, 28)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"a shopping list, not a picture\n", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not an image|corrupt"),
    ],
)
def test_unreadable_files(tmp_path, content, expected):
    path = tmp_path / "shirt.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as e:
        load_image(path)
    assert str(path) in str(e.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match="corrupt or truncated") as e:
        load_image(path)
    assert str(path) in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match="not a regular file"):
        load_image(tmp_path)


@pytest.mark.parametrize("pixels", [150, 1000])  # Pillow warns above the limit and refuses above twice it
def test_decompression_bomb(tmp_path, monkeypatch, pixels):
    path = tmp_path / "bomb.png"
    Image.new("L", (pixels, 1)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match="too large") as e:
        load_image(path)
    assert str(path) in str(e.value)


def test_zero_size_image():
    with pytest.raises(DataError, match="zero size"):
        preprocess(Image.new("L", (0, 5)))


def test_unknown_mode():
    with pytest.raises(UsageError, match="known modes: auto, photo, dataset"):
        preprocess(Image.new("L", (28, 28)), mode="sketch")
    assert "dataset" in PREPROCESSORS


def test_grayscale_uses_luma():
    red = to_grayscale(Image.new("RGB", (2, 2), (255, 0, 0)))
    assert red.mode == "L" and red.getpixel((0, 0)) == 76  # 0.299 * 255


def test_open_image_returns_a_detached_image(tmp_path):
    path = tmp_path / "a.png"
    gradient((30, 30), "L").save(path)
    img = open_image(path)
    path.unlink()  # the image no longer needs its file
    assert img.size == (30, 30)


@pytest.mark.parametrize("values", [[0.0, 1e-40, 1e-41, 0.0], [-3e38, 3e38, 0.0, 1.0]])
def test_float_images_at_the_edges_of_float32_stretch_without_overflow(values):
    import warnings

    from fmnist.imaging.decode import _stretch_to_8bit

    img = Image.fromarray(np.array(values, np.float32).reshape(2, 2), "F")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in the cast was a RuntimeWarning and a wrong pixel
        out = np.asarray(_stretch_to_8bit(img))
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() == 0


def test_a_folder_lists_jpeg_and_netpbm_files_by_every_usual_suffix(tmp_path):
    from fmnist.imaging import image_files, load_image

    img = Image.fromarray(np.full((28, 28), 200, np.uint8))
    for name, fmt in (("a.jfif", "JPEG"), ("b.jpe", "JPEG"), ("c.pnm", "PPM"), ("d.txt", "PNG")):
        img.save(tmp_path / name, format=fmt)
    found = image_files([tmp_path])
    assert [p.name for p in found] == ["a.jfif", "b.jpe", "c.pnm"]
    assert all(load_image(p).shape == (28, 28) for p in found)


def test_only_the_listed_raster_formats_are_decoded(tmp_path):
    from fmnist.imaging import readable_formats

    # Pillow would hand EPS to Ghostscript (and name it in the error): it is never tried.
    eps = tmp_path / "drawing.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    with pytest.raises(DataError, match="not an image in a format read here") as e:
        open_image(eps)
    assert "Ghostscript" not in str(e.value)
    img = gradient((40, 30), "RGB")
    for fmt in ("PCX", "SGI"):  # readable by Pillow, but not listed
        path = tmp_path / f"x.{fmt.lower()}"
        img.save(path, fmt)
        with pytest.raises(DataError, match="format read here"):
            open_image(path)
    for fmt in ("TGA", "PPM", "JPEG2000"):  # listed besides the common ones
        path = tmp_path / f"x.{fmt.lower()}"
        img.save(path, fmt)
        assert open_image(path).size == (40, 30) and fmt in readable_formats()
    # A phone's multi-picture JPEG (MPO) comes through the JPEG reader.
    buf = io.BytesIO()
    img.save(buf, "MPO", save_all=True, append_images=[img])
    assert open_image(buf.getvalue()).size == (40, 30)
