"""The `fmnist` command line: a thin layer over the library; one module per subcommand."""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.markup import escape

from fmnist import __version__
from fmnist.cli import commands
from fmnist.cli.common import DataDirOption, DatasetOption, Settings, err
from fmnist.errors import FmnistError

app = typer.Typer(
    name="fmnist",
    help="Train, evaluate, explain and serve CNN classifiers for Fashion-MNIST and other MNIST-format data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"fmnist {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    dataset: DatasetOption = None,
    device: Optional[str] = typer.Option("auto", "--device", help="auto, cpu or cuda (auto picks CUDA when available)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    ctx.obj = Settings(data_dir=data_dir, dataset=dataset or "fashion-mnist", device=device or "auto")


commands.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user-facing errors become a message and an exit code, never a traceback.

    Usage errors are handled by Typer itself (exit code 2); FmnistError carries its own exit code.
    """
    try:
        app(args=argv, prog_name="fmnist")
    except FmnistError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        sys.exit(e.exit_code)
    except OSError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        sys.exit(1)
