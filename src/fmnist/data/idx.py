"""IDX files (the MNIST format): read and write, gzipped or raw, with every structural check.

Layout: a 4-byte magic number (two zero bytes, the element type 0x08 = unsigned byte, the number of
dimensions), one big-endian uint32 per dimension, then the elements in C order. MNIST-format labels
are 0x00000801 with dims [N]; images are 0x00000803 with dims [N, 28, 28].
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.errors import DataError
from fmnist.fileio import atomic_write

UBYTE = 0x08
MAGIC = {1: 0x00000801, 3: 0x00000803}  # number of dimensions -> magic number
GZIP_MAGIC = b"\x1f\x8b"
# The largest decompressed IDX file read (the Fashion-MNIST training images are 47 MB): a small gzip "bomb" that
# expands to gigabytes is refused instead of filling memory.
MAX_IDX_BYTES = 2 << 30


class IdxError(DataError):
    """A file that is not a readable IDX file; `problem` says what is wrong with `path`."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix  # when the file is sound but cannot be used as it is (permissions); else: replace it
        super().__init__(f"{self.path}: {problem}. Fix: {fix or 'replace it with an intact copy'}.")


@dataclass(frozen=True)
class FileDigest:
    """What hashing one IDX file found: sha256 of its decompressed bytes, md5 of the file if gzipped, shape."""

    sha256: str
    gz_md5: str | None
    shape: tuple[int, ...]


def sha256_hex(data: bytes) -> str:
    """SHA-256 hex digest of `data` (the one place file contents are hashed for verification)."""
    return hashlib.sha256(data).hexdigest()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or raw, told apart by content) into a uint8 array of its declared shape."""
    blob = _read_file(path)
    return parse_idx(_decompressed(blob, path), path)


def inspect_idx(path: str | os.PathLike) -> tuple[np.ndarray, FileDigest]:
    """Read, hash and parse an IDX file in one pass over its bytes."""
    blob = _read_file(path)
    data = _decompressed(blob, path)
    array = parse_idx(data, path)
    gz_md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest() if blob[:2] == GZIP_MAGIC else None
    return array, FileDigest(sha256_hex(data), gz_md5, tuple(array.shape))


def parse_idx(data: bytes, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX bytes; `path` only names the file in error messages."""
    if len(data) < 4:
        raise IdxError(path, f"truncated: {len(data)} bytes, shorter than the 4-byte IDX magic number")
    magic = int.from_bytes(data[:4], "big")
    ndim = data[3]
    if data[:2] != b"\0\0" or ndim not in MAGIC:
        raise IdxError(
            path,
            f"wrong magic number 0x{magic:08X}: MNIST-format IDX files start with 0x00000801 (labels) "
            f"or 0x00000803 (images)",
        )
    if data[2] != UBYTE:
        raise IdxError(path, f"wrong magic number 0x{magic:08X}: element type 0x{data[2]:02X}, expected unsigned bytes (0x08)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(path, f"truncated: {len(data)} bytes, shorter than its {header}-byte header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)
    shape = "x".join(map(str, dims))
    if len(data) < header + size:
        kind = "an images" if ndim == 3 else "a labels"
        raise IdxError(path, f"truncated: {len(data)} bytes, but its header (magic 0x{magic:08X}: {kind} file) declares "
                             f"{shape} elements, {header + size} bytes")
    if len(data) > header + size:
        raise IdxError(path, f"{len(data) - header - size} bytes after the {shape} elements its header declares")
    # copy: frombuffer over `bytes` is read-only, and callers (torch.from_numpy) expect writable arrays
    return np.frombuffer(data, np.uint8, count=size, offset=header).reshape(dims).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool = False) -> Path:
    """Write a 1-D (labels) or 3-D (images) array of values 0..255 as an IDX file, gzipped if `compress`, atomically."""
    a = np.asarray(array)
    if a.ndim not in MAGIC:
        raise ValueError(f"IDX arrays are 1-D (labels) or 3-D (images), got shape {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.integer) or (a.size and (a.min() < 0 or a.max() > 255)):
            raise ValueError(f"IDX elements are unsigned bytes: need integers 0..255, got {a.dtype}")
        a = a.astype(np.uint8)
    data = MAGIC[a.ndim].to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    data += np.ascontiguousarray(a).tobytes()
    if compress:
        data = gzip.compress(data, mtime=0)  # mtime=0: the same array always gives the same bytes
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)


def _read_file(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise IdxError(path, "missing") from None
    except PermissionError as e:
        raise IdxError(path, f"cannot be read ({e.strerror or e})", f"make it readable (`chmod a+r {path}`) or run as "
                                                                     "a user allowed to read it") from None
    except OSError as e:
        raise IdxError(path, f"cannot be read ({e.strerror or e})") from None


def _decompressed(blob: bytes, path: str | os.PathLike) -> bytes:
    """The IDX bytes: gunzipped when the file starts with the gzip magic, whatever its name says."""
    if blob[:2] != GZIP_MAGIC:
        return blob
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as f:
            data = f.read(MAX_IDX_BYTES + 1)
    except (EOFError, OSError, zlib.error) as e:
        raise IdxError(path, f"bad gzip stream ({e}); the file is truncated or corrupt") from None
    if len(data) > MAX_IDX_BYTES:
        raise IdxError(path, f"decompresses to more than {MAX_IDX_BYTES >> 30} GiB, far more than an MNIST-format "
                             "file holds (a damaged or hostile file)")
    return data
