"""`fmnist evaluate MODEL`: the test-set accuracy and classification report of a model file or run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli.common import DataDirOption, DeviceOption, JsonOption, out, print_json, settings
from fmnist.cli.export import BackendOption


def evaluate(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A model.safetensors file, a run directory or (--backend onnx) an .onnx file.")],
    images: Annotated[Optional[Path], typer.Option("--images", help=(
        "Evaluate on a folder of your own images, DIR/<class name>/*, instead of the test set."), show_default=False)] = None,
    preprocess: Annotated[str, typer.Option("--preprocess", help="With --images: auto, photo or dataset.")] = "auto",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help=(
        "With --images: where the montage and results go (default runs/evaluate-<DIR>-<timestamp>)."), show_default=False)] = None,
    data_dir: DataDirOption = None,
    device: DeviceOption = None,
    backend: BackendOption = "torch",
    as_json: JsonOption = False,
) -> None:
    """Evaluate a saved model on its dataset's test set (or on --images DIR) and print the classification report."""
    from fmnist.data import load_split
    from fmnist.errors import UsageError
    from fmnist.export import load_predictor
    from fmnist.inference import evaluate as evaluate_model
    from fmnist.metrics import classification_report, format_report
    from fmnist.rundir import is_run_dir, load_run
    from fmnist.runtime import configure_process, resolve_device

    s = settings(ctx, data_dir=data_dir, device=device)
    configure_process()
    predictor = load_predictor(model, backend, device=resolve_device(s.device))
    meta = predictor.meta
    run = load_run(model) if model.is_dir() and is_run_dir(model) else None
    if images is None and meta.dataset == "folder":
        # A model fine-tuned on an image folder is scored on that folder's test images.
        folder = run.config.data_dir if run is not None else None
        if folder is None:
            raise UsageError(f"{model} was trained on an image folder: pass it with --images DIR")
        images = folder / "test" if (folder / "test").is_dir() else folder
    if images is not None:
        from fmnist.cli.photo_eval import evaluate_folder

        evaluate_folder(predictor, model, images, preprocess, out_dir, as_json)
        return
    # The dataset the model was trained on (named in the file), and the figure recorded at training: from the
    # run's record when MODEL is a run directory, else from the model file's metadata.
    recorded = run.metrics.test_accuracy if run is not None else (meta.metrics or {}).get("test_accuracy")
    data_dir = s.data_dir if s.data_dir is not None else (run.config.data_dir if run is not None else None)
    test = load_split("test", meta.dataset, data_dir=data_dir)
    ev = evaluate_model(predictor, test.images, test.labels)
    report = classification_report(test.labels, ev["y_pred"], list(meta.classes))
    result = {
        "model": str(model),
        "backend": predictor.backend,
        "dataset": meta.dataset,
        "test_accuracy": ev["accuracy"],
        "test_loss": ev["loss"],
        "recorded_test_accuracy": recorded,
        "matches_recorded": recorded is not None and ev["accuracy"] == recorded,
        "report": report,
    }
    if as_json:
        print_json(result)
        return
    out.print(format_report(report), markup=False)
    line = f"test accuracy {ev['accuracy'] * 100:.2f}% (loss {ev['loss']:.4f}) on {len(test.labels)} {meta.dataset} test images"
    if recorded is not None:
        same = "matches" if result["matches_recorded"] else "differs from"
        line += f"; {same} the {recorded * 100:.2f}% recorded at training"
    out.print(line, markup=False)


def register(app: typer.Typer) -> None:
    """Attach `evaluate`."""
    app.command("evaluate")(evaluate)
