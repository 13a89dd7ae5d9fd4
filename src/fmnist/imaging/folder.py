"""Image-folder datasets: DIR/<class>/<image>, read through the same preprocessing as `fmnist predict`.

A class folder's name matches a class name with case and punctuation forgiven ("t-shirt_top", "T-shirt top" and
"tshirttop" all name "T-shirt/top"; so does either half of a name with a slash, "tshirt" or "top", when no other
class shares it), or is a class index ("0".."9"). With `train/` and `test/` subfolders each is one split. A file
that cannot be read or preprocessed is listed and skipped, never fatal.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist.data import DEFAULT_DATASET, Dataset, Split, data_digest, get_spec
from fmnist.data.registry import FOLDER
from fmnist.data.splits import holdout_split
from fmnist.errors import DataError, UsageError
from fmnist.imaging.decode import image_files, open_image, passed_over
from fmnist.imaging.modes import prepare
from fmnist.imaging.photo import flatten_alpha

THUMB = 64  # longest edge of the thumbnails kept for montages, in pixels
TEST_FRACTION = 0.2  # held out as the test split of a folder without train/ and test/


def simplify(name: str) -> str:
    """A name with case and punctuation forgiven: its letters and digits (of any script), case folded."""
    return re.sub(r"[\W_]", "", unicodedata.normalize("NFKC", name).casefold())


def class_aliases(classes: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Every spelling a folder may use for each class index: the simplified name, its index, and each part of a
    name with a slash when no other class claims that part."""
    # A class's own name wins over another class's index ("1" names class "1", not the class at index 1), and
    # both win over a part of a name.
    aliases = {simplify(name): i for i, name in enumerate(classes)}
    by_index = _by_index(classes)
    parts: dict[str, set[int]] = {}
    for i, name in enumerate(classes):
        if by_index:
            aliases.setdefault(str(i), i)
        for part in re.split(r"[/|]", name):
            if simplify(part):
                parts.setdefault(simplify(part), set()).add(i)
    for part, owners in parts.items():
        if len(owners) == 1:
            aliases.setdefault(part, next(iter(owners)))
    return aliases


def _by_index(classes: tuple[str, ...] | list[str]) -> bool:
    """Whether a folder may name a class by its index: not where classes are named by numbers of their own (0/, 1/,
    10/: folder 2/ is not class 10), unless those numbers are the indices (MNIST's digits)."""
    names = [simplify(name) for name in classes]
    return not any(n.isdigit() for n in names) or names == [str(i) for i in range(len(classes))]


