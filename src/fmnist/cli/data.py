"""`fmnist data ...` (placeholder until the data layer lands)."""

import typer


def register(app: typer.Typer) -> None:
    pass
