"""`fmnist train` never destroys a run: --out on a run refuses, --overwrite replaces it whole, Ctrl-C resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def train(cli, data_dir, out, *extra):
    return cli("--dataset", "idx", "--data-dir", data_dir, "train", "mlp", "--epochs", "1", "--out", out, *extra)


def test_out_on_a_run_refuses_and_overwrite_replaces_it_whole(cli, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    assert train(cli, tiny_data_dir, run).exit_code == 0
    model_bytes = (run / "model.safetensors").read_bytes()
    (run / "notes.txt").write_text("mine")
    r = train(cli, tiny_data_dir, run, "--seed", "3")
    assert r.exit_code == 2 and "holds a run already" in r.stderr and "--overwrite" in r.stderr
    assert (run / "model.safetensors").read_bytes() == model_bytes and (run / "notes.txt").is_file()
    r = train(cli, tiny_data_dir, run, "--seed", "3", "--overwrite")
    assert r.exit_code == 0, r.stderr
    assert not (run / "notes.txt").exists() and not (run / "checkpoint.safetensors").exists()
    assert json.loads((run / "config.json").read_text())["options"]["seed"] == 3


def test_out_that_is_a_file_or_holds_other_files_is_refused(cli, tiny_data_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    r = train(cli, tiny_data_dir, tmp_path / "file")
    assert r.exit_code == 2 and "is a file" in r.stderr
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_text("x")
    r = train(cli, tiny_data_dir, tmp_path / "photos", "--overwrite")
    assert r.exit_code == 2 and "not a run" in r.stderr and (tmp_path / "photos" / "a.jpg").is_file()


def test_keep_checkpoints_and_resume_of_a_finished_run(cli, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    assert train(cli, tiny_data_dir, run, "--keep-checkpoints").exit_code == 0
    assert (run / "checkpoint.safetensors").is_file()
    done = tmp_path / "done"
    assert train(cli, tiny_data_dir, done).exit_code == 0
    r = cli("train", "--resume", done)
    assert r.exit_code == 2 and "no checkpoint to resume" in r.stderr


@pytest.mark.timeout(400)
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])  # as a shell reports each
def test_ctrl_c_writes_a_checkpoint_prints_the_resume_command_and_resume_finishes(tiny_data_dir, tmp_path, sig, code):
    run = tmp_path / "run"
    env = os.environ | {"COLUMNS": "200"}
    cmd = [sys.executable, "-m", "fmnist", "--dataset", "idx", "--data-dir", str(tiny_data_dir), "train", "mlp",
           "--epochs", "40", "--batch-size", "16", "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (run / "checkpoint.safetensors").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert f"resume with: fmnist train --resume {run}" in stderr and "Traceback" not in stderr
    assert (run / "checkpoint.safetensors").is_file() and not (run / "model.safetensors").exists()
    done = subprocess.run([sys.executable, "-m", "fmnist", "train", "--resume", str(run), "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["epochs"] == 40
    assert (run / "model.safetensors").is_file() and not (run / "checkpoint.safetensors").exists()
    assert len((run / "history.csv").read_text().splitlines()) == 41


@pytest.mark.timeout(400)
def test_after_kill_9_resume_continues_from_the_last_complete_checkpoint(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "fmnist", "--dataset", "idx", "--data-dir", str(tiny_data_dir), "train", "mlp",
           "--epochs", "40", "--batch-size", "16", "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (run / "checkpoint.safetensors").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in a later epoch, perhaps in the middle of writing a checkpoint
    proc.kill()
    proc.wait(timeout=30)
    done = subprocess.run([sys.executable, "-m", "fmnist", "train", "--resume", str(run), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["epochs"] == 40 and (run / "model.safetensors").is_file()


class _StopAtOnce:
    """Callbacks that ask training to stop after its first step, as Ctrl-C does."""

    def note(self, message): ...
    def epoch_start(self, epoch, epochs, steps): ...
    def step(self, step, loss, acc): ...
    def epoch_end(self, stats): ...
    def should_stop(self):
        return True


def test_an_interrupted_overwrite_keeps_the_run_it_replaces_until_it_finishes(cli, tiny_data_dir, tmp_path):
    from fmnist.config import RunConfig
    from fmnist.pipeline import train_run
    from fmnist.rundir import previous_run
    from fmnist.recipes import get_recipe
    from fmnist.train.loop import TrainingInterrupted

    run = tmp_path / "run"
    assert train(cli, tiny_data_dir, run).exit_code == 0
    model_bytes = (run / "model.safetensors").read_bytes()
    cfg = RunConfig(recipe=get_recipe("mlp").replace(epochs=2), dataset="idx", data_dir=tiny_data_dir, out=run)
    with pytest.raises(TrainingInterrupted):
        train_run(cfg, callbacks=_StopAtOnce(), overwrite=True)
    kept = previous_run(run)
    assert (kept / "model.safetensors").read_bytes() == model_bytes  # the finished run is whole, beside the new one
    assert (run / "checkpoint.safetensors").is_file() and not (run / "model.safetensors").exists()
    r = cli("runs", tmp_path)
    assert r.exit_code == 0 and "set aside" in r.stderr  # not listed as a run of its own, but said
    r = cli("train", "--resume", run)
    assert r.exit_code == 0, r.stderr
    assert (run / "model.safetensors").is_file() and not kept.exists()  # replaced once the new run is written


def test_an_overwrite_refused_before_training_puts_the_old_run_back(cli, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    assert train(cli, tiny_data_dir, run).exit_code == 0
    before = sorted(p.name for p in run.iterdir())
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "fast", "--batch-size", "1", "--out", run,
            "--overwrite")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert sorted(p.name for p in run.iterdir()) == before


def test_limit_over_the_split_trains_on_all_and_says_so(cli, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    r = train(cli, tiny_data_dir, run, "--limit", "100000")
    assert r.exit_code == 0 and "all of them are used" in r.stderr, r.stderr
    options = json.loads((run / "config.json").read_text())["options"]
    assert options["limit"] is None and options["train_images"] == 200
    assert "--limit" not in (run / "report.md").read_text()


def test_mix_without_an_image_folder_is_refused(cli, tiny_data_dir, tmp_path):
    r = train(cli, tiny_data_dir, tmp_path / "run", "--mix", "10")
    assert r.exit_code == 2 and "--mix" in r.stderr and not (tmp_path / "run").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc on this system")
def test_an_out_where_no_file_can_be_made_is_one_sentence(cli, tiny_data_dir):
    r = train(cli, tiny_data_dir, "/proc/fmnist-test-run")  # /proc takes no new directories, even from root
    assert r.exit_code == 2 and "Errno" not in r.stderr and "does not take new files" in r.stderr, r.stderr


def test_a_second_overwrite_replaces_a_stale_set_aside_run_not_the_finished_one(cli, tiny_data_dir, tmp_path):
    from fmnist.rundir import previous_run

    run = tmp_path / "run"
    assert train(cli, tiny_data_dir, run).exit_code == 0
    model_bytes = (run / "model.safetensors").read_bytes()
    stale = previous_run(run)
    stale.mkdir()
    (stale / "config.json").write_text("{}")  # left by a replacement that finished all but its cleanup
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "fast", "--batch-size", "1", "--out", run,
            "--overwrite")  # refused before training: the finished run must come back, not the stale one
    assert r.exit_code == 2
    assert (run / "model.safetensors").read_bytes() == model_bytes and not stale.exists()


def test_a_plain_run_leaves_a_set_aside_run_it_did_not_replace(cli, tiny_data_dir, tmp_path):
    from fmnist.rundir import previous_run

    run = tmp_path / "run"
    kept = previous_run(run)
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert train(cli, tiny_data_dir, run).exit_code == 0
    assert (kept / "notes.txt").read_text() == "mine"


def test_a_run_that_diverges_stops_with_a_reason_and_leaves_no_run(cli, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", "3", "--lr", "1e30",
            "--out", run)
    assert r.exit_code == 2 and "diverged in epoch" in r.stderr and "learning rate" in r.stderr, r.stderr
    assert not run.exists()
