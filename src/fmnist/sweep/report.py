"""What a sweep found: one row per trial, the best settings as an `fmnist train` command, the figure and files."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from fmnist.fileio import write_json
from fmnist.plots.figure import save_figure
from fmnist.plots.sweep import sweep_figure
from fmnist.recipes.overrides import format_value
from fmnist.sweep.space import labels
from fmnist.sweep.study import SweepConfig


def trial_rows(study, cfg: SweepConfig) -> list[dict[str, Any]]:
    """Per trial: number, state, held-out accuracy (a fraction; the last reported epoch for a pruned trial),
    training seconds, and the settings by short name."""
    rows = []
    for t in study.trials:
        accuracy = t.value
        if accuracy is None and t.intermediate_values:
            accuracy = t.intermediate_values[max(t.intermediate_values)]
        rows.append({"number": t.number, "state": t.state.name, "accuracy": accuracy,
                     # Reports are keyed by the part of the run done; studies stored before keyed them by epoch.
                     "epochs_run": t.user_attrs.get("epochs_run", max(t.intermediate_values, default=0)),
                     "seconds": t.user_attrs.get("seconds"),
                     "params": {label: t.params.get(key) for key, label in labels(cfg.params).items()},
                     "diverged": t.user_attrs.get("diverged")})  # why a pruned trial's loss became NaN, if it did
    return rows


def best_command(study, cfg: SweepConfig) -> str | None:
    """`fmnist train RECIPE --set KEY=VALUE ...` with the best finished trial's settings."""
    try:
        best = study.best_trial
    except ValueError:  # no finished trial yet
        return None
    words = ["fmnist", "train", cfg.recipe] + [w for p in cfg.params
                                               for w in ("--set", f"{p.key}={format_value(best.params[p.key])}")]
    if cfg.seed != 0:
        words += ["--seed", cfg.seed]
    if cfg.precision != "recipe":
        words += ["--precision", cfg.precision]
    if cfg.dataset != "fashion-mnist":
        words += ["--dataset", cfg.dataset]
    if cfg.data_dir is not None:
        words += ["--data-dir", cfg.data_dir]
    return " ".join(shlex.quote(str(w)) for w in words)


def write_outputs(study, cfg: SweepConfig) -> dict[str, Path]:
    """trials.json and sweep.png in the sweep's directory."""
    rows = trial_rows(study, cfg)
    paths = {"trials": cfg.directory / "trials.json", "figure": cfg.directory / "sweep.png"}
    write_json(paths["trials"], {"sweep": cfg.study_name, "identity": cfg.identity(), "trials": rows,
                                 "best_command": best_command(study, cfg)})
    names = labels(cfg.params)
    fig = sweep_figure(rows, [(names[p.key], p.kind == "log") for p in cfg.params],
                       {names[p.key]: p.choices for p in cfg.params if p.kind == "choice"})
    save_figure(fig, paths["figure"])
    return paths
