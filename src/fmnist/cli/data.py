"""`fmnist data fetch|info|show`: get and verify the dataset, describe it, draw samples."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fmnist.cli.common import DataDirOption, DatasetOption, JsonOption, err, out, print_json, settings
from fmnist.errors import DataError, UsageError

if TYPE_CHECKING:
    from fmnist.data import Dataset

data_app = typer.Typer(help="Get, verify, describe and view the dataset.", no_args_is_help=True)

GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")  # what the sample grid is written as (matplotlib)

_SOURCES = {
    "data-dir": "the data directory",
    "cache": "the cache",
    "system": "the system copy",
    "download": "a download into the cache",
    "folder": "an image folder (photo preprocessing)",
}


def register(app: typer.Typer) -> None:
    """Attach `fmnist data ...`."""
    app.add_typer(data_app, name="data")


@data_app.command()
def fetch(ctx: typer.Context, data_dir: DataDirOption = None, dataset: DatasetOption = None, as_json: JsonOption = False) -> None:
    """Get the dataset (downloading it if no copy is found), verify it and say where it came from."""
    from fmnist.data.sources import DATA_DIR_ENV

    try:
        ds = _load(ctx, data_dir, dataset, download=True)
    except DataError as e:
        if settings(ctx, data_dir=data_dir).data_dir is None and not os.environ.get(DATA_DIR_ENV):
            raise
        raise DataError(f"{e} (with --data-dir or FMNIST_DATA_DIR, `fmnist data fetch` reads that directory only and "
                        "downloads nothing: leave both out to download into the cache)") from None
    if as_json:
        print_json(ds.summary())
        return
    out.print(f"{_title(ds)}: {len(ds.train)} training and {len(ds.test)} test images", markup=False)
    out.print(f"source: {_SOURCES[ds.source]}, {ds.source_dir}", markup=False)
    out.print(_verified(ds), markup=False)


@data_app.command()
def info(ctx: typer.Context, data_dir: DataDirOption = None, dataset: DatasetOption = None, as_json: JsonOption = False) -> None:
    """Source, verification, shapes and images per class of each split (never downloads: see `fetch`)."""
    ds = _load(ctx, data_dir, dataset, download=False)
    if as_json:
        print_json(ds.summary())
        return
    h, w = ds.train.images.shape[1:]
    out.print(_title(ds), markup=False)
    out.print(f"source: {_SOURCES[ds.source]}, {ds.source_dir}", markup=False)
    out.print(_verified(ds), markup=False)
    out.print(f"images: {h}x{w} uint8; train {len(ds.train)}, test {len(ds.test)}", markup=False)
    table = Table("label", "class", "train", "test")
    table.columns[1].overflow = "fold"  # a class name is printed whole, as written in classes.txt
    for label, (name, n_train, n_test) in enumerate(zip(ds.classes, ds.train.class_counts(), ds.test.class_counts(), strict=True)):
        table.add_row(str(label), escape(name), str(n_train), str(n_test))
    table.add_row("", "all", str(len(ds.train)), str(len(ds.test)), style="bold")
    out.print(table)


@data_app.command()
def show(
    ctx: typer.Context,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "train",
    n: Annotated[int, typer.Option("--n", min=1, max=400, help="How many images, from the first.")] = 25,
    output: Annotated[Path, typer.Option("--out", help="The image to write: .png, .jpg, .pdf or .svg.")] = Path("samples.png"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the --out file if it exists.")] = False,
    data_dir: DataDirOption = None,
    dataset: DatasetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Draw the first N images of a split in a labelled grid, as the seeds do."""
    from fmnist.cli.outputs import check_out_file
    from fmnist.data import SPLIT_FILES
    from fmnist.plots.samples import plot_sample_grid

    if split not in SPLIT_FILES:
        raise UsageError(f"--split must be train or test, not {split!r}")
    check_out_file(output, overwrite, GRID_SUFFIXES, "samples.png")
    ds = _load(ctx, data_dir, dataset, download=True)
    data = ds.split(split)
    if n > len(data):
        raise UsageError(f"--n {n}: the {split} split holds only {len(data)} images")
    path = plot_sample_grid(data.images[:n], data.labels[:n], ds.classes, output, title=f"{_title(ds)} {split}: first {n}")
    if as_json:
        print_json({"dataset": ds.name, "split": split, "n": n, "path": str(path)})
    else:
        out.print(f"wrote {path} ({n} {split} image{'s' if n != 1 else ''})", markup=False, soft_wrap=True)


def _load(ctx: typer.Context, data_dir: Path | None, dataset: str | None, download: bool) -> Dataset:
    from fmnist.data import load_dataset  # imported here: numpy stays out of `fmnist --help`
    from fmnist.data.registry import FOLDER
    from fmnist.imaging.folder import load_folder

    s = settings(ctx, data_dir=data_dir, dataset=dataset)
    if s.dataset == FOLDER:
        ds = load_folder(s.data_dir)
        for _, why in ds.skipped:
            err.print(f"skipped: {why}", markup=False, soft_wrap=True)
        return ds
    return load_dataset(s.dataset, data_dir=s.data_dir, download=download, progress=True)


def _title(ds: Dataset) -> str:
    from fmnist.data import DATASETS

    spec = DATASETS.get(ds.name)
    return f"{spec.title} ({ds.name})" if spec else ds.name


def _verified(ds: Dataset) -> str:
    if ds.verified:
        verdict = "verified: yes, every file matches its published checksum"
    else:
        verdict = "verified: no, no published checksum covers these files (their structure was checked)"
    if ds.source == "folder":  # no published checksum, no IDX structure: images read one by one
        verdict = f"verified: no, image files ({len(ds.skipped)} skipped)"
    return verdict + (f"\nchecksum: {ds.checksum}" if ds.checksum else "")
