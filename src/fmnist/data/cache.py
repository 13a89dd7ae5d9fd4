"""The data cache under fmnist.paths.cache_root(): digests of files already hashed, and decoded arrays.

digests.json holds each hashed file's digests, keyed by realpath, size and mtime (so a file is hashed once);
arrays/<sha256>.npy holds each IDX file's decoded array, by content. Together they turn a warm load into a few
np.load calls. The loader writes here only once every file of a load has passed every check (`keep`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from fmnist.data.idx import FileDigest, IdxError
from fmnist.fileio import atomic_write, write_json
from fmnist.paths import cache_root

DIGESTS_FILE = "digests.json"


def file_key(path: Path) -> str:
    """realpath|size|mtime_ns: a file is re-hashed only when one of them changes."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise IdxError(path, f"cannot be read ({e.strerror or e})") from None
    return f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}"


def read_digests() -> dict[str, Any]:
    try:
        entries = json.loads((cache_root() / DIGESTS_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no cache yet, or an unreadable one: files are simply hashed again
    return entries if isinstance(entries, dict) else {}


def parse_digest(entry: Any) -> FileDigest | None:
    try:
        return FileDigest(str(entry["sha256"]), entry.get("gz_md5"), tuple(int(d) for d in entry["shape"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def remember(fresh: dict[str, FileDigest]) -> None:
    """Add digests to digests.json, dropping older entries for the same files."""
    paths = {key.rsplit("|", 2)[0] for key in fresh}
    entries = {k: v for k, v in read_digests().items() if k.rsplit("|", 2)[0] not in paths}
    entries.update({k: {"sha256": d.sha256, "gz_md5": d.gz_md5, "shape": list(d.shape)} for k, d in fresh.items()})
    write_json(cache_root() / DIGESTS_FILE, {"format": 1, "files": entries})


def array_path(digest: FileDigest) -> Path:
    return cache_root() / "arrays" / f"{digest.sha256}.npy"


def load_array(digest: FileDigest) -> np.ndarray | None:
    try:
        array = np.load(array_path(digest), allow_pickle=False)
    except (OSError, ValueError):
        return None
    return array if array.dtype == np.uint8 and array.shape == digest.shape else None


def keep(fresh: dict[str, FileDigest], decoded: list[tuple[FileDigest, np.ndarray]]) -> None:
    """Remember new digests (by file key) and keep newly decoded arrays; an unwritable cache is skipped."""
    try:
        if fresh:
            remember(fresh)
        for digest, array in decoded:
            with atomic_write(array_path(digest)) as out:
                np.save(out, array)
    except OSError:
        pass  # an unwritable cache only costs speed: the next load hashes and decodes again
