"""Load a dataset: find its four IDX files, verify them once, keep their decoded arrays in the cache.

Where the files come from, first match wins:
  data-dir  an explicit directory (data_dir / --data-dir / FMNIST_DATA_DIR); missing or bad data there is an
            error, never a silent fallback to another copy
  cache     $XDG_CACHE_HOME/fmnist/<dataset>/ (default ~/.cache/fmnist; downloads land here)
  system    the OS package's copy (fashion-mnist: /usr/share/datasets/fashion-mnist from dataset-fashion-mnist)
  download  the dataset's mirrors, into the cache

The cache also holds digests.json (each hashed file's digests, keyed by realpath, size and mtime, so a file
is hashed once) and arrays/<sha256>.npy (each IDX file's decoded array, by content), which turn a warm
load into a few np.load calls. Nothing is written there until every file of a load has passed every check.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmnist.data.download import fetch_file
from fmnist.data.idx import FileDigest, IdxError, inspect_idx, read_idx, write_idx
from fmnist.data.registry import (
    DEFAULT_DATASET,
    FILES,
    IMAGE_SHAPE,
    SPLIT_FILES,
    DatasetSpec,
    get_spec,
    mirrors,
    system_dir,
)
from fmnist.errors import DataError, UsageError
from fmnist.fileio import atomic_write, write_json, write_text

DATA_DIR_ENV = "FMNIST_DATA_DIR"
CLASSES_FILE = "classes.txt"  # optional in an "idx" directory: one class name per line, in label order
DIGESTS_FILE = "digests.json"


@dataclass
class Split:
    """One split: images uint8 [N, 28, 28], labels int64 [N], class names indexed by label."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> list[int]:
        """Images per class, in class-index order."""
        return np.bincount(self.labels, minlength=len(self.classes)).tolist()


@dataclass
class Dataset:
    """Both splits of a dataset, where they came from, and whether checksums verified every file."""

    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    source: str = "memory"  # "data-dir", "cache", "system" or "download" when loaded
    source_dir: Path | None = None
    verified: bool = False
    checksum: str = ""  # sha256 over the four files' sha256: one digest naming the exact data

    def split(self, name: str) -> Split:
        """The split called `name` ("train" or "test")."""
        _check_split_name(name)
        return self.train if name == "train" else self.test

    def summary(self) -> dict[str, Any]:
        """Source, verification and images per class of each split, as JSON-ready data."""
        return {
            "dataset": self.name,
            "source": self.source,
            "verified": self.verified,
            "splits": {name: {"count": len(s), "per_class": s.class_counts()} for name, s in (("train", self.train), ("test", self.test))},
            "classes": list(self.classes),
            "source_dir": str(self.source_dir) if self.source_dir is not None else None,
            "checksum": self.checksum,
            "shape": list(self.train.images.shape[1:]),
        }


@dataclass(frozen=True)
class _Location:
    source: str
    directory: Path
    paths: dict[str, Path]  # name in FILES -> NAME.gz or NAME


@dataclass
class _File:
    path: Path
    key: str  # digests.json key
    array: np.ndarray  # as stored in the IDX file (uint8)
    digest: FileDigest
    verified: bool
    hashed: bool  # digest is new: remember it
    decoded: bool  # array was parsed from the IDX file: keep it as .npy


