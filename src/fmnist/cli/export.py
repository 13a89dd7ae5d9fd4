"""`fmnist export MODEL --out model.onnx`: an ONNX file verified against PyTorch; and the --backend option."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli.common import DataDirOption, JsonOption, out, print_json, settings

BackendOption = Annotated[Optional[str], typer.Option("--backend", help=(
    "torch (the model file in PyTorch) or onnx (ONNX Runtime on the CPU: an .onnx file from `fmnist export`, "
    "or a model file exported in memory). Default: onnx for an .onnx file, else torch."), show_default=False)]


def backend_for(model: Path, backend: str | None) -> str:
    """--backend as given, or its default for MODEL: onnx for an .onnx file, torch for a model file or run."""
    if backend is not None:
        return backend
    from fmnist.export import is_onnx_path

    return "onnx" if is_onnx_path(model) else "torch"


def export(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A model.safetensors file or a run directory.")],
    out_path: Annotated[Path | None, typer.Option("--out", help=(
        "The .onnx file to write (default: beside the model file, as model.onnx)."), show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="The export format: onnx.")] = "onnx",
    input_type: Annotated[str, typer.Option("--input", help=(
        "What the graph's `images` input takes: uint8 (pixels 0..255) or float (float32 0..1)."))] = "uint8",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    verify_images: Annotated[int, typer.Option("--verify-images", min=0, help=(
        "Check the export against PyTorch on this many test images (random ones when the dataset is not at "
        "hand); 0 skips the check."))] = 1000,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export a model to ONNX, verified against PyTorch.

    BatchNorm is folded; normalization, flip TTA and the softmax run inside the graph. The verification figures
    (class agreement, largest probability difference) are stored in the file's metadata.
    """
    from fmnist.checkpoint import load_model, resolve_model_path
    from fmnist.errors import UsageError
    from fmnist.export import (
        RANDOM_IMAGES,
        check_destination,
        check_input_type,
        export_onnx,
        verification_images,
    )
    from fmnist.data.registry import FOLDER
    from fmnist.rundir import is_run_dir, load_run
    from fmnist.runtime import configure_process

    if fmt.lower() != "onnx":
        raise UsageError(f"unknown export format {fmt!r}; use onnx")
    check_input_type(input_type)
    s = settings(ctx, data_dir=data_dir)
    model_path = resolve_model_path(model)
    configure_process()
    torch_model, meta = load_model(model, "cpu")  # a missing, unfinished or damaged model is named before --out
    out_path = check_destination(out_path or model_path.with_suffix(".onnx"), overwrite)
    images, source = None, ""
    if verify_images:
        run = load_run(model) if model.is_dir() and is_run_dir(model) else None
        folder = s.data_dir if s.data_dir is not None else (run.config.data_dir if run is not None else None)
        images, source = verification_images(meta, verify_images, folder, run.config.options.seed if run else 0)
    report = export_onnx(torch_model, meta, out_path, input_type, overwrite=overwrite, verify_images=images,
                         verify_source=source)
    if as_json:
        print_json({"model": str(model), **report.to_dict()})
        return
    out.print(f"wrote {report.path} ({report.size_bytes / 1e6:.2f} MB, {input_type} input, "
              f"{report.folded_bn} BatchNorm folded, {report.remaining_bn} left) in {report.seconds:.1f} s",
              markup=False, soft_wrap=True)
    v = report.verification
    if v is not None:
        if v.images == RANDOM_IMAGES:
            what, where = (("its image folder's held-out images are", "its image folder with --data-dir DIR")
                           if meta.dataset == FOLDER else (f"the {meta.dataset or 'model'} test set is", "--data-dir DIR"))
            out.print(f"{what} not at hand (pass {where}): verified on {v.n} random images instead", markup=False,
                      soft_wrap=True)
        out.print(f"verified against PyTorch: {v.summary()}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Attach `export`."""
    app.command("export")(export)
