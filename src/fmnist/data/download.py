"""Download a dataset's .gz files from its mirrors: verified before they enter the cache, written atomically.

A file is streamed into a temporary file beside its destination, checked (every byte the server promised
arrived, the gzip stream and IDX structure are sound, the checksum matches), and only then renamed into
place; any failure or interruption deletes the temporary file, so the cache never holds a bad copy.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from fmnist.data.idx import FileDigest, IdxError, inspect_idx
from fmnist.data.registry import MIRROR_ENV, DatasetSpec, dataset_flag
from fmnist.errors import DataError
from fmnist.fileio import atomic_path, write_error

CHUNK_BYTES = 1 << 16
TIMEOUT_S = 30  # per connect and per read, not for the whole file


class _Failed(Exception):
    """One mirror did not deliver a good copy; the message says why."""


def fetch_file(spec: DatasetSpec, fname: str, directory: Path, mirrors: tuple[str, ...], progress: bool = True) -> tuple[Path, FileDigest]:
    """Download `fname`.gz into `directory` from the first mirror that serves a verified copy."""
    dest = directory / f"{fname}.gz"
    failures = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{fname}.gz"
        try:
            return dest, _download(url, dest, spec, fname, progress)
        except _Failed as e:
            failures.append(f"{url}: {e}")
    package = f", install the Debian package (apt-get install {spec.apt_package})" if spec.apt_package else ""
    raise DataError(
        f"could not download {fname}.gz for {spec.title}: {'; '.join(failures)}. No copy of it entered the cache "
        f"({directory}); files verified there before are kept, so a retry fetches only what is missing. Fix: check "
        f"the internet connection and run `fmnist data fetch{dataset_flag(spec)}` again, set {MIRROR_ENV}=URL "
        f"to a mirror serving the four .gz files{package}, or pass --data-dir DIR (FMNIST_DATA_DIR) to a "
        f"directory holding them."
    )


def _download(url: str, dest: Path, spec: DatasetSpec, fname: str, progress: bool) -> FileDigest:
    """Stream `url` into a temporary file, check it, rename it to `dest`; return its digest."""
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as f:
                expected = _content_length(response)
                received = _copy(response, f, expected, dest.name, progress)
                if expected is not None and received < expected:
                    raise _Failed(f"interrupted: received {received} of the {expected} bytes announced (Content-Length)")
                f.flush()
                os.fsync(f.fileno())
        except urllib.error.HTTPError as e:
            raise _Failed(f"HTTP error {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            raise _Failed(f"connection failed ({e.reason})") from None
        except (http.client.HTTPException, OSError) as e:
            failed_write = write_error(dest, e) if isinstance(e, OSError) else None
            if failed_write is not None:  # a full disk or an unwritable cache is not a network problem
                raise failed_write from None
            raise _Failed(f"connection broken ({type(e).__name__}: {e})") from None
        try:
            _, digest = inspect_idx(tmp)
        except IdxError as e:
            raise _Failed(e.problem) from None
        problem = spec.mismatch(fname, digest)
        if problem:
            raise _Failed(problem)
    return digest


def _content_length(response: http.client.HTTPResponse) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def _copy(response: BinaryIO, f: BinaryIO, total: int | None, label: str, progress: bool) -> int:
    """Copy the response body into `f` with a progress bar on stderr; return the bytes received."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    received = 0
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task(label, total=total)
        # http.client returns b"" (no error) when the server closes early, so the caller compares the count
        while chunk := response.read(CHUNK_BYTES):
            f.write(chunk)
            received += len(chunk)
            bar.advance(task, len(chunk))
    return received
