"""A training run, end to end: data -> fit -> model file -> test evaluation -> metrics, plots, report.

`train_run` is what `fmnist train` calls; it returns the results and writes the run directory:
config.json, history.csv, metrics.json, model.safetensors, learning_curves.png, confusion_matrix.png,
montage.png, misclassified.png and report.md. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist import __version__
from fmnist.data import Dataset, load_dataset
from fmnist.engine.trainer import Callbacks, TrainOptions, TrainResult, fit
from fmnist.errors import UsageError
from fmnist.fileio import write_json
from fmnist.recipes import Recipe


@dataclass(frozen=True)
class RunConfig:
    """Everything one `fmnist train` needs, saved as config.json beside the results."""

    recipe: Recipe
    options: TrainOptions = TrainOptions()
    dataset: str = "fashion-mnist"
    data_dir: Path | None = None
    limit: int | None = None  # use only this many training images (a seeded random subset)
    out: Path | None = None  # run directory; default runs/<recipe>-<timestamp>

    def to_dict(self) -> dict:
        """JSON-ready form of the config."""
        options = dataclasses.asdict(self.options) | {
            "dataset": self.dataset,
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "limit": self.limit,
        }
        return {"recipe": self.recipe.to_dict(), "options": options}


@dataclass
class RunResult:
    """What a run produced."""

    run_dir: Path
    metrics: dict
    train: TrainResult


def default_run_dir(recipe: str, root: Path = Path("runs")) -> Path:
    """runs/<recipe>-<YYYYmmdd-HHMMSS>, made unique if that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{recipe}-{stamp}"
    i = 1
    while path.exists():
        path = root / f"{recipe}-{stamp}-{i}"
        i += 1
    return path


def subset(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of `n` examples (all of them if n >= len)."""
    if n >= len(labels):
        return images, labels
    idx = np.sort(np.random.default_rng(seed).permutation(len(labels))[:n])
    return images[idx], labels[idx]


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) holding out `fraction` of each class, seeded."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = max(1, int(round(len(idx) * fraction)))
        val_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def split_for_validation(
    recipe: Recipe, images: np.ndarray, labels: np.ndarray, test: tuple[np.ndarray, np.ndarray], seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """The (train, validation) pair for the recipe's validation protocol."""
    if recipe.validation == "test":
        return (images, labels), test
    if recipe.validation == "holdout":
        tr, va = holdout_split(labels, recipe.val_fraction, seed)
        return (images[tr], labels[tr]), (images[va], labels[va])
    if recipe.validation == "none":
        return (images, labels), None
    raise UsageError(f"unknown validation protocol {recipe.validation!r}; use test, holdout or none")


def describe_validation(recipe: Recipe) -> str:
    """One plain sentence saying what the per-epoch validation figures are."""
    if recipe.validation == "test":
        return "per-epoch validation on the test set, for monitoring only (nothing is selected on it), as the seed did"
    if recipe.validation == "holdout":
        return f"per-epoch validation on a held-out {recipe.val_fraction:.0%} of the training set (stratified, seeded)"
    return "no per-epoch validation"


def train_run(cfg: RunConfig, callbacks: Callbacks | None = None, dataset: Dataset | None = None) -> RunResult:
    """Train cfg.recipe, save the model, evaluate it on the test set and write the run directory."""
    from fmnist.checkpoint import ModelMeta, save_model
    from fmnist.predictor import Predictor, evaluate

    ds = dataset or load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    recipe = cfg.recipe
    images, labels = ds.train.images, ds.train.labels
    if cfg.limit:
        images, labels = subset(images, labels, cfg.limit, cfg.options.seed)
    test = (ds.test.images, ds.test.labels)
    train, val = split_for_validation(recipe, images, labels, test, cfg.options.seed)

    run_dir = Path(cfg.out) if cfg.out else default_run_dir(recipe.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = cfg.to_dict()
    config["options"] |= {"data_source": ds.source, "train_images": len(train[1])}
    config["fmnist_version"] = __version__
    config["created"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(run_dir / "config.json", config)

    result = fit(recipe, train, val, cfg.options, num_classes=len(ds.classes), callbacks=callbacks)

    meta = ModelMeta.for_recipe(recipe, list(ds.classes), dataset=ds.name, dataset_checksum=ds.checksum)
    # The test figures come from the same code path as `fmnist evaluate` (fp32, eval mode), so evaluating
    # the saved file later reproduces them exactly.
    predictor = Predictor(result.model, meta, device=result.device)
    ev = evaluate(predictor, *test)
    metrics = test_metrics(ds, recipe, result, ev)
    meta = dataclasses.replace(meta, metrics={"test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"]})
    save_model(run_dir / "model.safetensors", result.model, meta)
    write_outputs(run_dir, ds, result, ev, metrics)
    return RunResult(run_dir, metrics, result)


def test_metrics(ds: Dataset, recipe: Recipe, result: TrainResult, ev: dict) -> dict:
    """metrics.json: test accuracy/loss, the classification report, the confusion matrix, timings."""
    from fmnist.metrics import classification_report, confusion_matrix

    y_true = ds.test.labels
    return {
        "dataset": ds.name,
        "classes": list(ds.classes),
        "test_accuracy": ev["accuracy"],
        "test_loss": ev["loss"],
        "report": classification_report(y_true, ev["y_pred"], list(ds.classes)),
        "confusion_matrix": confusion_matrix(y_true, ev["y_pred"], len(ds.classes)).tolist(),
        "train_seconds": result.seconds,
        "seconds_per_epoch": result.seconds / max(1, len(result.history)),
        "epochs": len(result.history),
        "validation": recipe.validation,
        "validation_note": describe_validation(recipe),
        "seed_reported": recipe.reported,
        "device": str(result.device),
        "precision": result.precision,
        "threads": result.threads,
        "fused_kernels": result.extras.get("fused_kernels", []),
    }


def write_outputs(run_dir: Path, ds: Dataset, result: TrainResult, ev: dict, metrics: dict) -> None:
    """history.csv, metrics.json, the figures and report.md."""
    from fmnist.metrics import write_history
    from fmnist.plots.evaluation import plot_confusion_matrix, plot_misclassified, plot_montage
    from fmnist.plots.training import plot_learning_curves
    from fmnist.report import render_run_report

    history = [h.as_dict() for h in result.history]
    write_history(run_dir / "history.csv", history)
    write_json(run_dir / "metrics.json", metrics)

    images, labels, classes = ds.test.images, ds.test.labels, list(ds.classes)
    y_pred, y_prob = ev["y_pred"], ev["y_prob"]
    plot_learning_curves(history, run_dir / "learning_curves.png", title=f"{result_title(metrics)}")
    plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), classes, run_dir / "confusion_matrix.png")
    pick = np.random.default_rng(0).choice(len(labels), size=min(16, len(labels)), replace=False)
    plot_montage(images[pick], labels[pick], y_pred[pick], classes, run_dir / "montage.png")
    losses = -np.log(np.clip(y_prob[np.arange(len(labels)), labels], 1e-12, None))
    plot_misclassified(images, labels, y_pred, losses, classes, run_dir / "misclassified.png")
    render_run_report(run_dir)


def result_title(metrics: dict) -> str:
    """A short title: dataset and test accuracy."""
    return f"{metrics['dataset']}: test accuracy {metrics['test_accuracy'] * 100:.2f}%"
