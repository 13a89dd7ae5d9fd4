"""The run report: report.md in a run directory, one page a person reads, re-rendered from the saved files.

A run directory (written by the trainer) holds config.json, history.csv, metrics.json, the model and figures.
`render_run_report` re-draws the figures that derive from those files (learning curves, confusion matrix),
keeps the ones that need the model and the test images (montage, misclassified), and writes report.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fmnist.errors import DataError
from fmnist.fileio import write_text
from fmnist.metrics import read_history, report_markdown

REPORT_NAME = "report.md"
# Figures in the order the report shows them, with their captions.
FIGURES = {
    "learning_curves.png": "Learning curves (loss and accuracy per epoch)",
    "confusion_matrix.png": "Confusion matrix on the test set (rows true, columns predicted)",
    "montage.png": "Random test images with the predicted class: green when right, red when wrong",
    "misclassified.png": "Misclassified test images with the highest loss (true → predicted (loss))",
}
REPORT_KEYS = ("per_class", "accuracy", "macro_avg", "weighted_avg")
NONE = "—"


@dataclass(frozen=True)
class Run:
    """The saved files of one training run, parsed and checked."""

    run_dir: Path
    config: dict[str, Any]
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    finished: datetime  # when metrics.json was written: the end of the run

    @property
    def recipe(self) -> dict[str, Any]:
        return self.config.get("recipe") or {}

    @property
    def options(self) -> dict[str, Any]:
        return self.config.get("options") or {}


def _read_json(path: Path) -> dict[str, Any]:
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


def _check_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Raise DataError unless metrics.json has what the report and its figures need."""
    missing = [k for k in ("classes", "test_accuracy", "confusion_matrix", "report") if k not in metrics]
    if missing:
        raise DataError(f"{path}: keys {missing} missing; re-create the run's metrics by training (or evaluating) again")
    if not isinstance(metrics["test_accuracy"], (int, float)):
        raise DataError(f"{path}: test_accuracy must be a number (a fraction 0..1)")
    k = len(metrics["classes"])
    cm = metrics["confusion_matrix"]
    if not (isinstance(cm, list) and len(cm) == k and all(isinstance(r, list) and len(r) == k for r in cm)):
        raise DataError(f"{path}: confusion_matrix is not a {k}x{k} list of rows for the {k} classes")
    report = metrics["report"]
    if not isinstance(report, dict) or any(key not in report for key in REPORT_KEYS):
        raise DataError(f"{path}: report must be a classification report with keys {list(REPORT_KEYS)}")


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read and check config.json, history.csv and metrics.json of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory; pass a directory written by `fmnist train`")
    config = _read_json(run_dir / "config.json")
    if not isinstance(config.get("recipe"), dict):
        raise DataError(f"{run_dir / 'config.json'}: no 'recipe' object; not a run configuration")
    metrics_path = run_dir / "metrics.json"
    metrics = _read_json(metrics_path)
    _check_metrics(metrics_path, metrics)
    history = read_history(run_dir / "history.csv")
    if not history:
        raise DataError(f"{run_dir / 'history.csv'}: no epochs recorded; the run did not finish an epoch")
    return Run(run_dir, config, history, metrics, datetime.fromtimestamp(metrics_path.stat().st_mtime))


