"""Cross-validation on disk: each finished fold is OUT/folds/<recipe>/r<repeat>-f<fold>.json, written
atomically once the fold has finished, so an interrupted fold leaves nothing behind (at most a temporary file,
which is ignored and cleaned). A rerun reads a fold back instead of retraining it when its file records the same
recipe, data, limit, fold and training seed.

An OUT that holds anything else is never mixed with this call's folds (`prepare_out`): a training run, files that
are not a cross-validation, or a cross-validation made with other options (recipes, folds, seed, data, --limit,
precision) is refused, the last one replaced whole with --overwrite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fmnist.cv.folds import Fold
from fmnist.cv.results import FoldResult, FoldTask, json_roundtrip
from fmnist.errors import UsageError
from fmnist.paths import CV_JSON, safe_name
from fmnist.fileio import remove_temporaries
from fmnist.rundir import CONFIG_FILE, METRICS_FILE, check_directory_path, flatten, previous_run, set_aside

FOLDS_DIR = "folds"


def fold_path(out: Path, recipe: str, fold: Fold) -> Path:
    """OUT/folds/<recipe>/r<repeat>-f<fold>.json."""
    return Path(out) / FOLDS_DIR / safe_name(recipe) / f"{fold.key}.json"


def read_finished(path: Path, task: FoldTask) -> tuple[FoldResult | None, str | None]:
    """The fold result saved at `path` if it stands for `task`; else None and why (None when there is no file)."""
    if path.is_dir():  # its results could not be written there, whatever was trained
        raise UsageError(f"{path} is a directory where the results of a fold belong; move it away, then run again")
    if path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"{path.parent} is a file where the folder of a recipe's folds belongs; move it away, then "
                         "run again")
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
    """Delete temporary files an interrupted run left in OUT and in its fold folders (fileio.remove_temporaries)."""
    out = Path(out)
    folders = [out, *(p for p in (out / FOLDS_DIR).glob("*") if p.is_dir())]
    return sum(len(remove_temporaries(folder)) for folder in folders)


# What each kind of fold mismatch (FoldResult.mismatch) says about the options that made it.
_OPTIONS_OF = {
    "a different fold": "other folds (--folds, --repeats)",
    "different held-out images": "other folds (--folds, --seed, --stratified, --repeats or --limit)",
    "different data": "other data (--dataset, --data-dir)",
    "a different --limit": "another --limit",
    "a different training seed": "another --seed",
    "a different precision": "another --precision",
}


def prepare_out(out: Path, tasks: list[FoldTask], overwrite: bool = False) -> None:
    """Check OUT before anything is written: empty or absent, or this very cross-validation (resumed); with
    `overwrite`, a cross-validation made with other options is deleted whole. Anything else is a UsageError."""
    out = Path(out)
    check_directory_path(out, "the cross-validation")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if (out / CONFIG_FILE).is_file() or (out / METRICS_FILE).is_file():
        raise UsageError(f"--out {out} holds a training run ({CONFIG_FILE}); name another directory for the cross-validation")
    if not (out / CV_JSON).is_file() and not (out / FOLDS_DIR).is_dir():
        raise UsageError(f"--out {out} holds files that are not a cross-validation; name a new or empty directory")
    if overwrite:
        # As `train --overwrite`: the cross-validation replaced waits beside OUT (.NAME.previous) until the new one
        # is written (run_cv deletes it then), so an interrupted replacement loses nothing. The same command again
        # continues that replacement (its finished folds are kept); one with other options starts it afresh.
        unfinished = previous_run(out).exists() and not (out / CV_JSON).is_file()
        if unfinished and difference(out, tasks) is None:
            return
        set_aside(out, finished=(out / CV_JSON).is_file(), what="the cross-validation")
        return
    problem = difference(out, tasks)
    if problem:
        raise UsageError(f"--out {out} holds a cross-validation made with {problem}; pass --overwrite to replace it, "
                         "or name another --out")


def difference(out: Path, tasks: list[FoldTask]) -> str | None:
    """How the folds saved in OUT differ from this call's `tasks` (None when each one is a fold of this call)."""
    out = Path(out)
    for task in tasks:  # this call's own folds first, in its order
        path = fold_path(out, task.recipe.name, task.fold)
        try:
            saved = FoldResult.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # none yet, or unreadable or incomplete: (re)trained, as read_finished says
        reason = saved.mismatch(task)
        where = path.relative_to(out)
        if reason == "a different recipe":
            return (f"recipe {task.recipe.name} set otherwise ({_recipe_change(saved.recipe_config, task.recipe.to_dict())}; "
                    f"{where})")
        if reason:
            return f"{_OPTIONS_OF.get(reason, reason)} ({where})"
    recipes = {safe_name(t.recipe.name) for t in tasks}
    keys = {t.fold.key for t in tasks}
    for path in sorted(out.glob(f"{FOLDS_DIR}/*/*.json")):  # then folds this call does not make
        if path.name.startswith("."):
            continue  # a temporary file an interrupted write left: cleaned, never read
        where = path.relative_to(out)
        if path.parent.name not in recipes:
            return f"recipe {path.parent.name}, which this call does not name ({where})"
        if path.stem not in keys:
            return f"other folds (--folds, --repeats): fold {path.stem} is not one of this call's ({where})"
    return None


def _recipe_change(saved: dict[str, Any], wanted: dict[str, Any]) -> str:
    """`epochs 1 there, 2 now`: the first settings in which two recipe configs differ."""
    a, b = flatten(saved or {}), flatten(json_roundtrip(wanted))
    changed = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    shown = ", ".join(f"{k} {a.get(k)!r} there, {b.get(k)!r} now" for k in changed[:3])
    return shown + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
