"""Load a dataset: find its four IDX files (fmnist.data.sources), verify them once, decode them (or read the
decoded arrays back from fmnist.data.cache), and check that they form a dataset: kinds, shapes, counts, labels.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist.data import cache
from fmnist.data.idx import FileDigest, IdxError, inspect_idx, read_idx, write_idx
from fmnist.data.registry import DEFAULT_DATASET, FILES, IMAGE_SHAPE, SPLIT_FILES, DatasetSpec, get_spec
from fmnist.data.sources import Location, fix_for, locate
from fmnist.errors import DataError, UsageError
from fmnist.fileio import write_text

CLASSES_FILE = "classes.txt"  # optional in an "idx" directory: one class name per line, in label order


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
    checksum: str = ""  # one digest naming the exact data: sha256 over the four files' sha256 (an image
    # folder's: data_digest of its two splits)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) not read: an image folder's

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
    location = locate(spec, data_dir, download, progress)
    files = _load_files(spec, location, FILES)
    classes = _classes(spec, location)
    train, test = (_split(spec, location, files, split, classes) for split in ("train", "test"))
    _keep(files)
    return Dataset(
        name=spec.name,
        classes=classes,
        train=train,
        test=test,
        source=location.source,
        source_dir=location.directory,
        verified=all(f.verified for f in files.values()),
        checksum=_checksum({n: files[n].digest for n in FILES}),
    )


def load_split(split: str, name: str | DatasetSpec = DEFAULT_DATASET, data_dir: str | os.PathLike | None = None,
               download: bool = True) -> Split:
    """Find, verify and load one split ("train" or "test"), reading only its two files (downloading them if
    absent, unless `download` is False: then a DataError says how to provide them)."""
    _check_split_name(split)
    spec = get_spec(name)
    location = locate(spec, data_dir, download=download, progress=True, needed=SPLIT_FILES[split])
    files = _load_files(spec, location, SPLIT_FILES[split])
    result = _split(spec, location, files, split, _classes(spec, location))
    _keep(files)
    return result


def data_digest(*arrays: np.ndarray) -> str:
    """A digest of arrays (images and labels: about 30 ms for Fashion-MNIST's 60,000): a checkpoint resumes only on
    the training data it began with, and an image folder's splits are named by it as IDX files by their checksum."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def dataset_checksum(name: str | DatasetSpec = DEFAULT_DATASET, data_dir: str | os.PathLike | None = None) -> str:
    """The checksum `load_dataset` gives dataset `name`, without decoding it: the digests come from the data cache,
    or from hashing a file not hashed before. Nothing is downloaded: a DataError when the four files are not here."""
    location = locate(get_spec(name), data_dir, download=False, progress=False)
    known = cache.read_digests()
    digests = {}
    for fname in FILES:
        path = location.paths[fname]
        digests[fname] = cache.parse_digest(known.get(cache.file_key(path))) or inspect_idx(path)[1]
    return _checksum(digests)


def _checksum(digests: dict[str, FileDigest]) -> str:
    """A dataset's checksum: sha256 over its four files' sha256."""
    return hashlib.sha256("".join(f"{n} {digests[n].sha256}\n" for n in FILES).encode()).hexdigest()


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


def _load_files(spec: DatasetSpec, location: Location, fnames: tuple[str, ...]) -> dict[str, _File]:
    """Decode and check each file, hashing only files not hashed before and decoding only arrays not cached."""
    known = cache.read_digests()
    files = {}
    for fname in fnames:
        path = location.paths[fname]
        try:
            key = cache.file_key(path)
            digest = cache.parse_digest(known.get(key))
            array = cache.load_array(digest) if digest is not None else None
            hashed = decoded = False
            if digest is None:
                array, digest = inspect_idx(path)
                hashed = decoded = True
            elif array is None:
                array = read_idx(path)
                decoded = True
        except IdxError as e:
            raise DataError(f"{e.path}: {e.problem}. Fix: {e.fix or fix_for(spec, location)}.") from None
        problem = spec.mismatch(fname, digest)
        if problem:
            raise DataError(f"{path}: {problem}. Fix: {fix_for(spec, location, mismatch=True)}.")
        _check_kind(fname, path, array, fix_for(spec, location))
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
        raise DataError(f"{path}: wrong dimensions: its images are {h}x{w}, MNIST-format images are 28x28. Fix: write "
                        f"the images resized to 28x28, or save them as image files in DIR/<class>/ and load those with "
                        f"--dataset folder --data-dir DIR, which resizes them; else {fix}.")


def _split(spec: DatasetSpec, location: Location, files: dict[str, _File], split: str, classes: tuple[str, ...]) -> Split:
    """Check that a split's images and labels belong together, then wrap them."""
    images, labels = (files[f] for f in SPLIT_FILES[split])
    fix = fix_for(spec, location)
    if len(images.array) != len(labels.array):
        raise DataError(
            f"{images.path} holds {len(images.array)} images but {labels.path} holds {len(labels.array)} labels; "
            f"each image needs one label. Fix: {fix}."
        )
    top = int(labels.array.max()) if labels.array.size else -1
    if top >= len(classes):
        has = f"{spec.title} has {len(classes)} classes"
        if spec.custom:
            names = location.directory / CLASSES_FILE
            if not names.is_file():  # its 10 classes are a default, not something the user wrote
                has = f"an {spec.title} without {CLASSES_FILE} has the 10 classes of MNIST"
            fix = f"list the {top + 1} or more class names, one per line, in {names}, or {fix}"
        raise DataError(f"{labels.path}: label {top} out of range: {has}, labels 0..{len(classes) - 1}. Fix: {fix}.")
    return Split(images.array, labels.array.astype(np.int64), classes)


def _classes(spec: DatasetSpec, location: Location) -> tuple[str, ...]:
    """The registered class names, or for an "idx" directory its classes.txt when present."""
    path = location.directory / CLASSES_FILE
    if not spec.custom or not path.is_file():
        return spec.classes
    try:
        # utf-8-sig: a byte-order mark (as some editors write) is not part of the first class name.
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({e}). Fix: write one class name per line, in label order.") from None
    while names and not names[-1]:
        names.pop()
    if not names or "" in names:
        where = f"line {names.index('') + 1} is blank" if names else "it names no class"
        raise DataError(f"{path}: {where}. Fix: write one class name per line, in label order.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: {', '.join(map(repr, repeated))} named more than once; each class needs its own "
                        "name. Fix: write one distinct class name per line, in label order.")
    return tuple(names)


def _check_split_name(split: str) -> None:
    if split not in SPLIT_FILES:
        raise UsageError(f"unknown split {split!r}; the splits are {' and '.join(SPLIT_FILES)}")


def _keep(files: dict[str, _File]) -> None:
    """Hand new digests and newly decoded arrays to the cache; called only once every check has passed."""
    cache.keep({f.key: f.digest for f in files.values() if f.hashed},
               [(f.digest, f.array) for f in files.values() if f.decoded])
