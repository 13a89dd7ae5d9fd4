"""IDX reader/writer: round trips, digests, and every structural error naming the file."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from fmnist.data.idx import IdxError, inspect_idx, parse_idx, read_idx, write_idx
from fmnist.errors import DataError

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
LABELS = RNG.integers(0, 10, size=7).astype(np.uint8)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("array", [IMAGES, LABELS], ids=["images", "labels"])
def test_round_trip(tmp_path, array, compress):
    path = write_idx(tmp_path / "x-idx", array, compress=compress)
    blob = path.read_bytes()
    assert (blob[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.flags.writeable
    np.testing.assert_array_equal(back, array)
    assert [p.name for p in tmp_path.iterdir()] == ["x-idx"]  # the temporary file was renamed, none left


def test_header_layout_is_lecuns(tmp_path):
    raw = write_idx(tmp_path / "images", IMAGES).read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3)] == [7, 28, 28]
    assert len(raw) == 16 + 7 * 28 * 28
    assert write_idx(tmp_path / "labels", LABELS).read_bytes()[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x07"


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    gz = write_idx(tmp_path / "labels-without-suffix", LABELS, compress=True)
    raw = write_idx(tmp_path / "labels.gz", LABELS, compress=False)
    np.testing.assert_array_equal(read_idx(gz), read_idx(raw))


def test_compressed_output_is_deterministic(tmp_path):
    a = write_idx(tmp_path / "a.gz", IMAGES, compress=True).read_bytes()
    b = write_idx(tmp_path / "b.gz", IMAGES, compress=True).read_bytes()
    assert a == b


def test_integer_arrays_are_converted_and_bad_arrays_refused(tmp_path):
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l", LABELS.astype(np.int64))), LABELS)
    with pytest.raises(ValueError, match="1-D"):
        write_idx(tmp_path / "x", np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="0..255"):
        write_idx(tmp_path / "x", np.array([1, 256]))
    with pytest.raises(ValueError, match="0..255"):
        write_idx(tmp_path / "x", np.array([0.5]))


def test_inspect_gives_sha256_of_decompressed_bytes_and_md5_of_gz(tmp_path):
    raw_path = write_idx(tmp_path / "raw", IMAGES)
    gz_path = write_idx(tmp_path / "gz", IMAGES, compress=True)
    raw_sha = hashlib.sha256(raw_path.read_bytes()).hexdigest()
    array, digest = inspect_idx(gz_path)
    np.testing.assert_array_equal(array, IMAGES)
    assert digest.sha256 == raw_sha
    assert digest.gz_md5 == hashlib.md5(gz_path.read_bytes()).hexdigest()
    assert digest.shape == (7, 28, 28)
    _, raw_digest = inspect_idx(raw_path)
    assert raw_digest.sha256 == raw_sha and raw_digest.gz_md5 is None


def _labels_bytes() -> bytes:
    return b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([1, 2, 3])


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"\x00\x00", "truncated"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),  # header cut inside the dimensions
        (_labels_bytes()[:-1], "truncated"),
        (_labels_bytes() + b"\x00\x00", "2 bytes after"),
        (b"\x01\x02" + _labels_bytes()[2:], "wrong magic number 0x01020801"),
        (b"\x00\x00\x08\x02" + bytes(8), "wrong magic number 0x00000802"),  # 2-D: not an MNIST-format file
        (b"\x00\x00\x0d\x01" + _labels_bytes()[4:], "element type 0x0D"),  # float32 elements
        (b"<html>not found</html>", "wrong magic number"),
    ],
)
def test_structural_errors_name_file_and_problem(tmp_path, data, problem):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(IdxError) as e:
        read_idx(path)
    assert problem in e.value.problem
    assert str(path) in str(e.value) and "Fix:" in str(e.value)
    assert isinstance(e.value, DataError)


@pytest.mark.parametrize(
    "blob",
    [
        gzip.compress(_labels_bytes() * 50)[:30],  # download cut short
        b"\x1f\x8b" + bytes(range(60)),  # gzip magic, garbage after it
    ],
    ids=["truncated-gz", "corrupt-gz"],
)
def test_bad_gzip_stream(tmp_path, blob):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(blob)
    with pytest.raises(IdxError, match="bad gzip stream") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(IdxError, match="missing"):
        read_idx(tmp_path / "nope")


def test_parse_bytes_directly():
    np.testing.assert_array_equal(parse_idx(_labels_bytes()), [1, 2, 3])


def test_a_gzip_bomb_is_refused_without_expanding(tmp_path, monkeypatch):
    import gzip as gz

    from fmnist.data import idx as idx_module

    monkeypatch.setattr(idx_module, "MAX_IDX_BYTES", 1 << 20)  # 1 MiB: the same rule at a size a test can afford
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gz.compress(b"\0\0\x08\x03" + b"\0" * (4 << 20)))
    with pytest.raises(IdxError, match="decompresses to more than"):
        read_idx(path)
