"""Registers every subcommand module on the app; each module owns one concern."""

from __future__ import annotations

import importlib

import typer

# Each module defines `register(app: typer.Typer) -> None`.
MODULES = ["data", "models", "train", "evaluate", "predict", "report", "cv"]


def register(app: typer.Typer) -> None:
    """Attach each subcommand module's commands to `app`."""
    for name in MODULES:
        importlib.import_module(f"fmnist.cli.{name}").register(app)
