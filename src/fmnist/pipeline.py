"""A training run, end to end: data -> fit -> model file -> test evaluation -> run directory -> report.

`train_run` is what `fmnist train` calls; it returns the results and writes the run directory (fmnist.rundir):
config.json, history.csv, metrics.json, model.safetensors, learning_curves.png, confusion_matrix.png,
montage.png, misclassified.png and report.md. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fmnist.checkpoint import ModelMeta, load_model, read_meta, save_model
from fmnist.config import Recipe, RunConfig
from fmnist.data import DEFAULT_DATASET, Dataset, Split, load_dataset, load_split
from fmnist.data.registry import FOLDER
from fmnist.data.splits import Arrays, describe_validation, split_for_validation, subset
from fmnist.errors import DataError, UsageError
from fmnist.fileio import remove_temporaries, write_error
from fmnist.imaging.folder import class_note, load_folder
from fmnist.inference import Predictor, confidence_threshold, evaluate
from fmnist.metrics import classification_report, confusion_matrix
from fmnist.plots.evaluation import plot_misclassified, plot_montage
from fmnist.reports.run import render_run_report
from fmnist.rundir import (
    CONFIG_FILE,
    MODEL_FILE,
    RunMetrics,
    check_directory_path,
    drop_previous,
    is_run_dir,
    previous_run,
    set_aside,
    write_config,
    write_results,
)
from fmnist.runlock import exclusive
from fmnist.runtime import resolve_device
from fmnist.train.loop import Callbacks, TrainData, TrainingDiverged, TrainResult, fit
from fmnist.train.resume import CHECKPOINT_FILE



@dataclass
class RunResult:
    """What a run produced."""

    run_dir: Path
    metrics: RunMetrics
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


def starting_weights(cfg: RunConfig) -> tuple[dict[str, torch.Tensor] | None, ModelMeta | None]:
    """The state dict and meta of cfg.init, checked against the recipe's architecture (None, None without --init)."""
    if cfg.init is None:
        return None, None
    meta = read_meta(cfg.init)
    recipe = cfg.recipe
    if meta.model != recipe.model or {k: v for k, v in meta.model_args.items() if k not in ("in_channels", "num_classes")} \
            != json.loads(json.dumps(recipe.model_args)):
        trained = (meta.recipe or {}).get("name", "?")
        raise UsageError(f"--init {cfg.init} is a {meta.model!r} {meta.model_args} (trained with recipe {trained!r}), "
                         f"but recipe {recipe.name!r} builds {recipe.model!r} {recipe.model_args}; fine-tune with the "
                         f"recipe the model was trained with (`fmnist train {trained} --init ...`)")
    model, meta = load_model(cfg.init)
    return model.state_dict(), meta


def load_data(cfg: RunConfig, classes: list[str] | None = None) -> Dataset:
    """The run's dataset: a registered one, or with dataset "folder" an image folder (through the photo
    preprocessing) in the classes of the starting model, else Fashion-MNIST's or the folders' own
    (`folder_classes`), with `mix` Fashion-MNIST training images added."""
    if cfg.dataset != FOLDER:
        if cfg.mix:
            raise UsageError(f"--mix adds Fashion-MNIST images to an image folder (--dataset folder); "
                             f"{cfg.dataset} is trained on whole, so leave --mix out")
        return load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    ds = load_folder(cfg.data_dir, classes, seed=cfg.options.seed)
    if cfg.mix:
        fashion = load_split("train", DEFAULT_DATASET)
        if list(fashion.classes) != list(ds.classes):
            raise UsageError("--mix adds Fashion-MNIST images, so the folder's classes must be Fashion-MNIST's")
        images, labels = subset(fashion.images, fashion.labels, cfg.mix, cfg.options.seed)
        train = Split(np.concatenate([ds.train.images, images]), np.concatenate([ds.train.labels, labels]), ds.classes)
        ds = dataclasses.replace(ds, train=train)
    return ds


