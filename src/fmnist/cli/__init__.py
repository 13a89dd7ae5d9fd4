"""The `fmnist` command line: a thin layer over the library; one module per subcommand."""

from __future__ import annotations

import errno
import importlib
import sys
from typing import Optional

import typer
from rich.markup import escape

from fmnist import __version__
from fmnist.cli import commands
from fmnist.cli.common import (
    DataDirOption,
    DatasetOption,
    Settings,
    err,
    print_json_error,
    reset_json_output,
)
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


def _click_exceptions(name: str) -> tuple[type[BaseException], ...]:
    """Click's exception class `name`, from Click and from the copy newer Typer versions vendor (typer._click)."""
    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


_NO_ARGS_IS_HELP = _click_exceptions("NoArgsIsHelpError")
_CLICK_USAGE = _click_exceptions("UsageError")
_CLICK_ERROR = _click_exceptions("ClickException")
_ABORT = (typer.Abort, *_click_exceptions("Abort"))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user-facing errors become a message and an exit code, never a traceback.

    Every failure is one `error:` line on stderr: an invalid option or argument (Click's usage errors, exit code 2,
    with a pointer to `--help`), an FmnistError (its own exit code) or an OSError (exit code 1). When the command
    line holds `--json`, the same failure is also the single JSON document on stdout:
    {"error": {"message": ..., "exit_code": ...}}.
    """
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    as_json = "--json" in (args[: args.index("--")] if "--" in args else args)
    reset_json_output()
    try:
        code = app(args=args, prog_name="fmnist", standalone_mode=False)
    except _NO_ARGS_IS_HELP as e:
        sys.exit(e.exit_code)  # the help is printed already, as `fmnist` with no arguments asks for
    except _CLICK_USAGE as e:
        _fail(_usage_message(e), e.exit_code, as_json)
    except _ABORT:
        _fail("aborted", 1, as_json)
    except _CLICK_ERROR as e:
        _fail(e.format_message(), e.exit_code, as_json)
    except FmnistError as e:
        _fail(str(e), e.exit_code, as_json)
    except OSError as e:
        _fail(*_os_error(e), as_json)
    if code == 130:  # Typer's answer to a KeyboardInterrupt no command caught: Ctrl-C, or SIGTERM where it is one
        _fail("interrupted before the command finished", 130, as_json)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)  # typer.Exit(code) from a command, returned rather than raised without standalone mode


def _usage_message(e: Exception) -> str:
    """Click's message for an invalid command line, with where to look: `fmnist train --help`."""
    message = e.format_message().strip().rstrip(".")
    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else "fmnist"
    return f"{message}; see `{command} --help` for the valid options and values"


# An OSError the library did not translate, where the user can fix the cause: (problem, fix) by errno.
_FIXABLE_OS_ERRORS = {
    errno.EACCES: ("permission denied", "change its permissions or choose another path"),
    errno.EPERM: ("operation not permitted", "change its permissions or choose another path"),
    errno.EROFS: ("on a read-only file system", "choose another path"),
    errno.ENOSPC: ("no space left on its device", "free some space or choose another path"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose another path"),
}


def _os_error(e: OSError) -> tuple[str, int]:
    """(message, exit code) of an OSError that reached the top: exit code 2 with a fix when the user can fix it
    (permissions, a read-only or full disk), else its own text and exit code 1."""
    if e.errno in _FIXABLE_OS_ERRORS and e.filename:
        problem, fix = _FIXABLE_OS_ERRORS[e.errno]
        return f"{e.filename}: {problem}; {fix}", 2
    return str(e), 1


def _fail(message: str, exit_code: int, as_json: bool) -> None:
    """Report a failure on stderr (and, with --json, as the JSON document on stdout), then exit."""
    err.print(f"[bold red]error:[/] {escape(message)}")
    if as_json:
        print_json_error(message, exit_code)
    sys.exit(exit_code)
