"""Classification metrics as pure functions over label arrays, and the per-epoch history file (history.csv)."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn import metrics as skm

from fmnist.errors import DataError
from fmnist.fileio import write_text

# history.csv columns, in file order. Accuracies are fractions (0..1); `seconds` is the epoch's wall time;
# val_* are empty when the run had no per-epoch validation.
HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


def _labels(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays as 1-D int64, checked to have the same length."""
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    return t, p


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of predictions equal to the true label (0..1); 0.0 for no examples."""
    t, p = _labels(y_true, y_pred)
    return float((t == p).mean()) if t.size else 0.0


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Counts [K, K] int64: row = true class, column = predicted class."""
    t, p = _labels(y_true, y_pred)
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside 0..{num_classes - 1}")
    # bincount over the flattened (true, pred) index: one pass, no per-class loop.
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_report(y_true: Any, y_pred: Any, classes: Sequence[str]) -> dict[str, Any]:
    """Per-class precision/recall/f1/support plus accuracy, macro and weighted averages (zero_division=0)."""
    t, p = _labels(y_true, y_pred)
    labels = list(range(len(classes)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    per_class = [
        {"class": str(name), "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(classes)
    ]

    def average(kind: str) -> dict[str, float | int]:
        pr, rc, f, _ = skm.precision_recall_fscore_support(t, p, labels=labels, average=kind, zero_division=0)
        return {"precision": float(pr), "recall": float(rc), "f1": float(f), "support": int(support.sum())}

    return {"per_class": per_class, "accuracy": accuracy(t, p), "macro_avg": average("macro"), "weighted_avg": average("weighted")}


def format_report(report: dict[str, Any], digits: int = 4) -> str:
    """The report as plain text laid out like sklearn's `classification_report`."""
    names = [row["class"] for row in report["per_class"]] + ["weighted avg"]
    width = max(len(n) for n in names)
    head = ["precision", "recall", "f1-score", "support"]
    lines = [" " * width + " " + "".join(f"{h:>10}" for h in head), ""]

    def line(name: str, row: dict[str, Any]) -> str:
        values = "".join(f"{row[k]:>10.{digits}f}" for k in ("precision", "recall", "f1"))
        return f"{name:>{width}} {values}{row['support']:>10}"

    lines += [line(row["class"], row) for row in report["per_class"]]
    total = report["macro_avg"]["support"]
    lines += ["", f"{'accuracy':>{width}} {'':>20}{report['accuracy']:>10.{digits}f}{total:>10}"]
    lines += [line("macro avg", report["macro_avg"]), line("weighted avg", report["weighted_avg"])]
    return "\n".join(lines) + "\n"


def report_markdown(report: dict[str, Any], digits: int = 4) -> str:
    """The report as a markdown table: one row per class, then accuracy and the two averages."""

    def cells(name: str, row: dict[str, Any]) -> str:
        values = " | ".join(f"{row[k]:.{digits}f}" for k in ("precision", "recall", "f1"))
        return f"| {name.replace('|', '/')} | {values} | {row['support']} |"

    lines = ["| class | precision | recall | f1 | support |", "|---|---:|---:|---:|---:|"]
    lines += [cells(row["class"], row) for row in report["per_class"]]
    lines.append(f"| **accuracy** | | | **{report['accuracy']:.{digits}f}** | {report['macro_avg']['support']} |")
    lines.append(cells("macro avg", report["macro_avg"]))
    lines.append(cells("weighted avg", report["weighted_avg"]))
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    """One CSV cell: empty for missing/NaN, repr for floats (exact round trip)."""
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