def load_dataset(
    name: str | DatasetSpec = DEFAULT_DATASET,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> Dataset:
    """Find, verify and load both splits of dataset `name`; `progress` shows download progress on stderr."""
    spec = get_spec(name)
    location = _locate(spec, data_dir, download, progress)
    files = _load_files(spec, location, FILES)
    classes = _classes(spec, location)
    train, test = (_split(spec, location, files, split, classes) for split in ("train", "test"))
    _commit(files)
    return Dataset(
        name=spec.name,
        classes=classes,
        train=train,
        test=test,
        source=location.source,
        source_dir=location.directory,
        verified=all(f.verified for f in files.values()),
        checksum=hashlib.sha256("".join(f"{n} {files[n].digest.sha256}\n" for n in FILES).encode()).hexdigest(),
    )


def load_split(split: str, name: str | DatasetSpec = DEFAULT_DATASET, data_dir: str | os.PathLike | None = None) -> Split:
    """Find, verify and load one split ("train" or "test"), reading only its two files."""
    _check_split_name(split)
    spec = get_spec(name)
    location = _locate(spec, data_dir, download=True, progress=True)
    files = _load_files(spec, location, SPLIT_FILES[split])
    result = _split(spec, location, files, split, _classes(spec, location))
    _commit(files)
    return result


def write_dataset(directory: str | os.PathLike, train: Split, test: Split, compress: bool = True) -> Path:
    """Write both splits as the four IDX files plus classes.txt: a directory `--dataset idx` loads."""
    directory = Path(directory)
    suffix = ".gz" if compress else ""
    for split, data in (("train", train), ("test", test)):
        images_name, labels_name = SPLIT_FILES[split]
        write_idx(directory / f"{images_name}{suffix}", data.images, compress)
        write_idx(directory / f"{labels_name}{suffix}", data.labels, compress)
    write_text(directory / CLASSES_FILE, "".join(f"{c}\n" for c in train.classes))
    return directory


def cache_root() -> Path:
    """The project's cache: $XDG_CACHE_HOME/fmnist, default ~/.cache/fmnist."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fmnist"


def _locate(spec: DatasetSpec, data_dir: str | os.PathLike | None, download: bool, progress: bool) -> _Location:
    """Pick the first source holding all four files, downloading into the cache as the last resort."""
    if data_dir is None and os.environ.get(DATA_DIR_ENV):
        data_dir = os.environ[DATA_DIR_ENV]
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        if not directory.is_dir():
            raise DataError(f"data directory {directory} (--data-dir / {DATA_DIR_ENV}) does not exist. {_how_to_provide(spec)}")
        paths = _find_files(directory)
        missing = [f for f in FILES if f not in paths]
        if missing:
            raise DataError(
                f"{directory} (--data-dir / {DATA_DIR_ENV}) lacks {', '.join(missing)} (as NAME.gz or NAME); "
                f"no other copy is used when a directory is given. {_how_to_provide(spec)}"
            )
        return _Location("data-dir", directory, paths)
    if spec.custom:
        raise UsageError(f"dataset {spec.name!r} needs --data-dir DIR ({DATA_DIR_ENV}): a directory holding the four IDX files {', '.join(FILES)}")

    cache, system = cache_root() / spec.name, system_dir(spec)
    for source, directory in (("cache", cache), ("system", system)):
        if directory is not None:
            paths = _find_files(directory)
            if len(paths) == len(FILES):
                return _Location(source, directory, paths)
    urls = mirrors(spec)
    if download and urls:
        present = _find_files(cache)
        for fname in FILES:
            if fname not in present:
                path, digest = fetch_file(spec, fname, cache, urls, progress)
                _remember({_file_key(path): digest})
        return _Location("download", cache, _find_files(cache))
    looked = f"the cache {cache}" + (f" and {system}" if system is not None else "")
    reason = ", and downloading is off" if urls else ""
    raise DataError(f"{spec.title} data not found: looked in {looked}{reason}. {_how_to_provide(spec)}")


def _find_files(directory: Path) -> dict[str, Path]:
    """The files of FILES present in `directory`, preferring NAME.gz over NAME."""
    found = {}
    for fname in FILES:
        for candidate in (directory / f"{fname}.gz", directory / fname):
            if candidate.is_file():
                found[fname] = candidate
                break
    return found


def _load_files(spec: DatasetSpec, location: _Location, fnames: tuple[str, ...]) -> dict[str, _File]:
    """Decode and check each file, hashing only files not hashed before and decoding only arrays not cached."""
    known = _read_digests()
    files = {}
    for fname in fnames:
        path = location.paths[fname]
        try:
            key = _file_key(path)
            digest = _parse_digest(known.get(key))
            array = _load_array(digest) if digest is not None else None
            hashed = decoded = False
            if digest is None:
                array, digest = inspect_idx(path)
                hashed = decoded = True
            elif array is None:
                array = read_idx(path)
                decoded = True
        except IdxError as e:
            raise DataError(f"{e.path}: {e.problem}. Fix: {_fix(spec, location)}.") from None
        problem = spec.mismatch(fname, digest)
        if problem:
            raise DataError(f"{path}: {problem}. Fix: {_fix(spec, location, mismatch=True)}.")
        _check_kind(fname, path, array, _fix(spec, location))
        files[fname] = _File(path, key, array, digest, spec.verifies(fname, digest), hashed, decoded)
    return files


def _check_kind(fname: str, path: Path, array: np.ndarray, fix: str) -> None:
    """Images files hold [N, 28, 28], labels files [N]."""
    is_images = fname in (SPLIT_FILES["train"][0], SPLIT_FILES["test"][0])
    want_ndim, kind = (3, "images") if is_images else (1, "labels")
    if array.ndim != want_ndim:
        raise DataError(
            f"{path}: wrong magic number: it is an IDX file of {array.ndim} dimensions (0x0000080{array.ndim}), "
            f"but {kind} files are 0x0000080{want_ndim}. Fix: {fix}."
        )
    if is_images and array.shape[1:] != IMAGE_SHAPE:
        h, w = array.shape[1:]
        raise DataError(f"{path}: wrong dimensions: its images are {h}x{w}, MNIST-format images are 28x28. Fix: {fix}.")


def _split(spec: DatasetSpec, location: _Location, files: dict[str, _File], split: str, classes: tuple[str, ...]) -> Split:
    """Check that a split's images and labels belong together, then wrap them."""
    images, labels = (files[f] for f in SPLIT_FILES[split])
    fix = _fix(spec, location)
    if len(images.array) != len(labels.array):
        raise DataError(
            f"{images.path} holds {len(images.array)} images but {labels.path} holds {len(labels.array)} labels; "
            f"each image needs one label. Fix: {fix}."
        )
    top = int(labels.array.max()) if labels.array.size else -1
    if top >= len(classes):
        if spec.custom:
            fix = f"list the {top + 1} or more class names, one per line, in {location.directory / CLASSES_FILE}, or {fix}"
        raise DataError(
            f"{labels.path}: label {top} out of range: {spec.title} has {len(classes)} classes, labels 0..{len(classes) - 1}. Fix: {fix}."
        )
    return Split(images.array, labels.array.astype(np.int64), classes)


def _classes(spec: DatasetSpec, location: _Location) -> tuple[str, ...]:
    """The registered class names, or for an "idx" directory its classes.txt when present."""
    path = location.directory / CLASSES_FILE
    if not spec.custom or not path.is_file():
        return spec.classes
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({e}). Fix: write one class name per line, in label order.") from None
    while names and not names[-1]:
        names.pop()
    if not names or "" in names:
        where = f"line {names.index('') + 1} is blank" if names else "it names no class"
        raise DataError(f"{path}: {where}. Fix: write one class name per line, in label order.")
    return tuple(names)


def _check_split_name(split: str) -> None:
    if split not in SPLIT_FILES:
        raise UsageError(f"unknown split {split!r}; the splits are {' and '.join(SPLIT_FILES)}")


def _how_to_provide(spec: DatasetSpec) -> str:
    """The ways to get `spec`'s files, for a message about missing data."""
    ways = [f"pass --data-dir DIR (or set {DATA_DIR_ENV}) naming a directory with the four IDX files {', '.join(FILES)} (each .gz or decompressed)"]
    if spec.apt_package:
        ways.append(f"install the Debian package with `apt-get install {spec.apt_package}`")
    if mirrors(spec):
        ways.append(f"run `fmnist data fetch{_dataset_flag(spec)}` with internet access")
    if len(ways) == 1:
        return f"Fix: {ways[0]}."
    numbered = [f"({i}) {way}" for i, way in enumerate(ways, 1)]
    return f"Provide the data one of these ways: {'; '.join(numbered[:-1])}; or {numbered[-1]}."


def _fix(spec: DatasetSpec, location: _Location, mismatch: bool = False) -> str:
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
    return f"delete {location.directory} and run `fmnist data fetch{_dataset_flag(spec)}` to download it again"


def _dataset_flag(spec: DatasetSpec) -> str:
    return "" if spec.name == DEFAULT_DATASET else f" --dataset {spec.name}"


# --- the cache: digests of hashed files, decoded arrays ---------------------------------------------------


def _file_key(path: Path) -> str:
    """realpath|size|mtime_ns: a file is re-hashed only when one of them changes."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise IdxError(path, f"cannot be read ({e.strerror or e})") from None
    return f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}"


def _read_digests() -> dict[str, Any]:
    try:
        entries = json.loads((cache_root() / DIGESTS_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no cache yet, or an unreadable one: files are simply hashed again
    return entries if isinstance(entries, dict) else {}


def _parse_digest(entry: Any) -> FileDigest | None:
    try:
        return FileDigest(str(entry["sha256"]), entry.get("gz_md5"), tuple(int(d) for d in entry["shape"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _remember(fresh: dict[str, FileDigest]) -> None:
    """Add digests to digests.json, dropping older entries for the same files."""
    paths = {key.rsplit("|", 2)[0] for key in fresh}
    entries = {k: v for k, v in _read_digests().items() if k.rsplit("|", 2)[0] not in paths}
    entries.update({k: {"sha256": d.sha256, "gz_md5": d.gz_md5, "shape": list(d.shape)} for k, d in fresh.items()})
    write_json(cache_root() / DIGESTS_FILE, {"format": 1, "files": entries})


def _array_path(digest: FileDigest) -> Path:
    return cache_root() / "arrays" / f"{digest.sha256}.npy"


def _load_array(digest: FileDigest) -> np.ndarray | None:
    try:
        array = np.load(_array_path(digest), allow_pickle=False)
    except (OSError, ValueError):
        return None
    return array if array.dtype == np.uint8 and array.shape == digest.shape else None


def _commit(files: dict[str, _File]) -> None:
    """Remember new digests and keep newly decoded arrays; called only once every check has passed."""
    try:
        fresh = {f.key: f.digest for f in files.values() if f.hashed}
        if fresh:
            _remember(fresh)
        for f in files.values():
            if f.decoded:
                with atomic_write(_array_path(f.digest)) as out:
                    np.save(out, f.array)
    except OSError:
        pass  # an unwritable cache only costs speed: the next load hashes and decodes again
