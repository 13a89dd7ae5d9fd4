"""`fmnist runs`: the typed run record's first user lists fresh runs with their accuracy and compares two."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def two_runs(cli, tiny_data_dir, tmp_path):
    root = tmp_path / "runs"
    for name, seed, epochs in (("a", 0, 1), ("b", 5, 2)):
        r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", str(epochs),
                "--seed", str(seed), "--out", root / name, "--json")
        assert r.exit_code == 0, r.stderr
    return root


def test_runs_json_lists_each_fresh_run_with_its_accuracy(cli, two_runs):
    r = cli("runs", two_runs, "--json", "--sort", "epochs")
    assert r.exit_code == 0, r.stderr
    listing = json.loads(r.stdout)
    assert [row["path"] for row in listing["runs"]] == [str(two_runs / "a"), str(two_runs / "b")]
    recorded = json.loads((two_runs / "b" / "metrics.json").read_text())["test_accuracy"]
    b = listing["runs"][1]
    assert b["recipe"] == "mlp" and b["dataset"] == "idx" and b["epochs"] == 2 and b["test_accuracy"] == recorded
    assert b["train_seconds"] > 0 and b["date"] and listing["skipped"] == []


def test_runs_table_and_a_broken_run_is_skipped_with_a_note(cli, two_runs):
    broken = two_runs / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "metrics.json").write_text("{}")
    r = cli("runs", two_runs)
    assert r.exit_code == 0, r.stderr
    assert "mlp" in r.stdout and str(two_runs / "a") in r.stdout and "%" in r.stdout
    assert "skipped:" in r.stderr and "broken" in r.stderr


def test_runs_compare_shows_only_what_differs(cli, two_runs):
    r = cli("runs", "compare", two_runs / "a", two_runs / "b", "--json")
    assert r.exit_code == 0, r.stderr
    diff = json.loads(r.stdout)
    assert diff["config"]["options.seed"] == [0, 5] and diff["config"]["recipe.epochs"] == [1, 2]
    assert "recipe.model" not in diff["config"] and diff["metrics"]["epochs"] == [1, 2]
    text = cli("runs", "compare", two_runs / "a", two_runs / "b").stdout
    assert "options.seed" in text and "test accuracy" in text


def test_runs_errors_exit_2(cli, tmp_path):
    assert cli("runs", tmp_path / "missing").exit_code == 2
    assert cli("runs", "compare", tmp_path).exit_code == 2
    assert cli("runs", tmp_path, "--sort", "colour").exit_code == 2
    r = cli("runs", tmp_path)
    assert r.exit_code == 0 and "no finished runs" in r.stdout


@pytest.mark.parametrize("file, content", [
    ("history.csv", b"\xff\xfe\x00garbage\x9c"),
    ("metrics.json", {"train_seconds": "slow"}),
    ("metrics.json", {"report": {"per_class": 5}}),
    ("metrics.json", {"confusion_matrix": "cells"}),
])
def test_a_damaged_run_file_is_one_sentence_and_the_other_runs_still_list(cli, two_runs, file, content):
    path = two_runs / "b" / file
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        metrics = json.loads(path.read_text())
        if content.get("confusion_matrix") == "cells":
            content = {"confusion_matrix": [[str(v) for v in row] for row in metrics["confusion_matrix"]]}
        path.write_text(json.dumps(metrics | content))
    r = cli("runs", two_runs)
    assert r.exit_code == 0 and str(two_runs / "a") in r.stdout and "skipped:" in r.stderr, r.stderr
    r = cli("report", two_runs / "b")
    assert r.exit_code == 2 and "Traceback" not in r.stderr and file in r.stderr, r.stderr


def test_an_unfinished_run_is_named_with_how_to_finish_it_and_a_file_is_not_a_directory(cli, two_runs):
    stopped = two_runs / "stopped"
    stopped.mkdir()
    (stopped / "config.json").write_text("{}")
    (stopped / "checkpoint.safetensors").write_bytes(b"")
    r = cli("runs", two_runs, "--json")
    assert r.exit_code == 0, r.stderr
    (note,) = json.loads(r.stdout)["skipped"]
    assert note.startswith(f"{stopped}: unfinished") and f"fmnist train --resume {stopped}" in note
    # One that another process is training into now is not called stopped.
    import os

    from fmnist.runlock import exclusive

    with exclusive(stopped):
        (note,) = json.loads(cli("runs", two_runs, "--json").stdout)["skipped"]
    assert note == f"{stopped}: training now (pid {os.getpid()}); listed once it finishes"
    (two_runs / "afile").write_text("x")
    r = cli("runs", two_runs / "afile")
    assert r.exit_code == 2 and "is a file, not a directory" in r.stderr


def test_a_mistyped_recipe_gets_a_suggestion(cli):
    r = cli("train", "fsat")
    assert r.exit_code == 2 and "did you mean 'fast'?" in r.stderr


def test_a_look_by_runs_does_not_refuse_a_trainer_starting_then(tmp_path, monkeypatch):
    # `fmnist runs` takes the run's lock shared for an instant to see who trains there; a trainer starting in that
    # instant waits it out instead of being told another process is training.
    import fcntl
    import os
    import threading

    from fmnist import runlock

    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    with runlock.exclusive(run_dir):
        pass  # the lock file exists, as after any earlier run
    fd = os.open(runlock._lock_path(run_dir), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # the look, held a little longer than it lasts
    release = threading.Timer(0.1, lambda: os.close(fd))
    release.start()
    with runlock.exclusive(run_dir):
        assert runlock.training_pid(run_dir) == os.getpid()
    release.join()
    assert runlock.training_pid(run_dir) is None
