"""The registered MNIST-format datasets: class names, where each comes from, and how each is verified."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fmnist.data.idx import FileDigest
from fmnist.errors import UsageError

# Every MNIST-format dataset ships these four files, each gzipped (NAME.gz) or decompressed (NAME).
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SPLIT_FILES = {"train": (FILES[0], FILES[1]), "test": (FILES[2], FILES[3])}  # split -> (images, labels)
IMAGE_SHAPE = (28, 28)

MIRROR_ENV = "FMNIST_MIRROR"  # one mirror URL replacing a dataset's own (tests, private mirrors)
SYSTEM_DIR_ENV = "FMNIST_SYSTEM_DIR"  # replaces a dataset's system directory (tests)
DEFAULT_DATASET = "fashion-mnist"
FOLDER = "folder"  # --dataset folder: an image folder, DIR/<class>/* (fmnist.imaging.folder reads it)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset by name: class names, mirrors, system copy and the checksums that verify its files."""

    name: str
    title: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...] = ()  # base URLs serving FILES as NAME.gz, tried in order
    sha256: Mapping[str, str] = field(default_factory=dict)  # of each decompressed file, by name in FILES
    gz_md5: Mapping[str, str] = field(default_factory=dict)  # of the mirrors' .gz files, by name in FILES
    system_dir: Path | None = None  # where an OS package installs the files
    apt_package: str | None = None
    aliases: tuple[str, ...] = ()
    custom: bool = False  # any directory of IDX files: needs a data dir, classes.txt may name the classes

    def mismatch(self, fname: str, digest: FileDigest) -> str | None:
        """Why `digest` is not this dataset's `fname`, or None when it matches or nothing is known to check."""
        want = self.sha256.get(fname)
        if want and digest.sha256 != want:
            return (
                f"checksum mismatch: the SHA-256 of its decompressed bytes is {digest.sha256}, "
                f"{self.title}'s {fname} has {want}{_identify(digest)}"
            )
        want = self.gz_md5.get(fname)
        if not self.sha256.get(fname) and want and digest.gz_md5 is not None and digest.gz_md5 != want:
            return f"checksum mismatch: the MD5 of the .gz file is {digest.gz_md5}, {self.title}'s {fname}.gz has {want}{_identify(digest)}"
        return None

    def verifies(self, fname: str, digest: FileDigest) -> bool:
        """Whether a checksum covers this copy of `fname` (sha256 always; the .gz md5 only for a gzipped copy)."""
        return bool(self.sha256.get(fname)) or (bool(self.gz_md5.get(fname)) and digest.gz_md5 is not None)


_DIGITS = tuple(str(i) for i in range(10))

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="fashion-mnist",
            title="Fashion-MNIST",
            classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            # The decompressed sha256 holds for every copy; Debian's .gz files are recompressed, so no .gz md5.
            sha256={
                "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            },
            system_dir=Path("/usr/share/datasets/fashion-mnist"),
            apt_package="dataset-fashion-mnist",
            aliases=("fashion", "fashion_mnist"),
        ),
        DatasetSpec(
            name="mnist",
            title="MNIST",
            classes=_DIGITS,
            mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
            gz_md5={
                "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
            },
        ),
        DatasetSpec(
            name="kmnist",
            title="KMNIST",
            classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            gz_md5={
                "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
                "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
                "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
                "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
            },
        ),
        DatasetSpec(name="idx", title="IDX directory", classes=_DIGITS, custom=True),
    )
}


def get_spec(name: str | DatasetSpec) -> DatasetSpec:
    """The dataset registered as `name` (or one of its aliases); a DatasetSpec is returned as is."""
    if isinstance(name, DatasetSpec):
        return name
    key = name.strip().lower()
    for spec in DATASETS.values():
        if key == spec.name or key in spec.aliases:
            return spec
    raise UsageError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)} (alias: fashion), and {FOLDER} "
                     "for a folder of DIR/<class>/ images")


def dataset_flag(spec: DatasetSpec) -> str:
    """The `--dataset NAME` a command needs to name `spec` (nothing for the default dataset)."""
    return "" if spec.name == DEFAULT_DATASET else f" --dataset {spec.name}"


def system_dir(spec: DatasetSpec) -> Path | None:
    """Where the OS package puts `spec`'s files (FMNIST_SYSTEM_DIR overrides it), or None."""
    if spec.system_dir is None:
        return None
    return Path(os.environ.get(SYSTEM_DIR_ENV) or spec.system_dir)


def mirrors(spec: DatasetSpec) -> tuple[str, ...]:
    """The mirrors to download `spec` from: FMNIST_MIRROR when set, else its own."""
    if spec.custom:
        return ()
    override = os.environ.get(MIRROR_ENV)
    return (override,) if override else spec.mirrors


def _identify(digest: FileDigest) -> str:
    """Name the registered file `digest` belongs to, if any (catches e.g. MNIST served as Fashion-MNIST)."""
    for spec in DATASETS.values():
        for fname in FILES:
            if digest.sha256 == spec.sha256.get(fname) or (digest.gz_md5 and digest.gz_md5 == spec.gz_md5.get(fname)):
                return f"; this file is {spec.title}'s {fname}"
    return ""
