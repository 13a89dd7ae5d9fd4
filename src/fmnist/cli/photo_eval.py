"""`fmnist evaluate MODEL --images DIR`: accuracy, classification report and a montage on a folder of your images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fmnist.cli.common import err, out, print_json
from fmnist.fileio import write_json
from fmnist.imaging import check_mode
from fmnist.imaging.folder import read_image_folder
from fmnist.inference import BasePredictor
from fmnist.metrics import classification_report, format_report
from fmnist.paths import safe_name
from fmnist.plots.photos import plot_photo_montage

MONTAGE_TILES = 48  # at most this many photos in the montage: every mistake first, then the rest in order


def evaluate_folder(predictor: BasePredictor, model: Path, images: Path, mode: str, out_dir: Path | None, as_json: bool) -> None:
    """Score `predictor` on DIR/<class>/*: print the report, write the montage and results.json."""
    check_mode(mode)
    classes = list(predictor.classes)
    folder = read_image_folder(images, classes, mode)
    probs = predictor.predict_proba(folder.images)
    preds = probs.argmax(1)
    confident = probs.max(1) >= predictor.threshold
    correct = preds == folder.labels
    report = classification_report(folder.labels, preds, classes)
    out_dir = out_dir or Path("runs") / f"evaluate-{safe_name(images.resolve().name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    order = np.concatenate([np.flatnonzero(~correct), np.flatnonzero(correct)])[:MONTAGE_TILES]
    montage = plot_photo_montage([folder.thumbnails[i] for i in order], folder.images[order], folder.labels[order],
                                 preds[order], confident[order], classes, out_dir / "montage.png")
    per_image = [{"path": p, "label": classes[int(y)], "predicted": classes[int(k)], "probability": float(pr.max()),
                  "confident": bool(c), "preprocess": m}
                 for p, y, k, pr, c, m in zip(folder.paths, folder.labels, preds, probs, confident, folder.modes)]
    result = {
        "model": str(model), "images": str(images), "count": len(folder.labels), "accuracy": float(correct.mean()),
        "confident": float(confident.mean()), "confident_accuracy": float(correct[confident].mean()) if confident.any() else None,
        "preprocess": {m: folder.modes.count(m) for m in sorted(set(folder.modes))},
        "skipped": [{"path": p, "error": why} for p, why in folder.skipped], "report": report,
        "montage": str(montage), "predictions": per_image,
    }
    write_json(out_dir / "results.json", result)
    if as_json:
        print_json(result)
        return
    for path, why in folder.skipped:
        err.print(f"skipped: {why}", markup=False, soft_wrap=True)
    out.print(format_report(report), markup=False)
    modes = ", ".join(f"{n} {m}" for m, n in result["preprocess"].items())
    out.print(f"accuracy {result['accuracy'] * 100:.2f}% on {result['count']} images of {images} ({modes}; "
              f"{len(folder.skipped)} skipped); {result['confident'] * 100:.0f}% confident", markup=False)
    shown = "" if len(order) == len(preds) else f" ({len(order)} of {len(preds)} images: the mistakes first)"
    out.print(f"montage: {montage}{shown}", markup=False, soft_wrap=True)