def match_classes(folders: list[str], classes: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Folder name -> class index; DataError naming every folder that matches no class (and the class names)."""
    aliases = class_aliases(classes)
    unknown = [f for f in folders if simplify(f) not in aliases]
    if unknown:
        index = " or by its index" if _by_index(classes) else ""
        raise DataError(f"class folders {', '.join(map(repr, unknown))} match none of the classes "
                        f"({', '.join(classes)}); name each folder after a class (case and punctuation do not matter)"
                        f"{index}, or leave it out: a model tells apart only the classes it was trained on (to add "
                        "one, train a model on a folder that holds its images)")
    index = {f: aliases[simplify(f)] for f in folders}
    shared = {c: [f for f in folders if index[f] == c] for c in sorted(set(index.values()))}
    twice = [f"{' and '.join(map(repr, names))} {'both' if len(names) == 2 else 'all'} name {classes[c]}"
             for c, names in shared.items() if len(names) > 1]
    if twice:
        raise DataError(f"class folders {'; '.join(twice)}; put each class's images in one folder")
    return index


@dataclass
class FolderImages:
    """The labelled images of an image folder, as model input, with what a report needs about each."""

    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # int64 [N]
    paths: list[str]
    modes: list[str]  # the preprocessing that ran on each
    thumbnails: list[np.ndarray]  # RGB uint8, longest edge THUMB: the photo as it was
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of files that could not be used


def read_image_folder(directory: str | os.PathLike, classes: tuple[str, ...] | list[str], mode: str = "auto") -> FolderImages:
    """Every image in DIR/<class>/ as model input, labelled by its folder."""
    directory = Path(directory)
    if directory.is_file():
        raise DataError(f"{directory} is a file; pass a folder holding one subfolder per class (a single image is "
                        "classified by `fmnist predict`)")
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory; pass a folder holding one subfolder per class")
    folders = _class_folders(directory)
    if not folders:
        raise DataError(f"{directory} has no class folders; put the images of each class in DIR/<class name>/")
    files = {folder: image_files([directory / folder]) for folder in folders}
    index = match_classes([f for f in folders if files[f]], classes)  # an empty folder is listed, not matched
    images, labels, paths, modes, thumbs = [], [], [], [], []
    skipped = [(str(p), f"{p}: not in a class folder, so its class is unknown; move it into the folder of its class")
               for p in image_files([directory])]
    for folder in folders:
        skipped += [(str(p), f"{p}: {why}") for p, why in passed_over([directory / folder])]
        if not files[folder]:
            skipped.append((str(directory / folder), f"{directory / folder}: a class folder with no image files"))
        for path in files[folder]:
            try:
                img = open_image(path)
                prepared = prepare(img, mode)
                # The thumbnail shows the photo as decoded for the model (EXIF orientation applied), transparency
                # flattened before it is shrunk.
                thumb = flatten_alpha(img)
                thumb.thumbnail((THUMB, THUMB))
            except DataError as e:
                skipped.append((str(path), str(e) if str(path) in str(e) else f"image file {path}: {e}"))
                continue
            except OSError as e:
                skipped.append((str(path), f"image file {path}: {e}"))
                continue
            thumb = np.asarray(thumb)
            images.append(prepared.image)
            labels.append(index[folder])
            paths.append(str(path))
            modes.append(prepared.mode)
            thumbs.append(thumb)
    if not images:
        raise DataError(f"{directory}: no readable images in its class folders ({len(skipped)} skipped)")
    return FolderImages(np.stack(images), np.asarray(labels, np.int64), paths, modes, thumbs, skipped)


def folder_dataset(directory: str | os.PathLike, classes: tuple[str, ...] | list[str], mode: str = "auto",
                   seed: int = 0) -> Dataset:
    """A Dataset from DIR/train/<class>/ and DIR/test/<class>/, or from DIR/<class>/ with a seeded stratified
    TEST_FRACTION held out as the test split; `Dataset.skipped` lists the files that could not be read."""
    directory = Path(directory)
    classes = tuple(classes)
    halves = [name for name in ("train", "test") if (directory / name).is_dir()]
    if len(halves) == 1:
        other = "test" if halves == ["train"] else "train"
        raise DataError(f"{directory} has {halves[0]}/ but no {other}/: give both splits as DIR/train/<class>/ and "
                        "DIR/test/<class>/, or put the class folders in DIR itself to hold out a test split")
    if halves:
        train, test = read_image_folder(directory / "train", classes, mode), read_image_folder(directory / "test", classes, mode)
        splits = (Split(train.images, train.labels, classes), Split(test.images, test.labels, classes))
        skipped = train.skipped + test.skipped
    else:
        every = read_image_folder(directory, classes, mode)
        if len(every.labels) < 2:
            raise DataError(f"{directory}: {len(every.labels)} readable image; a dataset needs a train and a test split")
        tr, te = holdout_split(every.labels, TEST_FRACTION, seed)
        if not len(te):
            raise DataError(f"{directory}: every class holds one image, and each must train; a test split needs a "
                            "class with two images or more (or DIR/train/ and DIR/test/)")
        splits = (Split(every.images[tr], every.labels[tr], classes), Split(every.images[te], every.labels[te], classes))
        skipped = every.skipped
    names = np.frombuffer("\n".join(classes).encode(), np.uint8)  # the classes too: an empty one is a class
    checksum = data_digest(names, *(a for split in splits for a in (split.images, split.labels)))  # and the split
    return Dataset(FOLDER, classes, *splits, source=FOLDER, source_dir=directory, verified=False, checksum=checksum,
                   skipped=list(skipped))


def load_folder(data_dir: str | os.PathLike | None, classes: list[str] | None = None, seed: int = 0) -> Dataset:
    """--dataset folder: the image folder DIR/<class>/ (or DIR/train/ and DIR/test/) through the photo
    preprocessing, in `classes` (default: `folder_classes`); `Dataset.skipped` lists the files it could not read."""
    if data_dir is None:
        raise UsageError("--dataset folder needs --data-dir DIR: a folder of DIR/<class>/ images (or DIR/train/ and "
                         "DIR/test/)")
    return folder_dataset(data_dir, classes or folder_classes(data_dir), seed=seed)


def folder_classes(directory: str | os.PathLike) -> tuple[str, ...]:
    """The classes of an image folder a model is trained on from scratch: Fashion-MNIST's when every class folder
    names one of them (or its index), so the model reads Fashion-MNIST and mixes with it; else the folders' own
    names, in sorted order (circle/, square/, triangle/: three classes of your own)."""
    directory = Path(directory)
    halves = [directory / "train", directory / "test"] if (directory / "train").is_dir() else [directory]
    folders = [_class_folders(half) for half in halves]
    fashion = get_spec(DEFAULT_DATASET).classes
    aliases = class_aliases(fashion)
    if all(simplify(f) in aliases for names in folders for f in names):
        return fashion
    # A class of its own needs images to train on: an empty folder is listed as skipped, not made a class.
    folders = [[f for f in names if image_files([half / f])] for half, names in zip(halves, folders)]
    if len(folders[0]) < 2:
        raise DataError(f"{halves[0]} holds {len(folders[0])} class folder{'s' if len(folders[0]) != 1 else ''} with "
                        "images; a classifier tells 2 classes or more apart: add a folder of images per class")
    trained = set(map(simplify, folders[0]))
    extra = [f for f in folders[-1] if simplify(f) not in trained]
    if extra:
        raise DataError(f"{directory / 'test'} has class folders {directory / 'train'} lacks ({', '.join(extra)}): "
                        "a class trained on no image cannot be told apart")
    return tuple(folders[0])


def _class_folders(directory: Path) -> list[str]:
    """The class folders' names of `directory`, sorted (hidden ones aside); none where it is not a directory."""
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if directory.is_dir() else []


def class_note(classes: tuple[str, ...] | list[str], directory: str | os.PathLike | None = None) -> str:
    """The line a run on an image folder prints about its classes: whose they are, the Fashion-MNIST class each
    folder named by a number stands for, and a folder name close to a Fashion-MNIST class (trousers/ beside
    shirt/ makes every folder a class of its own)."""
    fashion = get_spec(DEFAULT_DATASET).classes
    if tuple(classes) == tuple(fashion):
        root = Path(directory) / "train" if directory and (Path(directory) / "train").is_dir() else directory
        numbered = [f for f in _class_folders(Path(root)) if f.isdigit()] if root else []
        stands = "; ".join(f"{f}/ is {fashion[int(f)]}" for f in numbered if int(f) < len(fashion))
        return f"classes: Fashion-MNIST's {len(fashion)}, the folders named after them" + (
            f" (by index: {stands})" if stands else "")
    known = {simplify(name): name for name in fashion}
    close = [(c, difflib.get_close_matches(simplify(c), list(known), n=1, cutoff=0.75)) for c in classes]
    hints = [f"{c!r} is close to Fashion-MNIST's {known[m[0]]!r}" for c, m in close if m and simplify(c) not in known]
    hint = f" ({'; '.join(hints)}: name every folder after a Fashion-MNIST class to train those)" if hints else ""
    return f"classes: {', '.join(classes)}, named by the folders{hint}"
