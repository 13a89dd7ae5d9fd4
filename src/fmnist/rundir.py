"""A run directory as one typed record: config.json, history.csv and metrics.json written and read back together.

    config.json   RunConfig.to_dict() + {"fmnist_version", "created"}      written before training starts
    history.csv   one EpochStats row per epoch (HISTORY_FIELDS)              written when training ends
    metrics.json  RunMetrics.to_dict(): test figures, report, timings        written last: a run with it is finished

`load_run` parses and checks all three into a `RunRecord`; reports, `fmnist evaluate` and `fmnist runs` read that,
never the raw dicts. Directories written by earlier versions of this code load too (fields added since default).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shlex
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fmnist import __version__
from fmnist.checkpoint import CHECKPOINT_FILENAME
from fmnist.config import RunConfig
from fmnist.errors import DataError, FmnistError, UsageError
from fmnist.fileio import remove_tree, write_json, write_text
from fmnist.paths import cv_dir_note
from fmnist.runlock import training_pid

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.safetensors"
REPORT_FILE = "report.md"
PREVIOUS_SUFFIX = ".previous"  # a run set aside by `train --overwrite`: .NAME.previous beside NAME

# history.csv columns, in file order. Accuracies are fractions (0..1); `seconds` is the epoch's wall time;
# val_* are empty when the run had no per-epoch validation.
HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
REPORT_KEYS = ("per_class", "accuracy", "macro_avg", "weighted_avg")


REPORT_FIGURES = ("precision", "recall", "f1", "support")
_NUMBER_FIELDS = ("test_loss", "train_seconds", "seconds_per_epoch", "epochs", "seed_reported", "threads")
_TEXT_FIELDS = ("dataset", "validation", "validation_note", "device", "precision")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunMetrics:
    """metrics.json: the test figures of the saved model, its classification report, and how training went."""

    classes: list[str]
    test_accuracy: float  # a fraction, 0..1
    report: dict[str, Any]  # fmnist.metrics.classification_report
    confusion_matrix: list[list[int]]  # rows true, columns predicted
    test_loss: float | None = None
    dataset: str = ""
    train_seconds: float | None = None
    seconds_per_epoch: float | None = None
    epochs: int | None = None
    validation: str = ""
    validation_note: str = ""
    seed_reported: float | None = None  # the seed's reported test accuracy, in percent
    device: str = ""
    precision: str = ""
    threads: int | None = None
    fused_kernels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @property
    def test_images(self) -> int | None:
        """How many test images the accuracy was measured on (the classification report's total support)."""
        support = (self.report.get("macro_avg") or {}).get("support") if isinstance(self.report, dict) else None
        return support if isinstance(support, int) and support > 0 else None

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = METRICS_FILE) -> RunMetrics:
        """Parse and check metrics.json's content; DataError naming the file and the problem."""
        missing = [k for k in ("classes", "test_accuracy", "confusion_matrix", "report") if k not in d]
        if missing:
            raise DataError(f"{where}: keys {missing} missing; re-create the run's metrics by training (or evaluating) again")
        if not isinstance(d["test_accuracy"], (int, float)) or isinstance(d["test_accuracy"], bool):
            raise DataError(f"{where}: test_accuracy must be a number (a fraction 0..1)")
        classes = d["classes"]
        if not isinstance(classes, list) or not classes:
            raise DataError(f"{where}: classes must be a non-empty list of names")
        k = len(classes)
        cm = d["confusion_matrix"]
        if not (isinstance(cm, list) and len(cm) == k and all(isinstance(r, list) and len(r) == k for r in cm)):
            raise DataError(f"{where}: confusion_matrix is not a {k}x{k} list of rows for the {k} classes")
        report = d["report"]
        if not isinstance(report, dict) or any(key not in report for key in REPORT_KEYS):
            raise DataError(f"{where}: report must be a classification report with keys {list(REPORT_KEYS)}")
        if not all(_number(v) for row in cm for v in row):
            raise DataError(f"{where}: confusion_matrix cells must be counts")
        if not (_number(report["accuracy"]) and isinstance(report["per_class"], list)
                and all(isinstance(row, dict) and all(_number(row.get(m)) for m in REPORT_FIGURES)
                        for row in [*report["per_class"], report["macro_avg"], report["weighted_avg"]])):
            raise DataError(f"{where}: report is not a classification report (each class and average needs numbers "
                            f"for {', '.join(REPORT_FIGURES)})")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in d.items() if key in names and value is not None}
        wrong = [key for key in _NUMBER_FIELDS if key in values and not _number(values[key])]
        wrong += [key for key in _TEXT_FIELDS if key in values and not isinstance(values[key], str)]
        if wrong:
            raise DataError(f"{where}: {', '.join(wrong)} of the wrong type (a number or text was expected); re-create "
                            "the run's metrics by training (or evaluating) again")
        values["classes"] = [str(c) for c in classes]
        try:
            return cls(**values)
        except TypeError as e:
            raise DataError(f"{where}: {e}") from None


