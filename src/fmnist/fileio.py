"""Atomic file writes: a reader never sees a half-written file, and a failure leaves nothing behind.

Each write goes to a temporary file beside the target (`.<name>.<random>.tmp`, or `.<stem>.<random><suffix>` for
libraries that write by name), which is flushed and fsynced, renamed over the target, and then the directory is
fsynced so that the rename itself survives a crash. Until the rename the previous file at the target is untouched;
on any error before it the temporary file is deleted. A full disk, an exhausted quota, a read-only file system or a
directory we may not write becomes a WriteError whose message names the file and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from fmnist.errors import WriteError

# The mode open() and Path.write_text create files with. Passing it to os.open lets the kernel take the umask off
# (and apply a directory's default ACL), so the file gets 0666 & ~umask without the umask being read: os.umask()
# can only read it by setting it, which races with other threads. tempfile.mkstemp's 0600 would survive the rename.
FILE_MODE = 0o666

# What the user can fix, by errno: the problem (about DIR, the directory holding the file) and the fix.
_FIXABLE = {
    errno.ENOSPC: ("no space left on the device holding {dir}", "free some space or pass another --out"),
    errno.EDQUOT: ("the disk quota is used up on the device holding {dir}", "free some space or pass another --out"),
    errno.EROFS: ("{dir} is on a read-only file system", "pass another --out"),
    errno.EACCES: ("no permission to write in {dir}", "change its permissions or pass another --out"),
    errno.EPERM: ("the system does not permit writing in {dir}", "change its permissions or pass another --out"),
    # Raised after the parent directories were made: a file system that takes no new files (/proc), or a file
    # standing where a directory of the path should be.
    errno.ENOENT: ("{dir} does not take new files", "pass another --out"),
    errno.EEXIST: ("a file stands where {dir} or a directory above it should be", "pass another --out"),
    errno.ENOTDIR: ("a file stands where {dir} or a directory above it should be", "pass another --out"),
}

# File systems that cannot fsync a directory say so with these; the renamed file is in place all the same.
_NO_DIRECTORY_FSYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF}


# The temporary files atomic_write (".NAME.XXXXXXXX.tmp") and atomic_path (".STEM.XXXXXXXX.SUFFIX") create.
_TEMPORARY = re.compile(r"^\..+\.(tmp|[0-9a-f]{8}\.[A-Za-z0-9]+)$")


def remove_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writes into `directory` left when their process was killed outright (or
    stopped twice in a row) before it could delete them; returns them. Only for a directory no other process
    writes in at the time (a run directory, held by runlock.exclusive)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if _TEMPORARY.match(p.name) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def remove_tree(path: str | os.PathLike, missing_ok: bool = False) -> None:
    """Delete a directory and what it holds; a symbolic link (to a directory) is removed itself, never what it
    points to."""
    path = Path(path)
    if path.is_symlink():
        path.unlink()
    elif path.exists() or not missing_ok:
        shutil.rmtree(path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` ("wb" or "w", UTF-8); on success fsync and rename it into place, else delete it."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes a new file: mode 'wb' or 'w', not {mode!r}")
    path = Path(path)
    with _write_errors(path):
        fd, tmp = _create_temp(path, f".{path.name}.", ".tmp")
        try:
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            _discard(tmp)
            raise
        _fsync_directory(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` for libraries that write by name; fsync and rename it into place on success."""
    path = Path(path)
    with _write_errors(path):
        fd, tmp = _create_temp(path, f".{path.stem}.", path.suffix)
        os.close(fd)
        try:
            yield tmp
            _fsync_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            _discard(tmp)
            raise
        _fsync_directory(path.parent)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` as UTF-8, atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def check_writable(directory: str | os.PathLike) -> None:
    """Make `directory` (and its parents) and write and delete a temporary file in it: a WriteError now, naming
    the fix, rather than after work whose results it could not hold."""
    directory = Path(directory)
    with _write_errors(directory / "file"):
        fd, tmp = _create_temp(directory / "file", ".write-check.", ".tmp")
        os.close(fd)
        _discard(tmp)


def write_error(path: str | os.PathLike, error: OSError) -> WriteError | None:
    """The WriteError telling the user how to fix `error` (raised writing `path`), or None if it is not theirs to fix."""
    if isinstance(error, WriteError) or error.errno not in _FIXABLE:
        return None
    path = Path(path)
    problem, fix = _FIXABLE[error.errno]
    # One sentence naming the file and the fix; never the errno text or the temporary file's name.
    err = WriteError(f"cannot write {path}: {problem.format(dir=path.parent.resolve())}; {fix}")
    err.errno = error.errno  # for callers that tell errors apart by errno, as they did the OSError
    err.problem = problem.format(dir=path.parent.resolve())  # for callers whose fix is another option
    return err


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        translated = write_error(path, e)
        if translated is None:
            raise
        raise translated from None


def _create_temp(path: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new empty file beside `path` with FILE_MODE (less the umask): (open descriptor, its path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), FILE_MODE), tmp
        except FileExistsError:
            continue  # another writer's temporary file; 32 random bits make a second clash all but impossible
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def _fsync_file(path: Path) -> None:
    # A library that wrote by name has closed its file; its data reaches the disk only with an fsync of our own.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; where a directory cannot be opened or fsynced, the file is in place regardless."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # a directory we may write but not read (mode 0300), or a platform without directory descriptors
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_DIRECTORY_FSYNC:
            raise
    finally:
        os.close(fd)


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)
