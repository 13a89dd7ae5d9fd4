"""Registers every subcommand module on the app; each module owns one concern."""

from __future__ import annotations

import typer

from fmnist.cli import helpfmt
from fmnist.cli import cv, data, evaluate, export, models, predict, preprocess, report, runs, serve, sweep, train

MODULES = (data, models, train, evaluate, predict, preprocess, report, runs, cv, export, serve, sweep)  # each defines `register(app)`


def register(app: typer.Typer) -> None:
    """Attach each subcommand module's commands to `app`."""
    for module in MODULES:
        module.register(app)
    helpfmt.install(app)  # help pages show flags as flags (no `<bool>`), for every command and group
