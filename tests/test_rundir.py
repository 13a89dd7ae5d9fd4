"""The run directory as one typed record: history.csv, RunMetrics and RunRecord round trips, old directories."""

from __future__ import annotations

import json

import pytest

from fmnist.config import RunConfig, TrainOptions
from fmnist.errors import DataError
from fmnist.recipes import get_recipe
from fmnist.rundir import HISTORY_FIELDS, RunMetrics, load_run, read_history, write_config, write_history, write_results

CLASSES = ["a", "b"]
REPORT = {
    "per_class": [{"class": c, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1} for c in CLASSES],
    "accuracy": 1.0,
    "macro_avg": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
    "weighted_avg": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
}


def test_history_round_trip(tmp_path):
    rows = [
        {"epoch": 1, "train_loss": 0.5123456789, "train_acc": 0.81, "val_loss": 0.4, "val_acc": 0.85, "lr": 0.01, "seconds": 7.25},
        {"epoch": 2, "train_loss": 0.3, "train_acc": 0.9, "val_loss": None, "val_acc": None, "lr": 0.005, "seconds": 6.5},
    ]
    path = tmp_path / "history.csv"
    write_history(path, rows)
    assert path.read_text().splitlines()[0] == ",".join(HISTORY_FIELDS)
    assert path.read_text().splitlines()[2] == "2,0.3,0.9,,,0.005,6.5"
    back = read_history(path)
    assert back == rows
    assert isinstance(back[0]["epoch"], int)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_read_history_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_history(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(DataError, match="missing"):
        read_history(bad)
    bad.write_text(",".join(HISTORY_FIELDS) + "\n1,abc,0.5,,,0.01,1\n")
    with pytest.raises(DataError, match="line 2"):
        read_history(bad)


def test_run_record_round_trip(tmp_path):
    recipe = get_recipe("fast").replace(epochs=2)
    config = RunConfig(recipe=recipe, options=TrainOptions(seed=3, device="cpu", precision="fp32"), dataset="idx",
                       data_dir=tmp_path / "data", limit=100, data_source="data-dir", train_images=90)
    metrics = RunMetrics(classes=CLASSES, test_accuracy=0.5, report=REPORT, confusion_matrix=[[1, 0], [1, 0]],
                         test_loss=0.7, dataset="idx", train_seconds=1.5, epochs=2, validation="holdout")
    rows = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.1, "seconds": 0.5}
            for e in (1, 2)]
    write_config(tmp_path, config)
    write_results(tmp_path, rows, metrics)
    run = load_run(tmp_path)
    assert run.config == config
    assert run.metrics == metrics
    assert run.history == rows and run.epochs == 2
    assert run.fmnist_version and run.created


def test_a_run_directory_written_before_the_typed_record_still_loads(tmp_path):
    # config.json and metrics.json exactly as the dict-writing code wrote them (no val_precision, no data_source
    # at the top level, metrics without fused_kernels).
    recipe = get_recipe("baseline").to_dict()
    options = {"seed": 0, "device": "auto", "precision": "recipe", "channels_last": True, "compile": False, "threads": None,
               "eval_batch_size": 1024, "progress_every": 50, "dataset": "fashion-mnist", "data_dir": None, "limit": 2000,
               "data_source": "system", "train_images": 2000}
    (tmp_path / "config.json").write_text(json.dumps({"recipe": recipe, "options": options, "fmnist_version": "0.1.0",
                                                      "created": "2026-11-30 10:00:00"}))
    (tmp_path / "metrics.json").write_text(json.dumps({"dataset": "fashion-mnist", "classes": CLASSES, "test_accuracy": 0.9,
                                                       "test_loss": 0.3, "report": REPORT, "confusion_matrix": [[1, 0], [0, 1]],
                                                       "train_seconds": 3.0, "epochs": 1, "seed_reported": 90.99}))
    write_history(tmp_path / "history.csv", [{"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "lr": 0.01, "seconds": 3.0}])
    run = load_run(tmp_path)
    assert run.config.recipe == get_recipe("baseline") and run.config.limit == 2000 and run.config.data_source == "system"
    assert run.metrics.test_accuracy == 0.9 and run.metrics.fused_kernels == [] and run.metrics.seed_reported == 90.99
    assert run.created == "2026-11-30 10:00:00"


def test_a_config_of_the_wrong_shape_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"recipe": {"name": "x", "epochs": 0}}))
    with pytest.raises(DataError, match="config.json: not a run configuration"):
        load_run(tmp_path)


def test_a_file_given_as_the_run_names_the_run_that_holds_it(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="is a file, not a run directory") as e:
        load_run(tmp_path / "notes.txt")
    assert "the run holding it" not in str(e.value)  # tmp_path is no run
