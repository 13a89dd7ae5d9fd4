"""`fmnist evaluate MODEL`: the test-set accuracy and classification report of a model file or run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli.common import DataDirOption, DatasetOption, DeviceOption, JsonOption, err, out, print_json, settings
from fmnist.cli.export import BackendOption, backend_for


def evaluate(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A model.safetensors file, a run directory or an .onnx file from `fmnist export`.")],
    images: Annotated[Optional[Path], typer.Option("--images", help=(
        "Evaluate on a folder of your own images, DIR/<class name>/*, instead of the test set."), show_default=False)] = None,
    preprocess: Annotated[str, typer.Option("--preprocess", help="With --images: auto, photo or dataset.")] = "auto",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help=(
        "With --images: where the montage and results go (default runs/evaluate-<DIR>-<timestamp>)."), show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=(
        "With --images: replace the montage and results already in --out."))] = False,
    data_dir: DataDirOption = None,
    dataset: DatasetOption = None,
    device: DeviceOption = None,
    backend: BackendOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a saved model on its dataset's test set (or --dataset's, or --images DIR) and print the
    classification report; warns when the data differ from the data the model was trained on."""
    from fmnist.data import load_split
    from fmnist.data.registry import FOLDER
    from fmnist.errors import UsageError
    from fmnist.export import load_predictor
    from fmnist.inference import evaluate as evaluate_model
    from fmnist.metrics import classification_report, format_report
    from fmnist.rundir import is_run_dir, load_run
    from fmnist.runtime import configure_process, resolve_device

    s = settings(ctx, data_dir=data_dir, device=device)
    # --dataset (here or before the command) picks the test set; without it, the dataset named in the model file.
    asked = dataset if dataset is not None else ctx.find_root().params.get("dataset")
    configure_process()
    predictor = load_predictor(model, backend_for(model, backend), device=resolve_device(s.device))
    meta = predictor.meta
    run = load_run(model) if model.is_dir() and is_run_dir(model) else None
    name = asked or meta.dataset or "fashion-mnist"
    # The run's own data directory serves its own dataset only.
    same_dataset = run is not None and run.config.dataset == name
    data_dir = s.data_dir if s.data_dir is not None else (run.config.data_dir if same_dataset else None)
    held_out = checksum = None
    if images is None and name == FOLDER:
        images, held_out, checksum = _folder_target(model, meta, run if same_dataset else None, data_dir, s.data_dir)
    if out_dir is not None:
        from fmnist.cli.outputs import check_out_dir

        if images is None:
            raise UsageError("--out is where `--images DIR` writes its montage and results; pass --images DIR too")
        check_out_dir(out_dir, overwrite, "the evaluation")
    if images is not None:
        from fmnist.cli.photo_eval import evaluate_folder

        if same_dataset and _same_path(images, run.config.data_dir) and not (images / "test").is_dir():
            err.print(f"note: {images} is the folder {model} trained on, so most of these images were trained on; "
                      f"`fmnist evaluate {model}` scores the part it held out", markup=False, soft_wrap=True)

        evaluate_folder(predictor, model, images, preprocess, out_dir, as_json)
        return
    # The figure recorded at training: from the run's record when MODEL is a run directory, else from the model
    # file's metadata.
    recorded = run.metrics.test_accuracy if run is not None else (meta.metrics or {}).get("test_accuracy")
    test = held_out if held_out is not None else load_split("test", name, data_dir=data_dir)  # only the split evaluated is loaded
    top = int(test.labels.max()) if len(test.labels) else -1
    if not len(test.labels):
        raise UsageError(f"the {name} test split holds no images to evaluate on; name a dataset with test images")
    if top >= len(meta.classes):
        raise UsageError(f"{model} tells {len(meta.classes)} classes apart, but the {name} test labels go up to {top}; "
                         f"evaluate it on data with its classes, such as the {meta.dataset or 'dataset'} it was trained on")
    checksum, problem = _dataset_checksum(name, data_dir) if held_out is None else (checksum, None)
    same_data = (checksum == meta.dataset_checksum) if checksum and meta.dataset_checksum else None
    warnings = [problem] if problem else []
    halves = held_out is not None and (data_dir / "test").is_dir()  # DIR/train/ and DIR/test/: test/ is held out
    if same_data is False and halves:
        warnings.append(f"{data_dir} holds other images than when {model} trained on it (or is another folder): the "
                        "accuracy below on its test/ images is not comparable with the one recorded at training")
    elif same_data is False and held_out is not None:
        warnings.append(f"{data_dir} holds other images than when {model} trained on it, so the part held out is "
                        "drawn again from what it holds now and may include images the model trained on: the "
                        "accuracy below is not comparable with the one recorded at training")
    elif same_data is False:
        warnings.append(f"{model} was trained on {meta.dataset or 'other'} data with checksum "
                        f"{meta.dataset_checksum[:12]}, but these {name} test images come from data with checksum "
                        f"{checksum[:12]}, so the accuracy below is not comparable with the one recorded at training")
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False, soft_wrap=True)
    ev = evaluate_model(predictor, test.images, test.labels)
    report = classification_report(test.labels, ev["y_pred"], list(meta.classes))
    result = {
        "model": str(model),
        "backend": predictor.backend,
        "dataset": name,
        "dataset_checksum": checksum,
        "model_dataset_checksum": meta.dataset_checksum or None,
        "same_data_as_training": same_data,  # None when either checksum is unknown
        "warnings": warnings,
        "test_accuracy": ev["accuracy"],
        "test_loss": ev["loss"],
        "recorded_test_accuracy": recorded,
        # Only the same images can repeat the figure: on other data an equal number is a coincidence.
        "matches_recorded": recorded is not None and same_data is not False and ev["accuracy"] == recorded,
        "report": report,
    }
    if as_json:
        print_json(result)
        return
    out.print(format_report(report), markup=False)
    what = f"{name} test images" if held_out is None else f"images of {data_dir} held out at training"
    if halves:
        what = f"images of {data_dir / 'test'}"
    elif held_out is not None and same_data is False:  # the folder changed: its held-out part is drawn anew
        what = f"images of {data_dir} held out as it is now"
    line = f"test accuracy {ev['accuracy'] * 100:.2f}% (loss {ev['loss']:.4f}) on {len(test.labels)} {what}"
    if recorded is not None and same_data is False:
        line += f"; the {recorded * 100:.2f}% recorded at training was on other images"
    elif recorded is not None:
        same = "matches" if result["matches_recorded"] else "differs from"
        line += f"; {same} the {recorded * 100:.2f}% recorded at training"
    out.print(line, markup=False, soft_wrap=True)


