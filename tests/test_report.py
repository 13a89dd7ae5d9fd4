"""report.md from a run directory the test writes itself, and `fmnist report` errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fmnist.errors import DataError
from fmnist.metrics import classification_report, confusion_matrix
from fmnist.recipes import RECIPES
from fmnist.config import RunConfig, TrainOptions
from fmnist.reports.run import classification_table, render_run_report
from fmnist.rundir import write_config, write_history

CLASSES = ["T-shirt/top", "Trouser", "Pullover"]


def _make_run(run_dir, validation: str = "test", seed_reported: float | None = 93.52, with_montage: bool = True):
    """A fake finished run: 3 epochs of minivgg on 3 classes, test accuracy 5/7."""
    run_dir.mkdir()
    recipe = RECIPES["minivgg"].replace(epochs=3, validation=validation)
    config = RunConfig(recipe=recipe, options=TrainOptions(seed=0, device="cpu"), dataset="fashion-mnist",
                       data_source="system")
    write_config(run_dir, config)
    with_val = validation != "none"
    write_history(run_dir / "history.csv", [
        {"epoch": e, "train_loss": 0.9 / e, "train_acc": 0.6 + 0.1 * e, "val_loss": 1.0 / e if with_val else None,
         "val_acc": 0.55 + 0.1 * e if with_val else None, "lr": 0.01 / (1 + 0.0004 * 100 * e), "seconds": 2.0}
        for e in (1, 2, 3)
    ])
    y, p = np.array([0, 0, 1, 1, 2, 2, 2]), np.array([0, 1, 1, 1, 2, 0, 2])
    metrics = {"dataset": "fashion-mnist", "classes": CLASSES, "test_accuracy": 5 / 7, "test_loss": 0.61234,
               "report": classification_report(y, p, CLASSES), "confusion_matrix": confusion_matrix(y, p, 3).tolist(),
               "train_seconds": 6.3, "epochs": 3, "validation": validation, "seed_reported": seed_reported}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if with_montage:
        Image.new("RGB", (384, 384)).save(run_dir / "montage.png")
    return run_dir


def test_report_contents(tmp_path):
    run = _make_run(tmp_path / "run")
    path = render_run_report(run)
    assert path == run / "report.md"
    md = path.read_text()
    assert md.startswith("# minivgg on fashion-mnist")
    assert "**71.43%**" in md  # 5/7 in percent, 2 decimals
    assert "0.6123" in md  # test loss
    assert "6.3 s for 3 epochs (2.1 s per epoch)" in md
    assert "validation on the test set, for monitoring only" in md
    assert "93.52%" in md and "-22.09 points" in md  # the seed's figure beside ours
    assert "keras_decay (decay 0.0004)" in md and "sgd, lr 0.01, momentum 0.9" in md
    assert "| epochs | 3 (the recipe's 25) |" in md
    # Classification report table and per-epoch history table.
    assert "| class | precision | recall | f1 | support |" in md
    assert "| Trouser | 0.6667 | 1.0000 | 0.8000 | 2 |" in md
    assert "| 2 | 0.4500 | 80.00% | 0.5000 | 75.00% |" in md
    # Figures: the two re-drawn ones and the montage that exists; misclassified.png does not exist.
    for name in ("learning_curves.png", "confusion_matrix.png", "montage.png"):
        assert f"]({name})" in md
        assert (run / name).stat().st_size > 0
    assert "misclassified.png" not in md


def test_report_rerenders_figures_from_saved_files(tmp_path):
    run = _make_run(tmp_path / "run", validation="holdout", seed_reported=None, with_montage=False)
    render_run_report(run)
    first = (run / "confusion_matrix.png").stat().st_mtime_ns
    (run / "learning_curves.png").unlink()
    md = render_run_report(run).read_text()
    assert (run / "learning_curves.png").is_file() and (run / "confusion_matrix.png").stat().st_mtime_ns >= first
    assert "held-out 10% of the training set" in md
    assert "seed 000/001 reported" not in md and "montage.png" not in md


def test_report_without_validation(tmp_path):
    md = render_run_report(_make_run(tmp_path / "run", validation="none")).read_text()
    assert "no per-epoch validation" in md
    assert "| 1 | 0.9000 | 70.00% | — | — |" in md


def test_report_errors(tmp_path):
    with pytest.raises(DataError, match="no such run directory"):
        render_run_report(tmp_path / "nope")
    run = _make_run(tmp_path / "run")
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match="metrics.json: not valid JSON"):
        render_run_report(run)
    (run / "metrics.json").write_text(json.dumps({"classes": CLASSES}))
    with pytest.raises(DataError, match="missing"):
        render_run_report(run)
    (run / "history.csv").unlink()
    (run / "metrics.json").unlink()
    with pytest.raises(DataError, match="metrics.json: file missing"):
        render_run_report(run)
    assert not (run / "report.md").exists()


def test_cli_report(cli, tmp_path):
    run = _make_run(tmp_path / "run")
    r = cli("report", run)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(run / "report.md")
    r = cli("report", run, "--json")
    assert json.loads(r.stdout) == {"report": str(run / "report.md")}


def test_cli_report_missing_dir(cli, tmp_path):
    r = cli("report", tmp_path / "missing")
    assert r.exit_code == 2
    assert "no such run directory" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_report_markdown_table():
    lines = classification_table(classification_report(np.array([0, 0, 1, 1, 2, 2, 2]), np.array([0, 1, 1, 1, 2, 0, 2]), ["a", "b", "c"]))
    assert lines[0] == "| class | precision | recall | f1 | support |"
    assert "| b | 0.6667 | 1.0000 | 0.8000 | 2 |" in lines
    assert any(line.startswith("| **accuracy**") and "0.7143" in line for line in lines)
    assert len(lines) == 2 + 3 + 3  # header, rule, 3 classes, accuracy + 2 averages
