"""`fmnist predict MODEL IMAGE...`: class, confidence, top-3 probabilities and the preprocessing per image file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from fmnist.cli.common import DeviceOption, JsonOption, err, out, print_json, settings
from fmnist.cli.export import BackendOption, backend_for

OTHER_COLUMNS = 52  # what the other columns, the borders and the padding take at their narrowest


def predict(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A model.safetensors file, a run directory or an .onnx file from `fmnist export`.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or directories of them (PNG, JPEG, BMP, WebP, ...).")],
    preprocess: Annotated[str, typer.Option("--preprocess", "--mode", help=(
        "auto (dataset-style images as they are, photos through the photo pipeline), photo, or dataset "
        "(grayscale and resize to 28x28, as the seeds do)."))] = "auto",
    device: DeviceOption = None,
    backend: BackendOption = None,
    as_json: JsonOption = False,
) -> None:
    """Predict the class of each image file; a file that cannot be read is reported and the others still predicted.

    Exit code 0 when every file was predicted, 2 when some could not be read.
    """
    from fmnist.export import load_predictor
    from fmnist.imaging import check_mode, empty_folders, passed_over, required_image_files
    from fmnist.runtime import configure_process, resolve_device

    s = settings(ctx, device=device)
    check_mode(preprocess)
    files = required_image_files(images)  # before the model loads: a wrong path fails at once
    configure_process()
    predictor = load_predictor(model, backend_for(model, backend), device=resolve_device(s.device))
    predictions, failed = predictor.predict_files(files, mode=preprocess)
    empty = empty_folders(images)  # named and skipped like an unreadable file
    if as_json:
        # In the order the files were given, as the web service answers; a file that failed gets its reason.
        reasons, predicted = dict(failed), iter(predictions)
        print_json([{"path": str(f), "error": reasons[str(f)]} if str(f) in reasons else next(predicted).to_dict()
                    for f in files] + [{"path": path, "error": why} for path, why in empty])
    else:
        # The file name whole, first and on one line where it fits, so a row can be matched to its file; the other
        # cells wrap or fold rather than end in an ellipsis.
        longest = max((len(str(p.path)) for p in predictions), default=0)
        table = Table(Column("image", no_wrap=longest + OTHER_COLUMNS <= out.width, overflow="fold"),
                      *(Column(h, overflow="fold") for h in ("class", "confident", "top-3", "preprocess")))
        for p in predictions:
            top = ", ".join(f"{name} {prob * 100:.1f}%" for _, name, prob in p.top)
            table.add_row(escape(str(p.path)), escape(f"{p.index} {p.name}"), "yes" if p.confident else "[yellow]no[/]",
                          escape(top), p.preprocess)
        if predictions:
            out.print(table)
    failed += empty
    for _, why in failed:  # on stderr with --json too: stdout stays the one document
        err.print(f"skipped: {why}", markup=False, soft_wrap=True)
    others = passed_over(images)
    if others:  # passed over by name, not failed: a note, not an error
        shown = "; ".join(f"{p.name}: {why}" for p, why in others[:5]) + (
            f"; and {len(others) - 5} more" if len(others) > 5 else "")
        err.print(f"note: {len(others)} file{'s' if len(others) != 1 else ''} passed over ({shown})", markup=False,
                  soft_wrap=True)
    if failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Attach `predict`."""
    app.command("predict")(predict)
