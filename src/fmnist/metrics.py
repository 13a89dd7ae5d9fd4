"""Classification metrics as pure functions over label arrays: accuracy, confusion matrix, classification report."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn import metrics as skm


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
    """Per-class precision/recall/f1/support plus accuracy, macro and weighted averages (zero_division=0). The macro
    average is over the classes present in `y_true` (all of them on a test set): a folder of a few classes'
    images is not averaged with zeros for the classes it does not hold."""
    t, p = _labels(y_true, y_pred)
    labels = list(range(len(classes)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    per_class = [
        {"class": str(name), "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(classes)
    ]

    present = [i for i in labels if support[i] > 0] or labels

    def average(kind: str) -> dict[str, float | int]:
        pr, rc, f, _ = skm.precision_recall_fscore_support(t, p, labels=present if kind == "macro" else labels,
                                                           average=kind, zero_division=0)
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
    present = sum(row["support"] > 0 for row in report["per_class"])
    if 0 < present < len(report["per_class"]):
        lines += ["", f"macro avg: over the {present} classes with images here (the rows of support 0 are not "
                      "averaged in)"]
    return "\n".join(lines) + "\n"
