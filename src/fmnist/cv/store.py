"""Cross-validation on disk: each finished fold is OUT/folds/<recipe>/r<repeat>-f<fold>.json, written
atomically once the fold has finished, so an interrupted fold leaves nothing behind (at most a temporary file,
which is ignored and cleaned). A rerun reads a fold back instead of retraining it when its file records the same
recipe, data, limit, fold and training seed.
"""

from __future__ import annotations

import json
from pathlib import Path

from fmnist.cv.folds import Fold
from fmnist.cv.results import FoldResult, FoldTask
from fmnist.paths import safe_name

CV_JSON = "cv.json"
FOLDS_DIR = "folds"


def fold_path(out: Path, recipe: str, fold: Fold) -> Path:
    """OUT/folds/<recipe>/r<repeat>-f<fold>.json."""
    return Path(out) / FOLDS_DIR / safe_name(recipe) / f"{fold.key}.json"


def read_finished(path: Path, task: FoldTask) -> tuple[FoldResult | None, str | None]:
    """The fold result saved at `path` if it stands for `task`; else None and why (None when there is no file)."""
    try:
        result = FoldResult.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, f"{path}: unreadable or incomplete; retraining the fold"
    reason = result.mismatch(task)
    if reason:
        return None, f"{path}: made with {reason}; retraining the fold"
    result.reused = True
    return result, None


def checkpoint_path(out: Path, recipe: str, fold: Fold) -> Path:
    """OUT/folds/<recipe>/r<repeat>-f<fold>.checkpoint.safetensors: a fold's training state while it trains."""
    return Path(out) / FOLDS_DIR / safe_name(recipe) / f"{fold.key}.checkpoint.safetensors"


def clean_temp_files(out: Path) -> int:
    """Delete temporary files an interrupted run left in OUT (fileio's atomic writes name them `.<name>.*`)."""
    removed = 0
    for pattern in (f"{FOLDS_DIR}/*/.*.tmp", ".*.tmp", ".*.png"):
        for tmp in Path(out).glob(pattern):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
