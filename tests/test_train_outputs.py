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
def test_ctrl_c_writes_a_checkpoint_prints_the_resume_command_and_resume_finishes(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    env = os.environ | {"COLUMNS": "200"}
    cmd = [sys.executable, "-m", "fmnist", "--dataset", "idx", "--data-dir", str(tiny_data_dir), "train", "mlp",
           "--epochs", "40", "--batch-size", "16", "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (run / "checkpoint.safetensors").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
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
