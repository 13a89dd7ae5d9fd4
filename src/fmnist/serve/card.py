"""What the service says about its model: the facts (/v1/model), the model card with its confusion matrix
(/v1/card), and a gallery of test-set images to try (/v1/gallery), all built once at start-up."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import __version__
from fmnist.data import Split, load_split
from fmnist.data.registry import FOLDER
from fmnist.errors import FmnistError, UsageError
from fmnist.imaging import encode_image
from fmnist.imaging.folder import load_folder
from fmnist.inference import BasePredictor
from fmnist.metrics import confusion_matrix
from fmnist.recipes import changes
from fmnist.rundir import is_run_dir, load_run

GALLERY_PER_CLASS = 2


@dataclass
class ModelCard:
    info: dict[str, Any]  # /v1/model
    card: dict[str, Any]  # /v1/card: accuracy, per-class recall, confusion matrix (when known)
    gallery: list[dict[str, Any]] = field(default_factory=list)  # /v1/gallery items: label, name, png (base64)


def png_base64(image: np.ndarray) -> str:
    """A uint8 [H, W] image as base64 PNG."""
    return base64.b64encode(encode_image(image)).decode("ascii")


def build_card(predictor: BasePredictor, model: str, run_metrics: dict[str, Any] | None = None,
               test: Split | None = None, train_images: int | None = None) -> ModelCard:
    """The card of `predictor`'s model (named `model`), from its run's metrics when given (a run directory),
    else measured here on `test` (the model's test split, when it is available); the gallery comes from `test`.
    The recipe is described as it trained: the catalogue's description, with the settings the run changed
    (`changes`) and, from a run directory, the number of training images."""
    meta = predictor.meta
    recipe = meta.recipe or {}
    metrics = dict(meta.metrics or {})
    if run_metrics:
        metrics.update({k: v for k, v in run_metrics.items() if k in ("test_accuracy", "test_loss")})
    usable = test is not None and len(test) > 0 and len(test.classes) == len(meta.classes)
    info = {
        "model": model, "architecture": meta.model, "recipe": recipe.get("name"),
        "description": recipe.get("description"), "changes": changes(recipe), "train_images": train_images,
        "classes": list(meta.classes),
        "test_accuracy": metrics.get("test_accuracy"), "dataset": meta.dataset,
        "input_size": list(meta.input_size), "tta_flip": meta.tta_flip, "tta_shift": meta.tta_shift, "confidence_threshold": predictor.threshold,
        "backend": predictor.backend, "trained_with": meta.version, "version": __version__, "created": meta.created,
    }
    card: dict[str, Any] = {"accuracy": metrics.get("test_accuracy"), "classes": list(meta.classes),
                            "confusion_matrix": None, "source": None}
    matrix = (run_metrics or {}).get("confusion_matrix")
    if matrix is not None and np.shape(matrix) == (len(meta.classes),) * 2:
        card.update(confusion_matrix=np.asarray(matrix).tolist(), source="the run's test-set evaluation")
    elif usable:
        y_pred = predictor.predict_proba(test.images).argmax(axis=1)
        card.update(confusion_matrix=confusion_matrix(test.labels, y_pred, len(meta.classes)).tolist(),
                    accuracy=float((y_pred == test.labels).mean()),  # on this machine's copy of the test set
                    source=f"measured at start-up on the {len(test):,} test images of {meta.dataset}")
    if card["confusion_matrix"] is not None:
        m = np.asarray(card["confusion_matrix"], dtype=np.float64)
        # null for a class with no test images: nothing was measured (0.0 would say it was never recognized)
        card["recall"] = [float(d / n) if n else None for d, n in zip(np.diag(m), m.sum(axis=1))]
    gallery = _gallery(test) if usable else []
    return ModelCard(info, card, gallery)


def _gallery(test: Split, per_class: int = GALLERY_PER_CLASS) -> list[dict[str, Any]]:
    """The first `per_class` test images of each class, class by class (deterministic)."""
    items = []
    for label, name in enumerate(test.classes):
        for i in np.flatnonzero(test.labels == label)[:per_class]:
            items.append({"index": int(i), "label": label, "name": name, "png": png_base64(test.images[i])})
    return items


def card_for(predictor: BasePredictor, model: Path, data_dir: Path | None = None) -> tuple[ModelCard, str | None]:
    """The card of a served model file or run directory, and a note when the test set is not on this machine (no
    gallery then; nothing is downloaded)."""
    run = load_run(model) if model.is_dir() and is_run_dir(model) else None
    run_metrics = run.metrics.to_dict() if run else None
    train_images = run.config.train_images if run else None
    try:
        if predictor.meta.dataset == FOLDER:  # the images its run held out of the folder it trained on
            folder = data_dir if data_dir is not None else (run.config.data_dir if run else None)
            if folder is None:
                raise UsageError("the model was trained on an image folder; pass that folder with --data-dir DIR")
            ds = load_folder(folder, list(predictor.meta.classes), run.config.options.seed if run else 0)
            if (data_dir is not None or run is None) and ds.checksum != predictor.meta.dataset_checksum:
                raise UsageError(f"{folder} is not the image folder the model trained on, as far as can be told "
                                 "here (a bare model file does not record its seed): serve its run directory")
            test = ds.test
        else:
            test = load_split("test", predictor.meta.dataset, data_dir=data_dir, download=False)
    except FmnistError as e:
        return build_card(predictor, model.name, run_metrics, train_images=train_images), f"no gallery: {e}"
    return build_card(predictor, model.name, run_metrics, test, train_images), None