@dataclass(frozen=True)
class RunRecord:
    """The saved files of one training run, parsed and checked."""

    run_dir: Path
    config: RunConfig
    history: list[dict[str, Any]]  # history.csv rows (HISTORY_FIELDS; missing values None)
    metrics: RunMetrics
    fmnist_version: str  # the version that wrote config.json
    created: str  # when training started, "YYYY-mm-dd HH:MM:SS" local time
    finished: datetime  # when metrics.json was written: the end of the run

    @property
    def model_path(self) -> Path:
        return self.run_dir / MODEL_FILE

    @property
    def epochs(self) -> int:
        """Epochs trained."""
        return self.metrics.epochs or len(self.history)


def write_config(run_dir: Path, config: RunConfig) -> None:
    """config.json: the resolved recipe and options, with the version and start time."""
    created = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(run_dir / CONFIG_FILE, config.to_dict() | {"fmnist_version": __version__, "created": created})


def write_results(run_dir: Path, history: Sequence[dict[str, Any]], metrics: RunMetrics) -> None:
    """history.csv, then metrics.json (its presence marks a finished run)."""
    write_history(run_dir / HISTORY_FILE, history)
    write_json(run_dir / METRICS_FILE, metrics.to_dict())


def check_directory_path(path: Path, what: str = "the run", flag: str = "--out") -> None:
    """A UsageError (a sentence, never an errno) when `path` cannot be made a directory: it is a file, or a file
    stands where one of its parent directories should be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; name a directory for {what}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{flag} {path}: {parent} is a file, not a directory; name a path inside a directory")
            return


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds a finished run (config.json and metrics.json)."""
    return (path / CONFIG_FILE).is_file() and (path / METRICS_FILE).is_file()


def previous_run(run_dir: Path) -> Path:
    """Where `fmnist train --overwrite` keeps the run it replaces until the new one is written (beside it, hidden)."""
    return run_dir.parent / f".{run_dir.name}{PREVIOUS_SUFFIX}"


def set_aside(directory: Path, finished: bool, what: str = "the run") -> None:
    """Move `directory` to previous_run(directory) while an --overwrite replacement is made in its place; the caller
    deletes it once the replacement is written. Where a set-aside one exists already, `directory` is the replacement
    it was set aside for: left unfinished (`finished` False), it is deleted and the one set aside is kept; finished,
    the stale set-aside one is deleted first. UsageError when `directory` cannot be moved (`--out .`, a mount point),
    which leaves it untouched."""
    previous = previous_run(directory)
    if previous.exists() and not finished:
        remove_tree(directory)  # a replacement that did not finish: the one it replaced is the one to keep
        return
    if previous.exists():
        remove_tree(previous)  # left by an earlier replacement that finished all but its cleanup (a link: itself)
    try:
        directory.rename(previous)
    except OSError as e:
        raise UsageError(f"--out {directory}: {what} there cannot be set aside while its replacement is made "
                         f"({e.strerror}); move it yourself, or pass another --out") from None


def drop_previous(directory: Path) -> None:
    """Delete what `set_aside` moved beside `directory`, once its replacement is written; where it cannot be deleted
    it stays (the next --overwrite deletes it)."""
    with contextlib.suppress(OSError):
        remove_tree(previous_run(directory), missing_ok=True)


