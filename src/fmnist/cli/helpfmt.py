"""`--help` pages that say what to type: a flag shows no value type (Typer labels every flag `<bool>`, as if it
took one), and an argument taking several values shows the type of one and `...` rather than a Python type name
such as `<list[Path]>`."""

from __future__ import annotations

import typing
from pathlib import Path

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import DefaultPlaceholder

_NAMES = {Path: "path", str: "str", int: "int", float: "float"}


def tidy_params(params: list) -> None:
    """Adjust how `params` read in a help page (called only while the help is drawn)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            if param.metavar is None:
                param.metavar = ""  # the type column stays empty: a flag takes no value
            continue
        if not isinstance(param, (TyperOption, TyperArgument)) or (isinstance(param, TyperOption) and param.metavar):
            continue  # an option's own metavar is shown as it is
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        if typing.get_origin(annotation) is not list:
            continue
        args = typing.get_args(annotation)
        label = f"<{_NAMES.get(args[0], 'value') if args else 'value'}>"
        if isinstance(param, TyperOption):
            param.metavar = label  # an option given once per value
        else:
            param.display_type_rich = lambda ctx, label=f"{label}...": label


class Command(TyperCommand):
    """A command whose help page shows flags as flags."""

    def format_help(self, ctx, formatter) -> None:
        tidy_params(self.get_params(ctx))
        super().format_help(ctx, formatter)


class Group(TyperGroup):
    """A command group whose help page shows flags as flags."""

    def format_help(self, ctx, formatter) -> None:
        tidy_params(self.get_params(ctx))
        super().format_help(ctx, formatter)


def install(app: typer.Typer) -> None:
    """Use Command and Group for `app`, its commands and its groups, all the way down (where no other class is set)."""
    if _default(app.info.cls):
        app.info.cls = Group
    for command in app.registered_commands:
        if _default(command.cls):
            command.cls = Command
    for group in app.registered_groups:
        if _default(group.cls):
            group.cls = Group
        install(group.typer_instance)


def _default(cls: object) -> bool:
    return cls is None or isinstance(cls, DefaultPlaceholder) or cls in (TyperCommand, TyperGroup)
