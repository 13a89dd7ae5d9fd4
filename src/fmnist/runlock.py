"""One process trains into a run directory at a time: an flock, held while it trains, on a file in the cache named
after the directory (`exclusive`), and who holds it now (`training_pid`, for `fmnist runs`)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from fmnist.errors import UsageError
from fmnist.paths import cache_root


@contextlib.contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for the block: a second process training into it (two `--overwrite`s, a `--resume`
    of a run still training) is refused with UsageError instead of mixing its files with this one's.

    The lock is an flock on a file in the cache named after the directory's resolved path (symlinks and `..`
    followed), so it holds across the renames `--overwrite` does and leaves nothing in the run; processes with
    different caches (FMNIST_CACHE) do not see each other's locks. The kernel drops it when the process ends, however it
    ends. Where no lock can be taken (no fcntl, an unwritable cache) the run goes on unguarded."""
    try:
        import fcntl
    except ImportError:  # not on POSIX
        yield
        return
    try:
        path = _lock_path(run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield
        return
    try:
        if not _take(fd, fcntl):
            pid = _holder(fd)
            raise UsageError(f"another fmnist process{f' (pid {pid})' if pid > 0 else ''} is training into "
                             f"{run_dir}; wait for it to finish, or pass another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _take(fd: int, fcntl, patience: float = 0.5) -> bool:
    """Take the exclusive lock, trying again for `patience` seconds: `training_pid` (`fmnist runs`) holds a shared
    lock for an instant to look, and a trainer starting then must not be refused; a trainer holds it throughout."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _lock_path(run_dir: Path) -> Path:
    """The lock file of a run directory, in the cache: one per resolved path."""
    key = hashlib.sha256(str(run_dir.expanduser().resolve()).encode()).hexdigest()[:32]
    return cache_root() / "locks" / f"{key}.lock"


def _holder(fd: int) -> int:
    """The pid `exclusive` wrote into the lock file open at `fd`; -1 where it is not readable."""
    pid = os.pread(fd, 20, 0).decode(errors="replace").strip()
    return int(pid) if pid.isdigit() else -1


def training_pid(run_dir: Path) -> int | None:
    """The pid of the process training into `run_dir` now (holding its `exclusive` lock), or None."""
    try:
        import fcntl

        fd = os.open(_lock_path(run_dir), os.O_RDONLY)
    except (ImportError, OSError):  # no lock file: nothing ever trained there with this cache
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
