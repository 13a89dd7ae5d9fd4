"""The run report: report.md in a run directory, one page a person reads, re-rendered from the saved files.

`render_run_report` reads the run as a typed RunRecord (fmnist.rundir), re-draws the figures that derive from
its files (learning curves, confusion matrix), keeps the ones that need the model and the test images (montage,
misclassified), and writes report.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fmnist.data.splits import describe_validation
from fmnist.fileio import write_text
from fmnist.plots.evaluation import plot_confusion_matrix
from fmnist.plots.training import plot_learning_curves
from fmnist.recipes import RECIPES
from fmnist.reports.markdown import NONE, fmt, table
from fmnist.rundir import MODEL_FILE, REPORT_FILE, RunRecord, load_run

# Figures in the order the report shows them, with their captions.
FIGURES = {
    "learning_curves.png": "Learning curves (loss and accuracy per epoch)",
    "confusion_matrix.png": "Confusion matrix on the test set (rows true, columns predicted)",
    "montage.png": "Random test images with the predicted class: green when right, red when wrong",
    "misclassified.png": "Misclassified test images with the highest loss (true → predicted (loss))",
}


def title(run: RunRecord) -> str:
    """The page title: "<recipe> on <dataset>"."""
    return f"{run.config.recipe.name} on {run.metrics.dataset or run.config.dataset}"


def _validation(run: RunRecord) -> str:
    return run.metrics.validation or run.config.recipe.validation


def _headline(run: RunRecord) -> list[str]:
    """The result table: accuracy, loss, time, protocol, and the seed's figure beside ours."""
    m, cfg, recipe = run.metrics, run.config, run.config.recipe
    epochs = run.epochs
    seconds = m.train_seconds
    acc = m.test_accuracy * 100
    tested = m.test_images
    rows = [
        ("test accuracy", f"**{acc:.2f}%**" + (f" on {tested:,} test images" if tested else "")),
        ("test loss", fmt(m.test_loss, ".4f")),
        ("training time", f"{fmt(seconds, '.1f', suffix=' s')} for {epochs} epoch{'s' if epochs != 1 else ''} "
                          f"({fmt(None if seconds is None else seconds / epochs, '.1f', suffix=' s')} per epoch)"),
        ("validation", describe_validation(_validation(run), recipe.val_fraction)),
    ]
    if m.seed_reported is not None:
        note = f" ({recipe.reported_note})" if recipe.reported_note else ""
        label = f"seed {recipe.seed_doc} reported" if recipe.seed_doc else "seed reported"
        rows.append((label, f"{m.seed_reported:.2f}%{note}; ours is {acc - m.seed_reported:+.2f} points"))
    source = ", ".join(str(x) for x in (cfg.data_source, cfg.data_dir) if x)  # the directory: an image folder's name
    rows.append(("dataset", f"{m.dataset or cfg.dataset}" + (f" (source: {source})" if source else "")))
    if cfg.limit:
        rows.append(("training images", f"a random {cfg.limit} only (`--limit`): not comparable with the seed"))
    elif cfg.train_images:  # what the run trained on, whatever the recipe's description says of Fashion-MNIST
        rows.append(("training images", f"{cfg.train_images:,}"))
    if cfg.init:
        mixed = f", with {cfg.mix:,} Fashion-MNIST training images mixed in" if cfg.mix else ""
        rows.append(("fine-tuned", f"from the weights of {cfg.init}{mixed}"))
    device = m.device or cfg.options.device
    numerics = f" ({m.precision}, {m.threads} threads)" if m.precision and m.threads else ""
    rows.append(("device, seed", f"{device}{numerics}, seed {cfg.options.seed}"))
    return table(["", ""], rows)