def prepare_run_dir(run_dir: Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Check the run directory before anything is written: a run there is continued (resume), replaced whole
    (overwrite) or refused, never silently mixed with a new one. The run --overwrite replaces is moved aside
    (`previous_run`) and deleted only once the new run is written, so an interrupted or failed replacement loses
    nothing."""
    check_directory_path(run_dir, "the run")
    if resume:
        if not (run_dir / CHECKPOINT_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
            raise UsageError(f"{run_dir} holds no checkpoint to resume ({CHECKPOINT_FILE} and {CONFIG_FILE}); the run "
                             "finished, or stopped before its first epoch: train it again with --overwrite")
        return run_dir
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not (run_dir / CONFIG_FILE).is_file():
            raise UsageError(f"--out {run_dir} holds files that are not a run; name a new or empty directory")
        if not overwrite:
            if (run_dir / CHECKPOINT_FILE).is_file():
                raise UsageError(f"--out {run_dir} holds a run already; pass --overwrite to replace it, --resume "
                                 f"{shlex.quote(str(run_dir))} to continue it, or another --out")
            stopped = "" if is_run_dir(run_dir) else ", which stopped before its first checkpoint (nothing to resume)"
            raise UsageError(f"--out {run_dir} holds a run already{stopped}; pass --overwrite to replace it, or "
                             "another --out")
        set_aside(run_dir, finished=is_run_dir(run_dir))
    return run_dir


def _restore_previous(run_dir: Path) -> None:
    """Put back the run that --overwrite set aside, when the new one made nothing."""
    previous = previous_run(run_dir)
    if previous.is_dir() and not run_dir.exists():
        previous.rename(run_dir)


def check_splits(ds: Dataset, train_images: int) -> None:
    """A run trains on the training split and is scored on the test split: an empty one is refused before the run
    directory is made."""
    where = f" in {ds.source_dir}" if ds.source_dir is not None else ""
    for split, count in (("training", train_images), ("test", len(ds.test))):
        if not count:
            raise DataError(f"the {split} split of {ds.name}{where} holds no images, and a run needs {split} images; "
                            f"add some to it or name another dataset")


def train_run(cfg: RunConfig, callbacks: Callbacks | None = None, dataset: Dataset | None = None,
              resume: bool = False, overwrite: bool = False, keep_checkpoint: bool = False) -> RunResult:
    """Train cfg.recipe, save the model, evaluate it on the test set and write the run directory.

    Every epoch the loop's state goes to RUN_DIR/checkpoint.safetensors (fmnist.train.resume), removed once the
    model is written unless `keep_checkpoint`; `resume` continues from it with the run's own config.
    """
    resolve_device(cfg.options.device)  # an unknown device, or CUDA without one, fails before anything is written
    if resume:  # the checkpoint holds the weights; the starting model only names the folder's classes
        init, init_meta = None, (read_meta(cfg.init) if cfg.init is not None and cfg.init.exists() else None)
    else:
        init, init_meta = starting_weights(cfg)
    ds = dataset or load_data(cfg, list(init_meta.classes) if init_meta else None)
    if init_meta is not None and len(init_meta.classes) != len(ds.classes):
        raise UsageError(f"--init {cfg.init} tells {len(init_meta.classes)} classes apart "
                         f"({', '.join(init_meta.classes)}), but {ds.name} has {len(ds.classes)}; fine-tune it on data "
                         "of its classes")
    notes = callbacks or Callbacks()
    if cfg.dataset == FOLDER and init_meta is None:  # a fine-tune's classes are its starting model's
        notes.note(class_note(ds.classes, cfg.data_dir))
    for _, why in ds.skipped:
        notes.note(f"skipped: {why}")
    recipe = cfg.recipe
    images, labels = ds.train.images, ds.train.labels
    if cfg.limit and cfg.limit >= len(labels):  # every image trains, and is recorded so
        notes.note(f"--limit {cfg.limit} is not below the {len(labels):,} training images: all of them are used")
        cfg = dataclasses.replace(cfg, limit=None)
    if cfg.limit:
        images, labels = subset(images, labels, cfg.limit, cfg.options.seed)
    test = (ds.test.images, ds.test.labels)
    check_splits(ds, len(labels))
    train, val = split_for_validation(recipe, images, labels, test, cfg.options.seed)
    out = Path(cfg.out) if cfg.out else default_run_dir(recipe.name)
    with exclusive(out):  # one process writes a run directory at a time
        return _train_into(out, cfg, ds, train, val, test, init, callbacks, resume, overwrite, keep_checkpoint)


def _train_into(out: Path, cfg: RunConfig, ds: Dataset, train: Arrays, val: Arrays | None, test: Arrays,
                init: dict | None, callbacks: Callbacks | None, resume: bool, overwrite: bool,
                keep_checkpoint: bool) -> RunResult:
    """train_run's part in the run directory: train, then write the model, results, figures and report."""
    recipe = cfg.recipe
    run_dir = prepare_run_dir(out, resume, overwrite)
    remove_temporaries(run_dir)  # left by a process killed while it wrote here
    replacing = (overwrite or resume) and previous_run(run_dir).is_dir()  # a run set aside for this one
    existed = run_dir.is_dir()
    checkpoint = run_dir / CHECKPOINT_FILE
    try:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # read-only, full, not ours: one sentence naming --out
            raise write_error(run_dir, e) or e from None
        cfg = dataclasses.replace(cfg, data_source=ds.source, train_images=len(train[1]))
        if not resume:
            write_config(run_dir, cfg)
        result = fit(recipe, TrainData(train, val, num_classes=len(ds.classes)), cfg.options, callbacks=callbacks,
                     init=None if resume else init, checkpoint=checkpoint, resume=resume)
    except BaseException as e:
        # Stopped with nothing to resume (refused before the first step, a failure, or diverged: a NaN model is
        # no run, and resuming it would diverge again): its files go, the directory if this run made it, and the
        # run --overwrite set aside comes back; the same --out can be used again.
        diverged = isinstance(e, TrainingDiverged)
        if diverged:
            checkpoint.unlink(missing_ok=True)
        if not checkpoint.exists() and (not resume or diverged):
            (run_dir / CONFIG_FILE).unlink(missing_ok=True)
            if (not existed or resume) and run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
            _restore_previous(run_dir)
        if diverged:
            advice = ("this run cannot continue: train it again with a lower --lr" if resume else
                      "lower the learning rate (--lr, or --set lr=...) or check the other settings")
            raise TrainingDiverged(f"{e}; {advice}") from None
        raise

    meta = ModelMeta.for_recipe(recipe, list(ds.classes), dataset=ds.name, dataset_checksum=ds.checksum)
    predictor = Predictor(result.model, meta, device=result.device)
    if recipe.validation == "holdout" and val is not None and len(val[1]):
        # "Not confident" below the top probability that 95% of the held-out images reach (never the test set).
        meta = dataclasses.replace(meta, confidence_threshold=confidence_threshold(predictor.predict_proba(val[0])))
    # The test figures come from the same code path as `fmnist evaluate` (fp32, eval mode), so evaluating
    # the saved file later reproduces them exactly.
    ev = evaluate(predictor, *test)
    metrics = test_metrics(ds, recipe, result, ev)
    meta = dataclasses.replace(meta, metrics={"test_accuracy": metrics.test_accuracy, "test_loss": metrics.test_loss})
    save_model(run_dir / MODEL_FILE, result.model, meta)
    _write_figures(run_dir, ds, ev, metrics)
    write_results(run_dir, [h.as_dict() for h in result.history], metrics)  # metrics.json: a finished run
    render_run_report(run_dir)  # drawn from the files, as `fmnist report` redraws it
    if not keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    if replacing:  # the run --overwrite replaced, now that this one is whole
        drop_previous(run_dir)
    return RunResult(run_dir, metrics, result)


def test_metrics(ds: Dataset, recipe: Recipe, result: TrainResult, ev: dict) -> RunMetrics:
    """metrics.json: test accuracy/loss, the classification report, the confusion matrix, timings."""
    y_true = ds.test.labels
    return RunMetrics(
        dataset=ds.name,
        classes=list(ds.classes),
        test_accuracy=ev["accuracy"],
        test_loss=ev["loss"],
        report=classification_report(y_true, ev["y_pred"], list(ds.classes)),
        confusion_matrix=confusion_matrix(y_true, ev["y_pred"], len(ds.classes)).tolist(),
        train_seconds=result.seconds,
        seconds_per_epoch=result.seconds / max(1, len(result.history)),
        epochs=len(result.history),
        validation=recipe.validation,
        validation_note=describe_validation(recipe.validation, recipe.val_fraction),
        seed_reported=recipe.reported if ds.name == DEFAULT_DATASET else None,  # a Fashion-MNIST figure
        device=str(result.device),
        precision=result.precision,
        threads=result.threads,
        fused_kernels=list(result.extras.get("fused_kernels", [])),
    )


def _write_figures(run_dir: Path, ds: Dataset, ev: dict, metrics: RunMetrics) -> None:
    """The figures that need the model's predictions on the test images: a montage and the worst mistakes."""
    images, labels, classes = ds.test.images, ds.test.labels, list(ds.classes)
    y_pred, y_prob = ev["y_pred"], ev["y_prob"]
    pick = np.random.default_rng(0).choice(len(labels), size=min(16, len(labels)), replace=False)
    plot_montage(images[pick], labels[pick], y_pred[pick], classes, run_dir / "montage.png")
    losses = -np.log(np.clip(y_prob[np.arange(len(labels)), labels], 1e-12, None))
    plot_misclassified(images, labels, y_pred, losses, classes, run_dir / "misclassified.png")
