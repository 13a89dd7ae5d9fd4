"""Where fmnist keeps things on disk: the one cache root, and file names made safe from user strings."""

from __future__ import annotations

import os
import re
from pathlib import Path

CACHE_ENV = "FMNIST_CACHE"


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
