"""`fmnist evaluate MODEL`: the test-set accuracy and classification report of a model file or run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist.cli.common import DataDirOption, DeviceOption, JsonOption, out, print_json, settings


def evaluate(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A model.safetensors file or a run directory.")],
    data_dir: DataDirOption = None,
    device: DeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a saved model on its dataset's test set and print the classification report."""
    from fmnist.data import load_dataset
    from fmnist.engine.device import resolve_device
    from fmnist.metrics import classification_report, format_report
    from fmnist.predictor import Predictor, evaluate as evaluate_model

    s = settings(ctx, data_dir=data_dir, device=device)
    predictor = Predictor.from_file(model, device=resolve_device(s.device))
    meta = predictor.meta
    # The dataset the model was trained on; an explicit --dataset is not needed (it is in the file).
    ds = load_dataset(meta.dataset, data_dir=s.data_dir)
    ev = evaluate_model(predictor, ds.test.images, ds.test.labels)
    report = classification_report(ds.test.labels, ev["y_pred"], list(meta.classes))
    recorded = (meta.metrics or {}).get("test_accuracy")
    result = {
        "model": str(model),
        "dataset": ds.name,
        "test_accuracy": ev["accuracy"],
        "test_loss": ev["loss"],
        "recorded_test_accuracy": recorded,
        "matches_recorded": recorded is not None and ev["accuracy"] == recorded,
        "report": report,
    }
    if as_json:
        print_json(result)
        return
    out.print(format_report(report))
    line = f"test accuracy {ev['accuracy'] * 100:.2f}% (loss {ev['loss']:.4f}) on {len(ds.test.labels)} {ds.name} test images"
    if recorded is not None:
        same = "matches" if result["matches_recorded"] else "differs from"
        line += f"; {same} the {recorded * 100:.2f}% recorded at training"
    out.print(line)


def register(app: typer.Typer) -> None:
    """Attach `evaluate`."""
    app.command("evaluate")(evaluate)