def _folder_target(model: Path, meta, run, data_dir: Path | None, named: Path | None):
    """What a model trained on an image folder is scored on: (None, held-out split, checksum) for the test/ half
    of a DIR/train/ and DIR/test/ folder, and for the part of its own folder it held out: the run's folder (`run`),
    where it is now (`named` when the run's is gone), or a copy of it (the same digest); (images, None, None) for a
    folder of other images."""
    from fmnist.errors import UsageError
    from fmnist.imaging.folder import folder_dataset

    if data_dir is None:
        raise UsageError(f"{model} was trained on an image folder: pass it with --data-dir DIR (the part it held "
                         "out is scored) or score a folder of images with --images DIR")
    trained_on = run.config.data_dir if run is not None else None
    if named is None and trained_on is not None and not Path(trained_on).is_dir():
        raise UsageError(f"{model} was trained on the image folder {trained_on}, which is not there any more; "
                         "pass where it is now with --data-dir DIR (its held-out part is scored), or score a "
                         "folder of other images with --images DIR")
    # The run's seed drew its held-out part; a bare model file's seed is not recorded, so the default is tried
    # and kept only where the folder's digest says it is the data the model trained on. A test/ half is held out
    # whatever the seed; the digest (of both halves) then tells whether the figure may match the recorded one.
    folder = folder_dataset(data_dir, meta.classes, seed=run.config.options.seed if run is not None else 0)
    own = run is not None and (named is None or not Path(trained_on).exists() or _same_path(named, trained_on))
    if (data_dir / "test").is_dir() or own or folder.checksum == meta.dataset_checksum:
        return None, folder.test, folder.checksum
    err.print(f"note: {model} was trained on an image folder and {data_dir} is not the one it was trained on as "
              "far as can be told here: every image is scored; if it is that folder, images it trained on are among "
              "them (evaluate its run directory to score the part it held out)", markup=False, soft_wrap=True)
    return data_dir, None, None


def _same_path(a: Path, b: Path | None) -> bool:
    return b is not None and a.expanduser().resolve() == Path(b).expanduser().resolve()


def _dataset_checksum(name: str, data_dir: Path | None) -> tuple[str | None, str | None]:
    """The checksum of the copy of dataset `name` whose test split is evaluated (over its four files, as the model
    file records it), or (None, why not)."""
    from fmnist.data import FILES, SPLIT_FILES, dataset_checksum, get_spec
    from fmnist.data.sources import locate
    from fmnist.errors import FmnistError

    try:
        here = locate(get_spec(name), data_dir, download=False, progress=False, needed=SPLIT_FILES["test"])
        absent = [f for f in FILES if f not in here.paths]
        if not absent:
            return dataset_checksum(name, here.directory), None
        why = f"{here.directory} holds no {', '.join(absent)}"
    except (FmnistError, OSError) as e:
        why = str(e)
    return None, f"the {name} data's checksum could not be computed, so it is not compared with the model's ({why})"


def register(app: typer.Typer) -> None:
    """Attach `evaluate`."""
    app.command("evaluate")(evaluate)
