"""Where fmnist keeps things on disk: the one cache root, file names made safe from user strings, and the file that
marks a cross-validation's directory (so that commands reading runs can tell one apart)."""

from __future__ import annotations

import os
import re
from pathlib import Path

CACHE_ENV = "FMNIST_CACHE"
CV_JSON = "cv.json"  # a cross-validation's results, in its --out directory (fmnist.cv.store)


def cv_dir_note(path: Path) -> str | None:
    """What to say of `path` when it is a cross-validation's directory rather than a training run's; else None."""
    if not (Path(path) / CV_JSON).is_file():
        return None
    return (f"{path} is a cross-validation (its results are in {CV_JSON} and report.md, re-drawn by running the same "
            "`fmnist cv` command again), which keeps no model; train one with `fmnist train RECIPE`")


def cache_root() -> Path:
    """The project's cache: $FMNIST_CACHE, else $XDG_CACHE_HOME/fmnist, else ~/.cache/fmnist.

    Datasets (digests, decoded arrays, downloads) and built kernels live under it.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fmnist"


def safe_name(name: str) -> str:
    """`name` (a recipe or class name) usable as a file name: anything but [A-Za-z0-9._-] becomes `_`."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
