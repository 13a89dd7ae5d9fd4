"""Where a command's --out may write: what is there already is replaced only with --overwrite, and a path of the
wrong kind (a file where a directory is expected, a directory where a file is) is a sentence, never an errno or the
name of a temporary file. Checked before anything is read or written."""

from __future__ import annotations

from pathlib import Path

from fmnist.errors import UsageError
from fmnist.rundir import check_directory_path


def check_out_file(path: Path, overwrite: bool, suffixes: tuple[str, ...], example: str) -> Path:
    """`path` if a file may be written there: one of `suffixes` (which name its format), not a directory, inside a
    directory, and new unless `overwrite`."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; name a file such as {path / example}")
    if path.suffix.lower() not in suffixes:
        listed = f"{', '.join(suffixes[:-1])} or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
        raise UsageError(f"--out {path}: the suffix names the file's format, and it must be {listed}; "
                         f"name a file such as {path.with_suffix(suffixes[0]).name}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out {path}: {parent} is a file, not a directory; name a path inside a directory")
            break
    if path.exists() and not overwrite:
        raise UsageError(f"--out {path} exists already; pass --overwrite to replace it, or name another --out")
    return path


def check_out_dir(path: Path, overwrite: bool, what: str) -> Path:
    """`path` if `what` may be written into it: a directory (or none yet) that is empty unless `overwrite`, which
    lets files of the same names be replaced (nothing else there is touched)."""
    path = Path(path)
    check_directory_path(path, what)
    if path.is_dir() and not overwrite and any(path.iterdir()):
        raise UsageError(f"--out {path} holds files already; pass --overwrite to replace those of the same names, "
                         "or name a new or empty directory")
    return path
