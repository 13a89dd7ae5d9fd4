"""Cross-validation runs on tiny generated data: same folds for every recipe, outputs, resume, executors, CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from fmnist.cv.folds import make_folds
from fmnist.cv.results import CVData, CVProgress, FoldTask
from fmnist.cv.runner import run_cv
from fmnist.cv.store import fold_path
from fmnist.train.loop import Callbacks
from tests.helpers import config, tiny_data, tiny_recipes

CLASSES = 4
PNG = b"\x89PNG\r\n\x1a\n"


class Recorder(CVProgress):
    def __init__(self, stop_at: tuple[str, int] | None = None):
        self.done: list[tuple[str, str, bool]] = []
        self.notes: list[str] = []
        self.stop_at = stop_at

    def note(self, message: str) -> None:
        self.notes.append(message)

    def fold_done(self, result, fold) -> None:
        self.done.append((result.recipe, fold.label, result.reused))

    def fold_callbacks(self, task: FoldTask):
        if self.stop_at == (task.recipe.name, task.fold.index):
            return Interrupt()
        return None


class Interrupt(Callbacks):
    """Stops training in the middle of a fold, as Ctrl-C would."""

    def step(self, step: int, loss: float, acc: float) -> None:
        raise KeyboardInterrupt


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_every_recipe_on_the_same_folds_and_all_outputs(tmp_path):
    progress = Recorder()
    cv = run_cv(config(tmp_path), tiny_data(), progress)
    assert (cv.trained, cv.reused, cv.executor) == (10, 0, "sequential")
    assert progress.done[0] == ("mlp", "fold 1/5", False) and len(progress.done) == 10
    saved = json.loads((tmp_path / "cv.json").read_text())
    fps = {name: [f["fingerprint"] for f in rec["folds"]] for name, rec in saved["recipes"].items()}
    assert fps["mlp"] == fps["baseline"] == [f["fingerprint"] for f in saved["folds"]]
    assert len(set(fps["mlp"])) == 5
    for name, rec in saved["recipes"].items():
        assert rec["scores"] == [f["score"] for f in rec["folds"]] == cv.scores()[name]
        assert all(0.0 <= s <= 1.0 for s in rec["scores"])
        assert all(f["score"] == f["history"][-1]["val_acc"] for f in rec["folds"])  # the fold score is the last epoch's
        assert rec["summary"]["n"] == 5 and rec["summary"]["mean"] == pytest.approx(np.mean(rec["scores"]))
        assert all(f["held_out_size"] == 40 and f["train_size"] == 160 for f in rec["folds"])
    # Each fold's training seed is shared by the recipes (depends on the fold only).
    assert [f["seed"] for f in saved["recipes"]["mlp"]["folds"]] == [f["seed"] for f in saved["recipes"]["baseline"]["folds"]]
    assert len(saved["comparisons"]) == 1 and saved["comparisons"][0]["a"] == "baseline"
    assert saved["comparisons"][0]["sentence"].startswith("`baseline` vs `mlp`: ")
    for fig in ("boxplot.png", "curves-mlp.png", "curves-baseline.png"):
        assert (tmp_path / fig).read_bytes()[:8] == PNG
    report = (tmp_path / "report.md").read_text()
    assert "| fold | held-out images | mlp | baseline |" in report
    assert "| r1-f5 | 40 |" in report
    assert "![Box plot of the fold scores](boxplot.png)" in report and "(curves-baseline.png)" in report
    assert saved["comparisons"][0]["sentence"] in report
    for f in range(1, 6):
        assert (tmp_path / "folds" / "baseline" / f"r1-f{f}.json").is_file()


def test_resume_reads_finished_folds_back(tmp_path):
    data = tiny_data()
    first = run_cv(config(tmp_path), data)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "folds").rglob("*.json")}
    progress = Recorder()
    again = run_cv(config(tmp_path), data, progress)
    assert (again.trained, again.reused) == (0, 10)
    assert all(reused for _, _, reused in progress.done)
    assert again.scores() == first.scores()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "folds").rglob("*.json")} == stamps  # nothing rewritten
    # Other settings are never mixed in: more epochs is refused, saying what differs; --overwrite retrains every fold.
    from fmnist.errors import UsageError

    with pytest.raises(UsageError, match=r"made with recipe mlp set otherwise \(epochs 1 there, 2 now.*--overwrite"):
        run_cv(config(tmp_path, recipes=tiny_recipes(epochs=2)), data)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "folds").rglob("*.json")} == stamps
    # An --overwrite interrupted in its first fold keeps the cross-validation it replaces, set aside beside OUT.
    from fmnist.rundir import previous_run

    with pytest.raises(KeyboardInterrupt):
        run_cv(config(tmp_path, recipes=tiny_recipes(epochs=2)), data, Recorder(stop_at=("mlp", 1)), overwrite=True)
    assert (previous_run(tmp_path) / "cv.json").is_file() and not (tmp_path / "cv.json").exists()
    more = run_cv(config(tmp_path, recipes=tiny_recipes(epochs=2)), data, overwrite=True)
    assert not previous_run(tmp_path).exists()  # deleted once the replacement was written
    assert (more.trained, more.reused) == (10, 0)
    assert all(len(f.history) == 2 for rs in more.results.values() for f in rs)


def test_an_interrupted_overwrite_continues_when_the_same_command_runs_again(tmp_path):
    # The interrupt said "run the same command again to continue", and that command (with --overwrite) deleted the
    # replacement's finished folds and started over.
    from fmnist.rundir import previous_run

    data = tiny_data()
    run_cv(config(tmp_path), data)
    longer = config(tmp_path, recipes=tiny_recipes(epochs=2))
    with pytest.raises(KeyboardInterrupt):
        run_cv(longer, data, Recorder(stop_at=("mlp", 3)), overwrite=True)
    finished = sorted(p.name for p in (tmp_path / "folds" / "mlp").glob("r1-f*.json"))
    assert finished == ["r1-f1.json", "r1-f2.json"] and previous_run(tmp_path).is_dir()
    again = run_cv(longer, data, overwrite=True)
    assert (again.trained, again.reused) == (8, 2) and not previous_run(tmp_path).exists()
    # Options other than the interrupted replacement's start a replacement afresh (the original still waits).
    with pytest.raises(KeyboardInterrupt):
        run_cv(config(tmp_path), data, Recorder(stop_at=("mlp", 2)), overwrite=True)
    other = run_cv(config(tmp_path, recipes=tiny_recipes(epochs=3)), data, overwrite=True)
    assert (other.trained, other.reused) == (10, 0)


def test_a_second_cross_validation_into_the_same_out_is_refused(tmp_path):
    # Two at once both "finished", the second's fold files overwritten by the first's.
    import multiprocessing

    from fmnist.errors import UsageError

    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(UsageError, match="another fmnist process .* into"):
            run_cv(config(tmp_path), tiny_data())
    finally:
        release.set()
        holder.join(60)
    assert not (tmp_path / "folds").exists()
    assert run_cv(config(tmp_path), tiny_data()).trained == 10  # once the other is done


def _hold_lock(path: str, ready, release) -> None:
    from pathlib import Path

    from fmnist.runlock import exclusive

    with exclusive(Path(path)):
        ready.set()
        release.wait(60)


def test_folds_of_other_data_are_not_read_back(tmp_path):
    kw = {"recipes": tiny_recipes()[:1], "folds": 2}
    a, b = (dataclasses.replace(tiny_data(60, seed=s), checksum="") for s in (0, 1))  # in memory: hashed
    run_cv(config(tmp_path, **kw), a)
    from fmnist.errors import UsageError

    with pytest.raises(UsageError, match="made with other data"):
        run_cv(config(tmp_path, **kw), b)
    # More images make other folds too, but the data are what changed, and are what is named.
    with pytest.raises(UsageError, match="made with other data"):
        run_cv(config(tmp_path, **kw), dataclasses.replace(tiny_data(80, seed=0), checksum=""))
    cv = run_cv(config(tmp_path, **kw), b, overwrite=True)
    assert cv.trained == 2 and cv.data["checksum"].startswith("arrays-")


def test_interrupted_and_broken_folds_are_redone(tmp_path):
    data = tiny_data()
    with pytest.raises(KeyboardInterrupt):
        run_cv(config(tmp_path), data, Recorder(stop_at=("mlp", 3)))
    files = sorted(p.name for p in (tmp_path / "folds" / "mlp").iterdir())
    assert files == ["r1-f1.json", "r1-f2.json"]  # the interrupted fold left nothing, not even a temp file
    assert not (tmp_path / "cv.json").exists()

    # A half-written fold file (as a crash of some other writer would leave) and a stale temp file.
    broken = fold_path(tmp_path, "mlp", make_folds(data.labels)[0])
    broken.write_text(broken.read_text()[:100])
    stale = tmp_path / "folds" / "mlp" / ".r1-f3.json.abc123.tmp"
    stale.write_text("{")
    progress = Recorder()
    cv = run_cv(config(tmp_path), data, progress)
    assert (cv.trained, cv.reused) == (9, 1)  # only mlp fold 2 was finished and intact
    assert [label for name, label, reused in progress.done if reused] == ["fold 2/5"]
    assert any("r1-f1.json: unreadable" in n for n in progress.notes)
    assert not stale.exists()
    assert json.loads(broken.read_text())["score"] == cv.results["mlp"][0].score


@pytest.mark.parametrize("change", [{"history": [{}]}, {"history": [1]}, {"score": float("nan")}, {"score": 1.5},
                                    {"score": True}, {"history": [{"epoch": 1, "train_loss": "x"}]}])
def test_a_fold_file_of_valid_json_but_not_a_fold_result_is_retrained(tmp_path, change):
    # A history of [{}] crashed the report (KeyError), a NaN score the summary; 1.5 was averaged as 150%.
    data = tiny_data(60)
    kw = {"recipes": tiny_recipes()[:1], "folds": 2}
    run_cv(config(tmp_path, **kw), data)
    path = fold_path(tmp_path, "mlp", make_folds(data.labels, k=2)[1])
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    progress = Recorder()
    cv = run_cv(config(tmp_path, **kw), data, progress)
    assert (cv.trained, cv.reused) == (1, 1) and any("r1-f2.json: unreadable" in n for n in progress.notes)
    assert 0 <= json.loads(path.read_text())["score"] <= 1


def test_a_directory_where_a_fold_file_belongs_is_named_before_training(tmp_path):
    from fmnist.errors import UsageError

    data = tiny_data(60)
    kw = {"recipes": tiny_recipes(), "folds": 2}  # mlp's folds come first: none of them may train
    path = fold_path(tmp_path, "baseline", make_folds(data.labels, k=2)[1])
    path.mkdir(parents=True)
    with pytest.raises(UsageError, match="is a directory where the results of a fold belong"):
        run_cv(config(tmp_path, **kw), data)
    assert not list(tmp_path.glob("folds/mlp/*"))
    path.rmdir()
    path.parent.rmdir()
    path.parent.write_text("")  # a file where the recipe's folder of folds belongs
    with pytest.raises(UsageError, match="is a file where the folder of a recipe's folds belongs"):
        run_cv(config(tmp_path, **kw), data)
    assert path.parent.is_file() and not list(tmp_path.glob("folds/mlp/*"))


def test_overwrite_through_a_link_replaces_the_link_and_keeps_what_it_pointed_to(tmp_path):
    # The link was set aside as .NAME.previous, and the next --overwrite failed on rmtree of a link.
    from fmnist.rundir import previous_run

    data = tiny_data(60)
    kw = {"recipes": tiny_recipes()[:1], "folds": 2}
    real, link = tmp_path / "real", tmp_path / "link"
    run_cv(config(real, **kw), data)
    link.symlink_to(real, target_is_directory=True)
    for _ in range(2):
        cv = run_cv(config(link, **kw), data, overwrite=True)
        assert cv.trained == 2 and not previous_run(link).exists() and not previous_run(link).is_symlink()
    assert (real / "cv.json").is_file() and (link / "cv.json").is_file()


class StopInSecondEpoch(Callbacks):
    """Asks the fold to stop after a step of its second epoch, as Ctrl-C in `fmnist cv` does."""

    def __init__(self) -> None:
        self.epoch = 0

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.epoch = epoch

    def should_stop(self) -> bool:
        return self.epoch == 2


class StopFold(Recorder):
    def fold_callbacks(self, task: FoldTask):
        return StopInSecondEpoch() if (task.recipe.name, task.fold.index) == ("mlp", 2) else None


def test_an_interrupted_fold_continues_from_its_checkpoint(tmp_path):
    from fmnist.train.loop import TrainingInterrupted

    data = tiny_data()
    kw = {"recipes": tiny_recipes(epochs=2)[:1], "folds": 3}
    straight = run_cv(config(tmp_path / "straight", **kw), data)
    with pytest.raises(TrainingInterrupted):
        run_cv(config(tmp_path / "cv", **kw), data, StopFold())
    assert (tmp_path / "cv" / "folds" / "mlp" / "r1-f2.checkpoint.safetensors").is_file()
    resumed = run_cv(config(tmp_path / "cv", **kw), data)
    assert (resumed.trained, resumed.reused) == (2, 1)
    assert resumed.scores() == straight.scores()
    assert not list((tmp_path / "cv" / "folds" / "mlp").glob("*.checkpoint.safetensors"))


def test_limit_folds_a_seeded_subset(tmp_path):
    cv = run_cv(config(tmp_path, recipes=tiny_recipes()[:1], limit=100, folds=4), tiny_data())
    assert cv.data["images"] == 100 and cv.data["limit"] == 100
    assert [f.held_out_size for f in cv.results["mlp"]] == [25] * 4
    assert cv.comparisons == []
    assert "## Comparisons" not in (tmp_path / "report.md").read_text()


def test_repeated_stratified_cv_uses_the_corrected_test(tmp_path):
    cv = run_cv(config(tmp_path, folds=2, repeats=2, stratified=True), tiny_data(80))
    assert [f.key for f in cv.folds] == ["r1-f1", "r1-f2", "r2-f1", "r2-f2"]
    assert cv.comparisons[0].corrected is not None
    assert cv.comparisons[0].as_dict()["test"] == "corrected resampled t-test"
    report = (tmp_path / "report.md").read_text()
    assert "stratified 2-fold CV × 2 (shuffled, seeds 1–2)" in report and "| r2-f2 |" in report


def test_duplicate_recipes_are_a_usage_error(tmp_path):
    from fmnist.errors import UsageError

    with pytest.raises(UsageError, match="given twice"):
        run_cv(config(tmp_path, recipes=tiny_recipes()[:1] * 2), tiny_data())


def test_process_pool_gives_the_sequential_scores(tmp_path):
    data = tiny_data(120)
    kw = {"recipes": tiny_recipes()[:1], "folds": 3}
    sequential = run_cv(config(tmp_path / "seq", **kw), data)
    parallel = run_cv(config(tmp_path / "par", jobs=2, **kw), data)
    assert (sequential.executor, parallel.executor) == ("sequential", "processes")
    assert parallel.scores() == sequential.scores()
    for a, b in zip(sequential.results["mlp"], parallel.results["mlp"]):
        assert _without_seconds(a.history) == _without_seconds(b.history)


def write_idx_dataset(directory: Path, data: CVData) -> Path:
    from fmnist.data import Split, write_dataset

    classes = tuple(f"class{i}" for i in range(CLASSES))
    train = Split(data.images, data.labels, classes)
    test = Split(data.images[:20], data.labels[:20], classes)
    return write_dataset(directory, train, test)


def test_cli_cv_prints_folds_summaries_and_comparison(cli, tmp_path):
    data_dir = write_idx_dataset(tmp_path / "data", tiny_data(100))
    args = ["cv", "mlp", "baseline", "--epochs", "1", "--folds", "3", "--threads", "1", "--precision", "fp32",
            "--dataset", "idx", "--data-dir", data_dir, "--out", tmp_path / "cv", "--device", "cpu"]
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("mlp fold 1/3: ") and lines[0].endswith(" s)")
    assert any(line.startswith("baseline fold 3/3: ") for line in lines)
    summary = next(line for line in lines if line.startswith("mlp: "))
    assert "% ± " in summary and "(95% CI " in summary and summary.endswith("3 folds)")
    assert any(line.startswith("`baseline` vs `mlp`: ") and "(p " in line for line in lines)
    assert (tmp_path / "cv" / "report.md").is_file()

    r = cli(*args, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)  # exactly one JSON document on stdout
    assert doc["reused"] == 6 and doc["trained"] == 0
    assert set(doc["recipes"]) == {"mlp", "baseline"}
    assert "history" not in doc["recipes"]["mlp"]["folds"][0]
    assert "mlp fold 1/3: " in r.stderr and "(read back)" in r.stderr


def test_cli_cv_unknown_recipe_is_a_usage_error(cli, tmp_path):
    r = cli("cv", "nope", "--out", tmp_path)
    assert r.exit_code == 2 and "unknown recipe 'nope'" in r.stderr


def test_a_limit_over_the_data_uses_all_of_it_and_says_so(tmp_path):
    progress = Recorder()
    cv = run_cv(config(tmp_path, limit=10_000), tiny_data(), progress)
    assert any("all of them are used" in n for n in progress.notes), progress.notes
    saved = json.loads((tmp_path / "cv.json").read_text())
    assert saved["data"]["limit"] is None and saved["data"]["images"] == 200
    assert cv.trained == 10


def test_a_fold_that_diverges_names_itself_and_keeps_no_checkpoint(tmp_path):
    from fmnist.recipes.overrides import override
    from fmnist.train.loop import TrainingDiverged

    wild = override(tiny_recipes(epochs=2)[0], "lr", 1e30)
    with pytest.raises(TrainingDiverged, match=r"mlp fold 1/5: training diverged") as e:
        run_cv(config(tmp_path, recipes=(wild,)), tiny_data())
    assert "--lr" in str(e.value)
    assert not list(tmp_path.rglob("*.checkpoint.safetensors"))  # a rerun starts the fold over, not from NaN


def test_folds_too_small_to_say_much_are_noted(tmp_path):
    progress = Recorder()
    run_cv(config(tmp_path, limit=20, folds=2, recipes=tiny_recipes()[:1]), tiny_data(), progress)
    assert any("only 10 images" in n and "say little" in n for n in progress.notes), progress.notes


def test_a_pool_worker_ends_when_its_parent_is_killed(tmp_path):
    # The parent starts a worker that watches it (runtime.exit_with_parent), then is killed outright: the
    # worker, which would otherwise wait on its pool forever, exits by itself.
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file, script = tmp_path / "worker.pid", tmp_path / "parent.py"
    script.write_text(f"""
import multiprocessing as mp, os, time
from fmnist.runtime import exit_with_parent
def work(path, parent):
    exit_with_parent(parent, poll_s=0.05)
    open(path, "w").write(str(os.getpid()))
    time.sleep(60)
if __name__ == "__main__":
    mp.get_context("spawn").Process(target=work, args=({str(pid_file)!r}, os.getpid())).start()
    time.sleep(60)
""")
    parent = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        worker = int(pid_file.read_text())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its parent by 10 s")


def test_commands_that_read_runs_say_a_cross_validation_is_one(tmp_path, capsys):
    # They said config.json was missing, or that the folder held no model.safetensors.
    from fmnist.cli import main

    run_cv(config(tmp_path, recipes=tiny_recipes()[:1], folds=2), tiny_data(60))
    capsys.readouterr()
    for args in (["report", tmp_path], ["evaluate", tmp_path], ["export", tmp_path, "--out", tmp_path / "m.onnx"]):
        with pytest.raises(SystemExit) as stopped:
            main([str(a) for a in args])
        assert stopped.value.code == 2 and "is a cross-validation" in capsys.readouterr().err, args
    main(["runs", str(tmp_path)])
    assert "is a cross-validation" in capsys.readouterr().out