def _recipe_table(run: RunRecord) -> list[str]:
    """The settings that produced the result (the recipe as the run resolved it, overrides included)."""
    recipe = run.config.recipe
    opt = recipe.optimizer
    optimizer = f"{opt.name}, lr {opt.lr:g}"
    for value, label in ((opt.momentum, "momentum"), (opt.weight_decay, "weight decay")):
        if value:
            optimizer += f", {label} {value:g}"
    if opt.nesterov:
        optimizer += ", Nesterov"
    if opt.norm_bias_lr != 1:
        optimizer += f", BatchNorm biases at {opt.norm_bias_lr:g}x the lr"
    sched = recipe.schedule
    params = ", ".join(f"{k} {getattr(sched, k):g}" for k in ("decay", "warmup", "final") if getattr(sched, k))
    aug = recipe.augment
    small = aug.small_epochs(recipe.epochs)
    augment = ", ".join(
        part for part, on in ((f"random crop (padding {aug.crop_padding})", aug.crop_padding),
                              ("alternating horizontal flip" if aug.alternate_flip else "horizontal flip", aug.flip),
                              (f"random erasing (p {aug.erase})", aug.erase),
                              (f"progressive resizing ({aug.resize[0]}x{aug.resize[0]} for the first {small} "
                               "epochs)" if small else "", small))
        if on
    )
    rows = [
        ("recipe", f"`{recipe.name}`: {recipe.description}"),
        ("model", f"`{recipe.model}` {json.dumps(recipe.model_args)}"),
        ("optimizer", optimizer),
        ("schedule", sched.name + (f" ({params})" if params else "")),
        ("batch size", str(recipe.batch_size)),
        ("epochs", _epochs(run)),
        ("augmentation", augment or "none"),
        ("label smoothing", f"{recipe.label_smoothing:g}"),
        ("weight EMA", f"decay {recipe.ema_decay:g}" if recipe.ema_decay else "none"),
        ("weight lookahead", f"decay {recipe.lookahead:g} every 5 steps" if recipe.lookahead else "none"),
        ("test-time augmentation", ", ".join(part for part, on in (("flip", recipe.tta_flip),
                                                                    (f"{recipe.tta_shift}-pixel shifts", recipe.tta_shift))
                                             if on) or "none"),
        ("input normalization", f"(pixel / 255 - {recipe.mean:g}) / {recipe.std:g}"),
    ]
    return table(["setting", "value"], rows)


def _epochs(run: RunRecord) -> str:
    """Epochs trained, with the catalogue recipe's own number beside it when the run changed it."""
    trained = run.epochs
    catalogue = RECIPES.get(run.config.recipe.name)
    planned = catalogue.epochs if catalogue is not None else run.config.recipe.epochs
    return f"{trained}" + (f" (the recipe's {planned})" if planned != trained else "")


def _history_table(history: list[dict[str, Any]]) -> list[str]:
    """One row per epoch: losses, accuracies in %, learning rate and seconds."""
    rows = [
        (r["epoch"], fmt(r.get("train_loss"), ".4f"), fmt(r.get("train_acc"), ".2f", 100, "%"), fmt(r.get("val_loss"), ".4f"),
         fmt(r.get("val_acc"), ".2f", 100, "%"), fmt(r.get("lr"), ".3g"), fmt(r.get("seconds"), ".1f"))
        for r in history
    ]
    return table(["epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds"], rows, "rrrrrrr")


def classification_table(report: dict[str, Any], digits: int = 4) -> list[str]:
    """The classification report as a markdown table: one row per class, then accuracy and the two averages."""

    def cells(name: str, row: dict[str, Any]) -> tuple:
        return (name, *(f"{row[k]:.{digits}f}" for k in ("precision", "recall", "f1")), row["support"])

    rows = [cells(row["class"], row) for row in report["per_class"]]
    rows.append(("**accuracy**", "", "", f"**{report['accuracy']:.{digits}f}**", report["macro_avg"]["support"]))
    rows += [cells("macro avg", report["macro_avg"]), cells("weighted avg", report["weighted_avg"])]
    return table(["class", "precision", "recall", "f1", "support"], rows, "lrrrr")


def run_report_markdown(run: RunRecord) -> str:
    """The text of report.md for a loaded run; figures are linked only when their file exists."""
    lines = [f"# {title(run)}", "",
             f"{run.finished:%Y-%m-%d %H:%M} · run directory `{run.run_dir.name}` · fmnist {run.fmnist_version}", "",
             "## Result", "", *_headline(run), "",
             "## Recipe", "", *_recipe_table(run), "",
             "## Classification report (test set)", "", *classification_table(run.metrics.report), "",
             "## Per-epoch history", "", *_history_table(run.history), ""]
    figures = [(f, caption) for f, caption in FIGURES.items() if (run.run_dir / f).is_file()]
    if figures:
        lines += ["## Figures", ""]
        for f, caption in figures:
            lines += [f"### {caption}", "", f"![{caption}]({f})", ""]
    model = run.run_dir / MODEL_FILE
    if model.is_file():
        lines += ["## Files", "", f"- [`{MODEL_FILE}`]({MODEL_FILE}) ({model.stat().st_size / 1e6:.2f} MB)",
                  "- [`config.json`](config.json), [`metrics.json`](metrics.json), [`history.csv`](history.csv)", ""]
    return "\n".join(lines)


def render_run_report(run_dir: str | os.PathLike) -> Path:
    """Re-draw the learning curves and confusion matrix from the saved files and write run_dir/report.md."""
    run = load_run(run_dir)
    val_label = "test set (monitoring)" if _validation(run) == "test" else "validation"
    plot_learning_curves(run.history, run.run_dir / "learning_curves.png", title=title(run), val_label=val_label)
    plot_confusion_matrix(run.metrics.confusion_matrix, run.metrics.classes, run.run_dir / "confusion_matrix.png")
    path = run.run_dir / REPORT_FILE
    write_text(path, run_report_markdown(run))
    return path


__all__ = ["NONE", "render_run_report", "run_report_markdown"]
