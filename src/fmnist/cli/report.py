"""`fmnist report RUN_DIR`: re-render a run's report.md (and its derived figures) from the saved files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist.cli.common import JsonOption, out, print_json


def register(app: typer.Typer) -> None:
    """Attach the `report` command to `app`."""

    @app.command("report")
    def report(
        run_dir: Annotated[Path, typer.Argument(help="A run directory written by `fmnist train`.", show_default=False)],
        as_json: JsonOption = False,
    ) -> None:
        """Re-draw the learning curves and confusion matrix and write RUN_DIR/report.md; print its path."""
        from fmnist.reports.run import render_run_report

        path = render_run_report(run_dir)
        if as_json:
            print_json({"report": path})
        else:
            out.print(str(path), markup=False, soft_wrap=True)
