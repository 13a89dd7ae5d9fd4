"""A one-epoch run on tiny generated data writes a complete run directory; evaluate and predict read it back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fmnist.config import RunConfig
from fmnist.data.splits import holdout_split
from fmnist.pipeline import train_run
from fmnist.recipes import get_recipe
from tests.helpers import make_split

RUN_FILES = {
    "config.json", "history.csv", "metrics.json", "model.safetensors", "learning_curves.png",
    "confusion_matrix.png", "montage.png", "misclassified.png", "report.md",
}


@pytest.fixture
def trained(cli, tiny_data_dir, tmp_path):
    """`fmnist train baseline` for 2 epochs on the tiny dataset; returns the run directory."""
    run_dir = tmp_path / "run"
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "baseline", "--epochs", "2", "--out", run_dir, "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["run_dir"] == str(run_dir)
    return run_dir, summary


def test_train_writes_a_complete_run_directory(trained):
    run_dir, summary = trained
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "temporary files left behind"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] == summary["test_accuracy"]
    assert metrics["epochs"] == 2 and len(metrics["confusion_matrix"]) == 10
    assert sum(map(sum, metrics["confusion_matrix"])) == 100
    # The bars are easy: two epochs on 200 images learn them well above chance (10%).
    assert metrics["test_accuracy"] > 0.5
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"]["name"] == "baseline" and config["recipe"]["epochs"] == 2
    assert config["options"]["dataset"] == "idx"
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds") and len(history) == 3
    report = (run_dir / "report.md").read_text()
    assert f"{metrics['test_accuracy'] * 100:.2f}%" in report and "montage.png" in report


def test_evaluate_repeats_the_recorded_accuracy_exactly(cli, trained, tiny_data_dir):
    run_dir, summary = trained
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "evaluate", run_dir, "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["test_accuracy"] == summary["test_accuracy"]
    assert result["matches_recorded"] is True
    assert len(result["report"]["per_class"]) == 10


def test_predict_names_the_class_of_saved_test_images(cli, trained, tmp_path):
    run_dir, _ = trained
    test = make_split(100, seed=2)
    paths = []
    for i in range(5):
        # Saved larger and in RGB: predict must convert and resize like the seeds do.
        p = tmp_path / f"img{i}.png"
        Image.fromarray(test.images[i]).resize((56, 56), Image.NEAREST).convert("RGB").save(p)
        paths.append(p)
    r = cli("predict", run_dir / "model.safetensors", *paths, "--json")
    assert r.exit_code == 0, r.stderr
    preds = json.loads(r.stdout)
    assert len(preds) == 5 and all(len(p["top"]) == 3 for p in preds)
    assert sum(p["index"] == int(test.labels[i]) for i, p in enumerate(preds)) >= 3


def test_tampered_model_gives_exit_code_2(cli, trained, tmp_path):
    run_dir, _ = trained
    blob = bytearray((run_dir / "model.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(blob))
    r = cli("evaluate", bad)
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    r = cli("predict", tmp_path / "missing.safetensors", tmp_path / "x.png")
    assert r.exit_code == 2


def test_unknown_recipe_and_bad_options_exit_2(cli, tiny_data_dir):
    assert cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "nope").exit_code == 2
    assert cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--val", "bogus").exit_code == 2
    assert cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--device", "tpu").exit_code == 2


def test_a_run_directory_in_use_is_refused(cli, tiny_data_dir, tmp_path):
    from fmnist.runlock import exclusive

    run_dir = tmp_path / "run"
    with exclusive(run_dir):  # as another process training into it holds it
        r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", "1", "--out", run_dir)
        assert r.exit_code == 2 and "another fmnist process" in r.stderr and not run_dir.exists(), r.stderr
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", "1", "--out", run_dir)
    assert r.exit_code == 0, r.stderr


def test_resume_refuses_options_it_would_ignore(cli, tiny_data_dir, tmp_path):
    r = cli("train", "fast", "--resume", tmp_path, "--epochs", "5", "--set", "lr=5")
    assert r.exit_code == 2 and "--epochs, --set would be ignored" in r.stderr, r.stderr
    (tmp_path / "file").write_text("x")
    r = cli("train", "--resume", tmp_path / "file")
    assert r.exit_code == 2 and "a file" in r.stderr and "Errno" not in r.stderr, r.stderr


@pytest.mark.parametrize("args", [("fast", "--batch-size", "1"), ("baseline", "--set", "augment.resize=[20, 1]")])
def test_settings_refused_before_training_leave_no_run_directory(cli, tiny_data_dir, tmp_path, args):
    run_dir = tmp_path / "run"
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", *args, "--epochs", "2", "--out", run_dir)
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert not run_dir.exists()
    run_dir.mkdir()  # a directory the user made stays, empty
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", *args, "--epochs", "2", "--out", run_dir)
    assert r.exit_code == 2 and run_dir.is_dir() and not any(run_dir.iterdir())


def test_limit_and_holdout_use_seeded_disjoint_subsets(tiny_data_dir, tmp_path):
    labels = np.arange(1000) % 10
    tr, va = holdout_split(labels, 0.1, seed=0)
    assert len(va) == 100 and not set(tr) & set(va) and np.bincount(labels[va]).tolist() == [10] * 10
    recipe = get_recipe("mlp").replace(epochs=1, validation="holdout")
    cfg = RunConfig(recipe=recipe, dataset="idx", data_dir=tiny_data_dir, limit=150, out=tmp_path / "r")
    result = train_run(cfg)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    # 150 minus about 10% of each class (rounded per class) held out for validation.
    assert 130 <= config["options"]["train_images"] <= 140
    assert result.metrics.validation == "holdout"


def test_square_brackets_in_paths_are_printed_literally(cli, tiny_data_dir, tmp_path):
    out = tmp_path / "[red]run"
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", "1", "--out", out)
    assert r.exit_code == 0, r.stderr
    assert f"run directory: {out}" in r.stdout and "Traceback" not in r.stderr
