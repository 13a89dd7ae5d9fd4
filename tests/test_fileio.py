"""Atomic writes: file modes follow the umask, a full disk or an unwritable directory is a WriteError with a sentence,
and a failed write leaves the previous file byte for byte and no temporary file."""

from __future__ import annotations

import errno
import json
import os
import stat

import numpy as np
import pytest

from fmnist import fileio
from fmnist.data.idx import write_idx
from fmnist.errors import FmnistError, WriteError
from fmnist.fileio import atomic_path, atomic_write, write_json, write_text

OLD = b"the previous contents\n"


@pytest.fixture
def umask():
    """Set the process umask for one test (returns the setter); the old one is restored afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "out" / "result.json"
    path.parent.mkdir()
    path.write_bytes(OLD)
    return path


def failing(code: int):
    """A stand-in for an os function that fails with errno `code`."""

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def only_file_left(path) -> None:
    """`path` is the only entry of its directory: no temporary file survived."""
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    write_text(tmp_path / "a.txt", "x")
    with atomic_write(tmp_path / "b.bin") as f:
        f.write(b"x")
    with atomic_path(tmp_path / "c.png") as tmp:
        tmp.write_bytes(b"x")  # a library writing by name: it truncates the file we made and keeps its mode
    for name in ("a.txt", "b.bin", "c.png"):
        assert mode_of(tmp_path / name) == expected, name


def test_replacing_a_file_gives_the_umask_mode_not_the_old_one(old_file, umask):
    os.chmod(old_file, 0o600)
    write_json(old_file, {"a": 1})
    assert mode_of(old_file) == 0o644


def test_write_json_and_write_text_round_trip(tmp_path):
    obj = {"name": "T-shirt/top", "accuracy": 0.9121, "classes": ["a", "ü", "雪"], "nested": {"n": None}}
    write_json(tmp_path / "sub" / "x.json", obj)  # missing parents are created
    assert json.loads((tmp_path / "sub" / "x.json").read_text(encoding="utf-8")) == obj
    assert (tmp_path / "sub" / "x.json").read_text().endswith("}\n")
    text = "line one\nÄrmel, 袖\n"
    write_text(tmp_path / "x.md", text)
    assert (tmp_path / "x.md").read_bytes() == text.encode("utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "x.md"]


def test_fsync_failing_with_enospc_leaves_the_old_file_and_no_temporary(old_file, monkeypatch):
    monkeypatch.setattr(fileio.os, "fsync", failing(errno.ENOSPC))
    with pytest.raises(WriteError) as e:
        write_json(old_file, {"big": list(range(1000))})
    assert old_file.read_bytes() == OLD
    only_file_left(old_file)
    message = str(e.value)
    assert message == (f"cannot write {old_file}: no space left on the device holding {old_file.parent.resolve()}; "
                       "free some space or pass another --out")
    assert "Errno" not in message and ".tmp" not in message
    assert isinstance(e.value, FmnistError) and e.value.exit_code == 2
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC  # `except OSError` callers still catch it


class FillsUp:
    """A file object whose first write stores half its data and whose next write finds the disk full."""

    def __init__(self, f):
        self.f, self.writes = f, 0

    def write(self, data):
        self.writes += 1
        if self.writes > 1:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        return self.f.write(data[: len(data) // 2])

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)


def test_a_write_failing_midway_leaves_the_old_file_and_no_temporary(old_file, monkeypatch):
    fdopen = os.fdopen
    monkeypatch.setattr(fileio.os, "fdopen", lambda *a, **k: FillsUp(fdopen(*a, **k)))
    with pytest.raises(WriteError, match=r"disk quota is used up on the device holding .*; free some space"):
        write_json(old_file, {"rows": [{"i": i} for i in range(100)]})  # json.dump writes in many pieces
    assert old_file.read_bytes() == OLD
    only_file_left(old_file)


def test_idx_writer_on_a_full_disk(tmp_path, monkeypatch):
    path = write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8))
    before = path.read_bytes()
    monkeypatch.setattr(fileio.os, "fsync", failing(errno.ENOSPC))
    with pytest.raises(WriteError, match="no space left"):
        write_idx(path, np.zeros(50, dtype=np.uint8))
    assert path.read_bytes() == before
    only_file_left(path)


def test_any_error_in_the_body_leaves_nothing_behind(old_file):
    with pytest.raises(KeyError):
        with atomic_write(old_file) as f:
            f.write(b"half")
            raise KeyError("boom")
    with pytest.raises(ValueError, match="unrelated"):
        with atomic_path(old_file) as tmp:
            tmp.write_bytes(b"half")
            raise ValueError("unrelated")
    assert old_file.read_bytes() == OLD
    only_file_left(old_file)


def test_other_os_errors_are_not_dressed_up(old_file, monkeypatch):
    monkeypatch.setattr(fileio.os, "replace", failing(errno.EIO))
    with pytest.raises(OSError) as e:
        write_text(old_file, "new")
    assert not isinstance(e.value, WriteError) and e.value.errno == errno.EIO
    assert old_file.read_bytes() == OLD
    only_file_left(old_file)


def test_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "keep.txt").write_bytes(OLD)
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        with pytest.raises(WriteError, match=r"cannot write .*keep\.txt: no permission to write in .*ro; change its "
                                             r"permissions or pass another --out"):
            write_text(ro / "keep.txt", "new")
        assert (ro / "keep.txt").read_bytes() == OLD
        assert [p.name for p in ro.iterdir()] == ["keep.txt"]
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize(("code", "expected"), [
    (errno.EROFS, "is on a read-only file system; pass another --out"),
    (errno.EACCES, "no permission to write in"),
    (errno.EPERM, "does not permit writing in"),
    (errno.ENOENT, "does not take new files; pass another --out"),  # /proc
    (errno.ENOTDIR, "a file stands where"),
])
def test_unwritable_places_are_write_errors(old_file, monkeypatch, code, expected):
    # The kernel's refusal simulated where it happens (creating the temporary file), so it runs as root too.
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "open", refuse)
    with pytest.raises(WriteError, match=expected) as e:
        write_text(old_file, "new")
    assert str(old_file) in str(e.value) and ".tmp" not in str(e.value)
    assert old_file.read_bytes() == OLD
    only_file_left(old_file)


def test_a_directory_that_cannot_be_fsynced_is_not_a_failure(tmp_path, monkeypatch):
    fsync = os.fsync

    def no_directories(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", no_directories)
    write_text(tmp_path / "x.txt", "ok")
    assert (tmp_path / "x.txt").read_text() == "ok"


def test_atomic_write_accepts_only_fresh_write_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    assert not list(tmp_path.iterdir())


def test_remove_temporaries_takes_only_what_an_interrupted_write_left(tmp_path):
    from fmnist.fileio import atomic_path, atomic_write, remove_temporaries

    mine = ["config.json", "history.csv", ".hidden", "notes.v1.txt", ".checkpoint.safetensors.previous"]
    for name in mine:
        (tmp_path / name).write_text("mine")
    # The names the two writers use for their temporary files, as a process killed mid-write leaves them.
    with atomic_write(tmp_path / "checkpoint.safetensors") as f:
        f.write(b"x")
        temporary = [p.name for p in tmp_path.iterdir() if p.name.startswith(".checkpoint.safetensors.")
                     and p.name != ".checkpoint.safetensors.previous"]
    with atomic_path(tmp_path / "montage.png") as tmp:
        tmp.write_bytes(b"x")
        temporary.append(tmp.name)
    for name in temporary:
        (tmp_path / name).write_text("partial")
    assert sorted(p.name for p in remove_temporaries(tmp_path)) == sorted(temporary) and len(temporary) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(mine + ["checkpoint.safetensors", "montage.png"])


def test_check_writable_says_what_to_do_and_leaves_nothing(tmp_path, monkeypatch):
    fileio.check_writable(tmp_path / "new" / "dir")
    assert list((tmp_path / "new" / "dir").iterdir()) == []

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fileio.os, "open", read_only)
    with pytest.raises(WriteError, match="read-only file system; pass another --out"):
        fileio.check_writable(tmp_path)
