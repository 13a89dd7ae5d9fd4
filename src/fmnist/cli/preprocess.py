"""`fmnist preprocess IMAGE... --out DIR`: the 28x28 input the model sees, and a sheet showing how it was made."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist.cli.common import JsonOption, err, out, print_json


def preprocess(
    images: Annotated[list[Path], typer.Argument(help="Image files or directories of them.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for NAME.png (28x28) and NAME-sheet.png per image.")],
    mode: Annotated[str, typer.Option("--preprocess", help="auto, photo or dataset (as `fmnist predict`).")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help=(
        "Write into an --out that holds files already, replacing those of the same names."))] = False,
    as_json: JsonOption = False,
) -> None:
    """Write, per image, the 28x28 input the model sees and a sheet: the original, the article mask and crop box
    (photo mode), and the 28x28 input upscaled, so you can see why a prediction went wrong.

    Exit code 0 when every image was written, 2 when some could not be read.
    """
    from PIL import Image

    from fmnist.cli.outputs import check_out_dir
    from fmnist.errors import DataError
    from fmnist.fileio import atomic_path
    from fmnist.imaging import check_mode, empty_folders, open_image, prepare, required_image_files
    from fmnist.paths import safe_name
    from fmnist.plots.photos import plot_preprocessing

    check_mode(mode)
    check_out_dir(out_dir, overwrite, "the preprocessed images")
    files = required_image_files(images)
    written, failed, used = [], [{"path": path, "error": why} for path, why in empty_folders(images)], set()
    for path in files:
        try:
            original = open_image(path)
            result = prepare(original, mode)
        except DataError as e:
            failed.append({"path": str(path), "error": f"{path}: {e}" if str(path) not in str(e) else str(e)})
            continue
        stem = base = safe_name(path.stem)
        for i in range(2, len(used) + 3):
            if stem not in used and f"{stem}-sheet" not in used:
                break
            stem = f"{base}-{i}"  # two inputs of one name (in different directories) never write over each other
        used.update((stem, f"{stem}-sheet"))
        view = out_dir / f"{stem}.png"
        with atomic_path(view) as tmp:
            Image.fromarray(result.image).save(tmp, format="PNG")
        steps = result.steps
        sheet = plot_preprocessing(original, steps.working if steps else None, steps.mask if steps else None,
                                   steps.box if steps else None, result.image, out_dir / f"{stem}-sheet.png")
        written.append({"path": str(path), "preprocess": result.mode, "input": str(view), "sheet": str(sheet),
                        "light_background": steps.light_background if steps else None})
    if as_json:
        print_json({"written": written, "failed": failed})
    else:
        for w in written:
            out.print(f"{w['path']}: {w['preprocess']} -> {w['input']}, {w['sheet']}", markup=False, soft_wrap=True)
        for f in failed:
            err.print(f"skipped: {f['error']}", markup=False, soft_wrap=True)
    if failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Attach `preprocess`."""
    app.command("preprocess")(preprocess)