def _fmt(value: Any, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    """`value * scale` formatted with `spec`, or a dash when missing."""
    return NONE if value is None else f"{float(value) * scale:{spec}}{suffix}"


def validation_protocol(validation: str, val_fraction: float = 0.1) -> str:
    """The per-epoch validation protocol in plain words."""
    if validation == "test":
        return "per-epoch validation on the test set, for monitoring only (nothing was selected on it), as the seed did"
    if validation == "holdout":
        return f"per-epoch validation on a held-out {val_fraction:.0%} of the training set; the test set was used once, at the end"
    if validation == "none":
        return "no per-epoch validation; the test set was used once, at the end"
    return str(validation)


def _validation(run: Run) -> str:
    """The validation protocol the run used: metrics.json's word, else the options', else the recipe's."""
    return str(run.metrics.get("validation") or run.options.get("validation") or run.recipe.get("validation", ""))


def _title(run: Run) -> str:
    """The page title: "<recipe> on <dataset>"."""
    return f"{run.recipe.get('name', 'run')} on {run.metrics.get('dataset') or run.options.get('dataset', '?')}"


def _headline(run: Run) -> list[str]:
    """The result table: accuracy, loss, time, protocol, and the seed's figure beside ours."""
    m, options, recipe = run.metrics, run.options, run.recipe
    epochs = m.get("epochs") or len(run.history)
    seconds = m.get("train_seconds")
    acc = float(m["test_accuracy"]) * 100
    rows = [
        ("test accuracy", f"**{acc:.2f}%**"),
        ("test loss", _fmt(m.get("test_loss"), ".4f")),
        ("training time", f"{_fmt(seconds, '.1f', suffix=' s')} for {epochs} epochs "
                          f"({_fmt(None if seconds is None else seconds / epochs, '.1f', suffix=' s')} per epoch)"),
        ("validation", validation_protocol(_validation(run), recipe.get("val_fraction", 0.1))),
    ]
    reported = m.get("seed_reported")
    if reported is not None:
        note = f" ({recipe['reported_note']})" if recipe.get("reported_note") else ""
        label = f"seed {recipe['seed_doc']} reported" if recipe.get("seed_doc") else "seed reported"
        rows.append((label, f"{float(reported):.2f}%{note}; ours is {acc - float(reported):+.2f} points"))
    rows.append(("dataset", f"{m.get('dataset') or options.get('dataset', NONE)}"
                            + (f" (source: {options['data_source']})" if options.get("data_source") else "")))
    if options.get("limit"):
        rows.append(("training images", f"a random {options['limit']} only (`--limit`): not comparable with the seed"))
    device = m.get("device") or options.get("device", NONE)
    numerics = f" ({m['precision']}, {m['threads']} threads)" if m.get("precision") and m.get("threads") else ""
    rows.append(("device, seed", f"{device}{numerics}, seed {options.get('seed', NONE)}"))
    return ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def _recipe_table(run: Run) -> list[str]:
    """The settings that produced the result; command-line overrides in `options` win over the recipe."""
    recipe, options = run.recipe, run.options
    opt = recipe.get("optimizer") or {}
    lr = options.get("lr") if options.get("lr") is not None else opt.get("lr")
    optimizer = f"{opt.get('name', NONE)}, lr {lr:g}" if lr is not None else str(opt.get("name", NONE))
    for key, label in (("momentum", "momentum"), ("weight_decay", "weight decay")):
        if opt.get(key):
            optimizer += f", {label} {opt[key]:g}"
    if opt.get("nesterov"):
        optimizer += ", Nesterov"
    sched = recipe.get("schedule") or {}
    schedule = str(sched.get("name", "constant"))
    params = ", ".join(f"{k} {sched[k]:g}" for k in ("decay", "warmup", "final") if sched.get(k))
    aug = recipe.get("augment") or {}
    augment = ", ".join(
        part for part, on in ((f"random crop (padding {aug.get('crop_padding')})", aug.get("crop_padding")),
                              ("horizontal flip", aug.get("flip")), (f"random erasing (p {aug.get('erase')})", aug.get("erase")))
        if on
    )
    rows = [
        ("recipe", f"`{recipe.get('name', NONE)}`: {recipe.get('description', '')}"),
        ("model", f"`{recipe.get('model', NONE)}` {json.dumps(recipe.get('model_args') or {})}"),
        ("optimizer", optimizer),
        ("schedule", schedule + (f" ({params})" if params else "")),
        ("batch size", str(options.get("batch_size") or recipe.get("batch_size", NONE))),
        ("epochs", _epochs(run)),
        ("augmentation", augment or "none"),
        ("label smoothing", f"{recipe.get('label_smoothing', 0):g}"),
        ("weight EMA", f"decay {recipe['ema_decay']:g}" if recipe.get("ema_decay") else "none"),
        ("test-time flip", "yes" if recipe.get("tta_flip") else "no"),
        ("input normalization", f"(pixel / 255 - {recipe.get('mean', 0):g}) / {recipe.get('std', 1):g}"),
    ]
    return ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def _epochs(run: Run) -> str:
    """Epochs trained, with the recipe's own number beside it when the run changed it."""
    trained = run.metrics.get("epochs") or run.options.get("epochs") or len(run.history)
    planned = run.recipe.get("epochs")
    return f"{trained}" + (f" (the recipe's {planned})" if planned and planned != trained else "")


def _history_table(history: list[dict[str, Any]]) -> list[str]:
    """One row per epoch: losses, accuracies in %, learning rate and seconds."""
    lines = ["| epoch | train loss | train acc | val loss | val acc | lr | seconds |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in history:
        lines.append(f"| {r['epoch']} | {_fmt(r.get('train_loss'), '.4f')} | {_fmt(r.get('train_acc'), '.2f', 100, '%')} | "
                     f"{_fmt(r.get('val_loss'), '.4f')} | {_fmt(r.get('val_acc'), '.2f', 100, '%')} | "
                     f"{_fmt(r.get('lr'), '.3g')} | {_fmt(r.get('seconds'), '.1f')} |")
    return lines


def run_report_markdown(run: Run) -> str:
    """The text of report.md for a loaded run; figures are linked only when their file exists."""
    lines = [f"# {_title(run)}", "",
             f"{run.finished:%Y-%m-%d %H:%M} · run directory `{run.run_dir.name}` · fmnist {run.config.get('fmnist_version', '?')}", "",
             "## Result", "", *_headline(run), "",
             "## Recipe", "", *_recipe_table(run), "",
             "## Classification report (test set)", "", report_markdown(run.metrics["report"]).rstrip("\n"), "",
             "## Per-epoch history", "", *_history_table(run.history), ""]
    figures = [(f, caption) for f, caption in FIGURES.items() if (run.run_dir / f).is_file()]
    if figures:
        lines += ["## Figures", ""]
        for f, caption in figures:
            lines += [f"### {caption}", "", f"![{caption}]({f})", ""]
    model = run.run_dir / "model.safetensors"
    if model.is_file():
        lines += ["## Files", "", f"- [`model.safetensors`](model.safetensors) ({model.stat().st_size / 1e6:.2f} MB)",
                  "- [`config.json`](config.json), [`metrics.json`](metrics.json), [`history.csv`](history.csv)", ""]
    return "\n".join(lines)


def render_run_report(run_dir: str | os.PathLike) -> Path:
    """Re-draw the learning curves and confusion matrix from the saved files and write run_dir/report.md."""
    # Imported here: matplotlib is slow to import and only this function draws.
    from fmnist.plots.evaluation import plot_confusion_matrix
    from fmnist.plots.training import plot_learning_curves

    run = load_run(run_dir)
    classes = [str(c) for c in run.metrics["classes"]]
    val_label = "test set (monitoring)" if _validation(run) == "test" else "validation"
    plot_learning_curves(run.history, run.run_dir / "learning_curves.png", title=_title(run), val_label=val_label)
    plot_confusion_matrix(run.metrics["confusion_matrix"], classes, run.run_dir / "confusion_matrix.png")
    path = run.run_dir / REPORT_NAME
    write_text(path, run_report_markdown(run))
    return path
