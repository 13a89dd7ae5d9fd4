"""Options and output helpers shared by every subcommand."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

# Human-readable output goes to stdout unless --json is given; then stdout carries one JSON document
# and everything else (progress bars, notes) goes to stderr. soft_wrap: a message is never broken into lines at the
# console's width (80 columns when piped); a terminal wraps it, a pipe gets it on one line. Tables still fit the width.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DataDirOption = Annotated[
    Optional[Path],
    typer.Option("--data-dir", envvar="FMNIST_DATA_DIR", help="Directory holding the four IDX files (.gz or raw).", show_default=False),
]


def _dataset_name(value: str | None) -> str | None:
    """--dataset as given, except that `folder` (not a registered dataset) is spelled as freely as the others."""
    from fmnist.data.registry import FOLDER

    return FOLDER if value is not None and value.strip().lower() == FOLDER else value


DatasetOption = Annotated[
    Optional[str],
    typer.Option("--dataset", help="fashion-mnist, mnist, kmnist, idx (any directory of IDX files) or folder (DIR/<class>/ images: Fashion-MNIST's classes, or classes of your own named by the folders); the last two need --data-dir.", show_default=False,
                 callback=_dataset_name),
]
DeviceOption = Annotated[
    Optional[str],
    typer.Option("--device", help="auto, cpu or cuda (auto picks CUDA when available).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")]


def complete_recipe(incomplete: str) -> list[str]:
    """Shell completion of a recipe argument: the catalogue's names that start with what was typed."""
    from fmnist.recipes import RECIPES

    return [name for name in RECIPES if name.startswith(incomplete)]


@dataclass
class Settings:
    """Global options, given before the subcommand (`fmnist --data-dir D data info`) or after it."""

    data_dir: Path | None = None
    dataset: str = "fashion-mnist"
    device: str = "auto"

    def merged(self, data_dir: Path | None = None, dataset: str | None = None, device: str | None = None) -> "Settings":
        """The settings with any command-level option taking precedence over the global one."""
        return Settings(
            data_dir=data_dir if data_dir is not None else self.data_dir,
            dataset=dataset if dataset is not None else self.dataset,
            device=device if device is not None else self.device,
        )


def settings(ctx: typer.Context, data_dir: Path | None = None, dataset: str | None = None, device: str | None = None) -> Settings:
    """Global settings from the app callback, overridden by the subcommand's own options."""
    root = ctx.find_root().obj
    base = root if isinstance(root, Settings) else Settings()
    return base.merged(data_dir, dataset, device)


_documents = [0]  # JSON documents written on stdout by this command (main() resets it)


def print_json(obj: Any) -> None:
    """Write `obj` as the single JSON document on stdout."""
    # NaN and infinities are not JSON: they are written as null, so stdout always parses.
    out.file.write(json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False) + "\n")
    out.file.flush()
    _documents[0] += 1


def print_json_error(message: str, exit_code: int) -> None:
    """With --json, a failure as the JSON document: {"error": {"message": ..., "exit_code": ...}}; nothing when
    the command wrote its document already (stdout must stay one document)."""
    if not _documents[0]:
        print_json({"error": {"message": message, "exit_code": exit_code}})


def reset_json_output() -> None:
    """Forget the documents written so far: a new command starts (main(), run again in one process by tests)."""
    _documents[0] = 0


def _finite(obj: Any) -> Any:
    """`obj` with every non-finite float (anywhere in dicts, lists and tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _finite(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