def replaced_by(path: Path) -> Path | None:
    """The run directory that `path` was set aside for (the inverse of `previous_run`), or None."""
    name = path.name
    if name.startswith(".") and name.endswith(PREVIOUS_SUFFIX) and len(name) > len(PREVIOUS_SUFFIX) + 1:
        return path.parent / name[1 : -len(PREVIOUS_SUFFIX)]
    return None


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read and check config.json, history.csv and metrics.json of a run directory."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        parent = run_dir.parent if is_run_dir(run_dir.parent) else None
        hint = f" (the run holding it is {parent})" if parent else ""
        raise DataError(f"{run_dir} is a file, not a run directory; pass the directory `fmnist train` wrote{hint}")
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory; pass a directory written by `fmnist train`")
    if not (run_dir / CONFIG_FILE).exists() and cv_dir_note(run_dir):
        raise DataError(cv_dir_note(run_dir))
    config_path = run_dir / CONFIG_FILE
    raw = read_json(config_path)
    try:
        config = RunConfig.from_dict(raw)
    except FmnistError as e:
        raise DataError(f"{config_path}: not a run configuration ({e})") from None
    metrics_path = run_dir / METRICS_FILE
    metrics = RunMetrics.from_dict(read_json(metrics_path), str(metrics_path))
    history = read_history(run_dir / HISTORY_FILE)
    if not history:
        raise DataError(f"{run_dir / HISTORY_FILE}: no epochs recorded; the run did not finish an epoch")
    return RunRecord(run_dir, config, history, metrics, str(raw.get("fmnist_version", "?")), str(raw.get("created", "")),
                     datetime.fromtimestamp(metrics_path.stat().st_mtime))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or a DataError naming the file and the problem."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file missing; the run directory must be one written by `fmnist train`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}); re-create it by training again") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def write_history(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Write per-epoch rows to history.csv (HISTORY_FIELDS columns; missing values empty), atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_FIELDS)
    for row in rows:
        writer.writerow([_cell(row.get(k)) for k in HISTORY_FIELDS])
    write_text(path, buf.getvalue())


def read_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a history.csv: `epoch` as int, other columns as float, empty cells as None."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: history file not found; it is written by `fmnist train` into the run directory") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file ({HISTORY_FILE} is CSV); re-create it by training again") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [k for k in HISTORY_FIELDS if k not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: not a history file, columns {missing} missing; expected header {','.join(HISTORY_FIELDS)}")
    rows = []
    for line_no, raw in enumerate(reader, start=2):
        try:
            row: dict[str, Any] = {k: (float(raw[k]) if raw[k] not in ("", None) else None) for k in HISTORY_FIELDS}
            row["epoch"] = int(row["epoch"]) if row["epoch"] is not None else None
        except ValueError:
            raise DataError(f"{path}, line {line_no}: a value is not a number; fix or re-create the file by training again") from None
        if row["epoch"] is None:
            raise DataError(f"{path}, line {line_no}: the epoch column is empty")
        rows.append(row)
    return rows


def find_runs(root: str | os.PathLike) -> tuple[list[RunRecord], list[str]]:
    """Every finished run directory under `root` (itself included), and one line per run that could not be read."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file, not a directory; pass the directory that holds your runs (default runs/)")
    if not root.is_dir():
        raise DataError(f"{root}: no such directory; pass the directory that holds your runs (default runs/)")
    records, problems = [], []
    candidates = [root] if is_run_dir(root) else []
    candidates += sorted(p.parent for p in root.rglob(METRICS_FILE) if p.parent != root and (p.parent / CONFIG_FILE).is_file())
    # Runs whose training stopped (Ctrl-C, a crash, a lost machine) before the end: named, with how to finish them.
    for checkpoint in sorted(root.rglob(CHECKPOINT_FILENAME)):
        path = checkpoint.parent
        if not (path / METRICS_FILE).exists() and (path / CONFIG_FILE).is_file() and replaced_by(path) is None:
            pid = training_pid(path)
            if pid is not None:
                problems.append(f"{path}: training now{f' (pid {pid})' if pid > 0 else ''}; listed once it finishes")
            else:
                problems.append(f"{path}: unfinished, its training stopped at a checkpoint; "
                                f"`fmnist train --resume {shlex.quote(str(path))}` finishes it")
    for path in candidates:
        replacement = replaced_by(path)
        if replacement is not None:
            problems.append(f"{path}: the run `fmnist train --overwrite` set aside for {replacement}, deleted once "
                            f"that run is written (if its training stopped: `fmnist train --resume "
                            f"{shlex.quote(str(replacement))}` finishes it, or move {path} back to keep the old run)")
            continue
        try:
            records.append(load_run(path))
        except DataError as e:
            problems.append(str(e))
    return records, problems


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys: {"recipe": {"optimizer": {"lr": 0.1}}} -> {"recipe.optimizer.lr": 0.1}."""
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def config_differences(a: RunRecord, b: RunRecord) -> dict[str, tuple[Any, Any]]:
    """The config settings in which two runs differ, by dotted key: (a's value, b's value); missing is None."""
    fa, fb = flatten(a.config.to_dict()), flatten(b.config.to_dict())
    return {k: (fa.get(k), fb.get(k)) for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)}
