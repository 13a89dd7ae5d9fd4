"""Property tests on the readers of untrusted input: whatever the bytes, a valid result or the documented error.

IDX bytes give an array or an IdxError; a model file gives a model or a DataError; image bytes and arrays give
uint8 [28, 28] from every preprocessing mode, or a DataError. Nothing else may escape (benchmarks/fuzz.py runs the
same targets with 100,000 inputs each).
"""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from fmnist import checkpoint
from fmnist.checkpoint import load_model, save_model
from fmnist.data.idx import IdxError, parse_idx, read_idx
from fmnist.errors import DataError
from fmnist.imaging import MODES, open_image, prepare
from tests.helpers import tiny_meta, tiny_model

# No example database (it would write .hypothesis/ into the repository) and no deadline (2 shared cores).
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SLOW_FUZZ = settings(FUZZ, max_examples=100)


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with 1-4 edits: bit flips, byte overwrites, truncations, insertions and deletions of bytes."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]) | st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 32))]
    return bytes(data)


# IDX.


def idx_bytes(array: np.ndarray) -> bytes:
    magic = {1: 0x801, 3: 0x803}[array.ndim]
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()


RNG = np.random.default_rng(0)
IDX_SEEDS = [idx_bytes(a) for a in (RNG.integers(0, 10, 9, dtype=np.uint8), RNG.integers(0, 256, (2, 28, 28), dtype=np.uint8),
                                    RNG.integers(0, 256, (3, 4, 5), dtype=np.uint8), np.zeros(0, np.uint8))]


@st.composite
def idx_headers(draw) -> bytes:
    """A header with fields near the real ones (magic bytes, any dimensions), then some payload."""
    ndim = draw(st.sampled_from([0, 1, 2, 3, 4, 255]))
    magic = bytes([0, 0, draw(st.sampled_from([0x08, 0x09, 0x0D, 0xFF])), ndim])
    dims = b"".join(draw(st.sampled_from([0, 1, 2, 28, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1)).to_bytes(4, "big")
                    for _ in range(min(ndim, 4)))
    return magic + dims + draw(st.binary(max_size=64))


def check_idx(data: bytes) -> None:
    try:
        array = parse_idx(data)
    except IdxError:
        return
    assert array.dtype == np.uint8 and array.ndim in (1, 3) and array.flags.writeable
    assert idx_bytes(array) == data  # only an exact IDX file parses: it writes back byte for byte


@FUZZ
@given(st.binary(max_size=4096))
def test_idx_parser_on_random_bytes(data):
    check_idx(data)


@FUZZ
@given(idx_headers() | mutated(IDX_SEEDS))
def test_idx_parser_on_edited_headers_and_mutated_files(data):
    check_idx(data)


def test_idx_reader_on_mutated_gzip_files(tmp_path):
    path = tmp_path / "x.gz"

    @FUZZ
    @given(mutated([gzip.compress(s, mtime=0) for s in IDX_SEEDS]))
    def check(data):
        path.write_bytes(data)
        try:
            array = read_idx(path)
        except DataError:
            return
        assert array.dtype == np.uint8 and array.ndim in (1, 3)

    check()


# Model files.

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
ARG_NAMES = ["in_channels", "num_classes", "width", "widths", "blocks", "stem", "filters", "hidden", "padding", "evil"]


@pytest.fixture
def model_seed(tmp_path) -> bytes:
    """A valid tiny model file (test-tiny is registered for each test by conftest)."""
    return save_model(tmp_path / "seed.safetensors", tiny_model(), tiny_meta()).read_bytes()


def check_model(path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        model, meta = load_model(path)
    except DataError:
        return
    assert isinstance(model, nn.Module) and not model.training


def test_model_loader_on_mutated_files(tmp_path, model_seed):
    @SLOW_FUZZ
    @given(mutated([model_seed]))
    def check(data):
        check_model(tmp_path / "m.safetensors", data)

    check()


def test_model_loader_on_resigned_metadata(tmp_path, model_seed):
    # Metadata values changed and the digest recomputed over them (as a forger would): what refuses these is the
    # validation behind the checksum.
    tensors = load_safetensors(model_seed)
    header_len = int.from_bytes(model_seed[:8], "little")
    metadata = json.loads(model_seed[8 : 8 + header_len])["__metadata__"]
    fields = {k: v for k, v in metadata.items() if k not in ("format", "format_version", "digest")}
    args = st.dictionaries(st.sampled_from(ARG_NAMES), st.integers(-2, 2**40) | JSON, max_size=5)

    @SLOW_FUZZ
    @given(st.sampled_from(sorted(fields)), JSON, st.booleans(), args, st.sampled_from(["1", "1", "0", "2", "x"]))
    def check(key, value, use_args, model_args, version):
        changed = fields | {key: json.dumps(value)}
        if use_args:
            changed["model_args"] = json.dumps(model_args | {"in_channels": 1, "num_classes": 3})
        metadata = {"format": "fmnist-model", "format_version": version, **changed,
                    "digest": checkpoint._digest(changed, tensors)}
        check_model(tmp_path / "m.safetensors", save_safetensors(tensors, metadata=metadata))

    check()


# Images.


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def image_seeds() -> list[bytes]:
    ramp = Image.fromarray(np.tile(np.linspace(0, 255, 30, dtype=np.float32), (20, 1)).astype(np.uint8))
    article = np.full((40, 30), 250, np.uint8)
    article[8:32, 6:24] = 40
    rgb = Image.fromarray(RNG.integers(0, 256, (17, 23, 3), dtype=np.uint8))
    return [encoded(ramp, "PNG"), encoded(Image.fromarray(article), "PNG"), encoded(rgb, "PNG"),
            encoded(rgb.convert("RGBA"), "PNG"), encoded(rgb.convert("P"), "PNG"), encoded(ramp, "JPEG"),
            encoded(rgb, "JPEG"), encoded(Image.fromarray(article).convert("RGB"), "JPEG")]


def check_prepared(img: Image.Image) -> None:
    for mode in MODES:
        try:
            out = prepare(img, mode).image
        except DataError:
            continue
        assert out.dtype == np.uint8 and out.shape == (28, 28), mode


@SLOW_FUZZ
@given(mutated(image_seeds()))
def test_image_decoder_and_preprocessing_on_mutated_files(data):
    try:
        img = open_image(data)
    except DataError:
        return
    check_prepared(img)


def image_arrays():
    gray = arrays(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.bool_]),
                  st.tuples(st.integers(1, 40), st.integers(1, 40)))
    colour = arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([3, 4])))
    return gray | colour


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf in photo.flatten_alpha
@SLOW_FUZZ
@given(image_arrays())
def test_preprocessing_on_random_arrays(array):
    check_prepared(Image.fromarray(array))
