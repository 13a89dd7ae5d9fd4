"""`fmnist predict MODEL IMAGE...`: class index, name and top-3 probabilities per image file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fmnist.cli.common import DeviceOption, JsonOption, out, print_json, settings


def predict(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A model.safetensors file or a run directory.")],
    images: Annotated[list[Path], typer.Argument(help="Image files (PNG, JPEG, BMP, WebP; any size and mode).")],
    mode: Annotated[str, typer.Option(help="Preprocessing: 'dataset' (grayscale, resize to 28x28, as the seeds do).")] = "dataset",
    device: DeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Predict the class of each image file."""
    from fmnist.inference import Predictor
    from fmnist.runtime import configure_process, resolve_device

    s = settings(ctx, device=device)
    configure_process()
    predictor = Predictor.from_file(model, device=resolve_device(s.device))
    predictions = predictor.predict_files(images, mode=mode)
    if as_json:
        print_json([p.to_dict() for p in predictions])
        return
    table = Table("image", "class", "name", "top-3")
    for p in predictions:
        top = ", ".join(f"{name} {prob * 100:.1f}%" for _, name, prob in p.top)
        table.add_row(str(p.path), str(p.index), p.name, top)
    out.print(table)


def register(app: typer.Typer) -> None:
    """Attach `predict`."""
    app.command("predict")(predict)
