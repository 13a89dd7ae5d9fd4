"""Where a dataset's four IDX files come from, first match wins, and what to tell the user when none has them:

  data-dir  an explicit directory (data_dir / --data-dir / FMNIST_DATA_DIR); missing or bad data there is an
            error, never a silent fallback to another copy
  cache     <cache root>/<dataset>/ (fmnist.paths.cache_root; downloads land here)
  system    the OS package's copy (fashion-mnist: /usr/share/datasets/fashion-mnist from dataset-fashion-mnist)
  download  the dataset's mirrors, into the cache
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fmnist.data import cache
from fmnist.data.download import fetch_file
from fmnist.data.registry import FILES, DatasetSpec, dataset_flag, mirrors, system_dir
from fmnist.errors import DataError, UsageError, WriteError
from fmnist.paths import CACHE_ENV, cache_root

DATA_DIR_ENV = "FMNIST_DATA_DIR"


@dataclass(frozen=True)
class Location:
    """Where one load reads its files: the source kind, its directory, and each file's path."""

    source: str
    directory: Path
    paths: dict[str, Path]  # name in FILES -> NAME.gz or NAME


def locate(spec: DatasetSpec, data_dir: str | os.PathLike | None, download: bool, progress: bool,
           needed: tuple[str, ...] = FILES) -> Location:
    """Pick the first source holding the `needed` files (all four by default; one split's two for a load of that
    split), downloading into the cache as the last resort."""
    if data_dir is None and os.environ.get(DATA_DIR_ENV):
        data_dir = os.environ[DATA_DIR_ENV]
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        if directory.exists() and not directory.is_dir():
            raise DataError(f"data directory {directory} (--data-dir / {DATA_DIR_ENV}) is a file, not a directory. "
                            f"{how_to_provide(spec)}")
        if not directory.is_dir():
            raise DataError(f"data directory {directory} (--data-dir / {DATA_DIR_ENV}) does not exist. {how_to_provide(spec)}")
        paths = find_files(directory)
        missing = [f for f in needed if f not in paths]
        if missing:
            raise DataError(
                f"{directory} (--data-dir / {DATA_DIR_ENV}) lacks {', '.join(missing)} (as NAME.gz or NAME)"
                f"{_not_files(directory, missing)}; no other copy is used when a directory is given. {how_to_provide(spec)}"
            )
        return Location("data-dir", directory, paths)
    if spec.custom:
        raise UsageError(f"dataset {spec.name!r} needs --data-dir DIR ({DATA_DIR_ENV}): a directory holding the four IDX files {', '.join(FILES)}")

    cache_dir, system = cache_root() / spec.name, system_dir(spec)
    # A complete copy first (what a load of both splits, and the dataset's checksum, read), then one with the
    # needed files.
    for wanted in dict.fromkeys((FILES, needed)):
        for source, directory in (("cache", cache_dir), ("system", system)):
            if directory is not None:
                paths = find_files(directory)
                if all(f in paths for f in wanted):
                    return Location(source, directory, paths)
    urls = mirrors(spec)
    if download and urls:
        present = find_files(cache_dir)
        for fname in needed:
            if fname not in present:
                try:
                    path, digest = fetch_file(spec, fname, cache_dir, urls, progress)
                except WriteError as e:  # its fix ("pass another --out") is not this command's
                    raise WriteError(
                        f"cannot download {spec.title} into the cache {cache_dir}: {e.problem or e}; set {CACHE_ENV}=DIR "
                        f"to a writable directory and run `fmnist data fetch{dataset_flag(spec)}` again, or pass "
                        f"--data-dir DIR ({DATA_DIR_ENV}) naming a directory with the four IDX files") from None
                cache.remember({cache.file_key(path): digest})
        return Location("download", cache_dir, find_files(cache_dir))
    looked = f"the cache {cache_dir}" + (f" and {system}" if system is not None else "")
    reason = ", and downloading is off" if urls else ""
    raise DataError(f"{spec.title} data not found: looked in {looked}{reason}. {how_to_provide(spec)}")


def find_files(directory: Path) -> dict[str, Path]:
    """The files of FILES present in `directory`, preferring NAME.gz over NAME."""
    found = {}
    for fname in FILES:
        for candidate in (directory / f"{fname}.gz", directory / fname):
            if candidate.is_file():
                found[fname] = candidate
                break
    return found


def _not_files(directory: Path, fnames: list[str]) -> str:
    """", and NAME.gz is a directory, not a file" for each of `fnames` present in `directory` as something else."""
    odd = [c.name for f in fnames for c in (directory / f"{f}.gz", directory / f) if c.exists() and not c.is_file()]
    if not odd:
        return ""
    kinds = [f"{name} is {'a directory' if (directory / name).is_dir() else 'not a regular file'}" for name in odd]
    return f", and {', '.join(kinds)}, not a file"


def how_to_provide(spec: DatasetSpec) -> str:
    """The ways to get `spec`'s files, for a message about missing data."""
    ways = [f"pass --data-dir DIR (or set {DATA_DIR_ENV}) naming a directory with the four IDX files {', '.join(FILES)} (each .gz or decompressed)"]
    if spec.apt_package:
        ways.append(f"install the Debian package with `apt-get install {spec.apt_package}`")
    if mirrors(spec):
        ways.append(f"run `fmnist data fetch{dataset_flag(spec)}` with internet access")
    if len(ways) == 1:
        return f"Fix: {ways[0]}."
    numbered = [f"({i}) {way}" for i, way in enumerate(ways, 1)]
    return f"Provide the data one of these ways: {'; '.join(numbered[:-1])}; or {numbered[-1]}."


def fix_for(spec: DatasetSpec, location: Location, mismatch: bool = False) -> str:
    """How to repair a bad file, which depends on where it came from."""
    if location.source == "data-dir":
        fix = f"replace the file in {location.directory} with an intact copy, or point --data-dir ({DATA_DIR_ENV}) at another directory"
        if mismatch and spec.gz_md5 and not spec.sha256:
            fix += " (a recompressed .gz fails the MD5 check: gunzip it to load it unverified)"
        if mismatch:
            fix += "; if it is another MNIST-format dataset, load it with --dataset idx"
        return fix
    if location.source == "system":
        return f"reinstall the package (`apt-get install --reinstall {spec.apt_package}`) or pass --data-dir DIR"
    return f"delete {location.directory} and run `fmnist data fetch{dataset_flag(spec)}` to download it again"


