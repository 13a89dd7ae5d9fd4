"""The command line as a new user meets it: names printed as they are, messages on one line, tables that fit 80
columns, help that shows flags as flags, options checked before anything is written, every --out refusing to
replace what is there unless told, evaluate checking the data against the model's, seeds in a stated range."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image

from fmnist.data import Split, write_dataset
from fmnist.recipes import RECIPES
from tests.helpers import make_split

BRACKETED = ("T-shirt [men]", "[red]Trouser", "[/]")
QUICK = ("--epochs", "1", "--device", "cpu")


@pytest.fixture(autouse=True)
def no_system(tmp_path, monkeypatch):
    """No real system dataset or mirror is ever seen."""
    monkeypatch.setenv("FMNIST_SYSTEM_DIR", str(tmp_path / "no-system"))
    monkeypatch.delenv("FMNIST_MIRROR", raising=False)


@pytest.fixture
def columns(monkeypatch):
    """Set the consoles' width as COLUMNS does (they read it at import, if it was set then)."""
    from fmnist.cli.common import err, out

    def set_width(n: int) -> None:
        monkeypatch.setenv("COLUMNS", str(n))
        for console in (out, err):
            monkeypatch.setattr(console, "_width", None)

    return set_width


def bracketed_data(directory: Path) -> Path:
    """The tiny dataset, in a directory whose name and three class names hold square brackets."""
    classes = BRACKETED + tuple(f"c{i}" for i in range(3, 10))
    train, test = make_split(200, seed=1), make_split(100, seed=2)
    return write_dataset(directory, Split(train.images, train.labels, classes), Split(test.images, test.labels, classes))


def image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)).save(path)
    return path


def idx(data_dir: Path, *args) -> list:
    return ["--dataset", "idx", "--data-dir", data_dir, *args]


def clean(r) -> None:
    assert "Traceback" not in r.stderr and "[Errno" not in r.stderr and ".tmp" not in r.stderr, r.stderr


# --- 1. user strings printed as they are ---------------------------------------------------------------------

def test_bracketed_names_through_train_evaluate_data_runs_and_report(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = bracketed_data(tmp_path / "[data]")
    run = Path("runs") / "[exp]"
    r = cli(*idx(data, "train", "mlp", *QUICK, "--out", run))
    assert r.exit_code == 0, r.stderr
    assert f"run directory: {run}\n" in r.stdout and f"report: {run / 'report.md'}" in r.stdout
    r = cli("evaluate", run)
    assert r.exit_code == 0, r.stderr
    assert all(name in r.stdout for name in BRACKETED)
    r = cli(*idx(data, "data", "info"))
    assert r.exit_code == 0, r.stderr
    assert f"source: the data directory, {data}\n" in r.stdout and all(f" {name} " in r.stdout for name in BRACKETED)
    r = cli(*idx(data, "data", "fetch"))
    assert r.exit_code == 0 and f"{data}\n" in r.stdout
    r = cli(*idx(data, "data", "show", "--n", "4", "--out", "[red]shirt.png"))
    assert r.exit_code == 0, r.stderr
    assert "wrote [red]shirt.png (4 train images)" in r.stdout and Path("[red]shirt.png").is_file()
    r = cli("runs", "runs")
    assert r.exit_code == 0 and f" {run} " in r.stdout
    r = cli("runs", "compare", run, run)
    assert r.exit_code == 0 and r.stdout.count(str(run)) == 4  # the two columns of both tables
    r = cli("report", run)
    assert r.exit_code == 0 and r.stdout == f"{run / 'report.md'}\n"


def test_bracketed_names_through_cv_and_preprocess(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = bracketed_data(tmp_path / "[data]")
    args = idx(data, "cv", "mlp", "--folds", "2", "--threads", "1", *QUICK, "--out", "[cv]")
    assert cli(*args).exit_code == 0
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    assert "2 read back from [cv]\n" in r.stderr and "report: [cv]/report.md" in r.stdout
    image(Path("[red]shirt.png"))
    r = cli("preprocess", "[red]shirt.png", "--out", "[pp]")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("[red]shirt.png: dataset -> [pp]/_red_shirt.png, [pp]/_red_shirt-sheet.png")


# --- 2. messages are not hard-wrapped when piped -------------------------------------------------------------

def test_a_long_error_is_one_line_when_stderr_is_a_pipe(tmp_path):
    missing = tmp_path / ("a-directory-with-a-long-name-" * 4) / "model.safetensors"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # piped: Rich would wrap at 80 columns
    r = subprocess.run([sys.executable, "-m", "fmnist", "evaluate", str(missing)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) > 150 and str(missing) in lines[0] and lines[0].startswith("error: ")


def test_notes_and_results_are_one_line_each_at_80_columns(cli, tiny_data_dir, tmp_path, columns):
    columns(80)
    r = cli(*idx(tiny_data_dir, "train", "mlp", *QUICK, "--out", tmp_path / "run"))
    assert r.exit_code == 0, r.stderr
    note = next(line for line in r.stderr.splitlines() if line.startswith("validation: "))
    assert len(note) > 80 and note.endswith("as the seed did")
    r = cli("evaluate", tmp_path / "run")
    assert r.stdout.splitlines()[-1].endswith("recorded at training")


# --- 3. tables fit 80 columns --------------------------------------------------------------------------------

def test_models_at_80_columns_names_every_recipe_whole(cli, columns):
    columns(80)
    r = cli("models")
    assert r.exit_code == 0, r.stderr
    assert "…" not in r.stdout and all(len(line) <= 80 for line in r.stdout.splitlines())
    cells = [line.split("│")[1].strip() for line in r.stdout.splitlines() if line.startswith("│")]
    assert [c for c in cells if c] == list(RECIPES) * 2  # the recipe name whole, in each of the two tables
    assert "1,677,674" in r.stdout and "19,899,904" in r.stdout


def test_predict_at_80_columns_never_cuts_a_file_name(cli, tiny_data_dir, tmp_path, monkeypatch, columns):
    assert cli(*idx(tiny_data_dir, "train", "mlp", *QUICK, "--out", tmp_path / "run")).exit_code == 0
    monkeypatch.chdir(tmp_path)
    short = [image(Path(f"shirt-{i}.png"), i) for i in range(2)]
    long = [image(Path(f"a_rather_long_file_name_for_the_photo_of_a_shirt_number_{i}.png"), i) for i in range(2)]
    columns(80)
    r = cli("predict", "run", *short)
    assert r.exit_code == 0, r.stderr
    assert all(any(line.startswith(f"│ {p} ") for line in r.stdout.splitlines()) for p in short)  # one line each
    r = cli("predict", "run", *long)
    assert r.exit_code == 0, r.stderr
    assert "…" not in r.stdout and all(len(line) <= 80 for line in r.stdout.splitlines())
    column = "".join(line.split("│")[1].strip() for line in r.stdout.splitlines()[3:] if line.startswith("│"))
    assert column == "".join(map(str, long))  # folded onto more lines, every character kept, in order


# --- 4. help -------------------------------------------------------------------------------------------------

def command_paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*prefix, name))


def test_help_shows_flags_as_flags_and_no_python_type_names(cli):
    from fmnist.cli import app

    paths = list(command_paths(typer.main.get_command(app)))
    assert ("train",) in paths and ("data", "show") in paths and len(paths) > 12
    for path in paths:
        r = cli(*path, "--help")
        assert r.exit_code == 0, (path, r.stderr)
        for bad in ("<bool>", "BOOLEAN", "<class '", "list[", "Path]", "NoneType"):
            assert bad not in r.stdout, (path, bad)
        assert "--help" in r.stdout
    text = cli("train", "--help").stdout
    assert all(name in text for name in RECIPES)
    flag = next(line for line in text.splitlines() if "--overwrite" in line)
    assert flag.split("--overwrite")[1].split()[0] == "Replace"  # no type between a flag and its help


# --- 5. options validated before anything is written ---------------------------------------------------------

@pytest.mark.parametrize("option", [["--precision", "bogus"], ["--device", "tpu"], ["--device", "cuda"],
                                    ["--seed", "-1"]])
def test_train_and_cv_refuse_bad_options_before_the_out_directory_exists(cli, tiny_data_dir, tmp_path, option):
    if option == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    for command in (["train", "mlp"], ["cv", "mlp", "--folds", "2"]):
        r = cli(*idx(tiny_data_dir, *command, "--epochs", "1", "--out", out, *option))
        assert r.exit_code == 2, (command, r.stderr)
        clean(r)
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
        assert not out.exists(), command


def test_a_dataset_with_an_empty_test_split_is_refused_before_training(cli, tmp_path):
    train = make_split(50, seed=1)
    empty = Split(np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), train.classes)
    data = write_dataset(tmp_path / "data", train, empty)
    r = cli(*idx(data, "train", "mlp", *QUICK, "--out", tmp_path / "out"))
    assert r.exit_code == 2 and "test split" in r.stderr and "holds no images" in r.stderr
    assert not (tmp_path / "out").exists()


# --- 6. every --out refuses to replace what is there unless told ---------------------------------------------

def test_cv_out_refuses_other_options_a_training_run_and_a_file(cli, tiny_data_dir, tmp_path):
    out = tmp_path / "cv"
    args = idx(tiny_data_dir, "cv", "mlp", "--folds", "2", "--threads", "1", "--device", "cpu", "--out", out)
    assert cli(*args, "--epochs", "1").exit_code == 0
    fold = out / "folds" / "mlp" / "r1-f1.json"
    before = fold.read_bytes()
    for other in (["--epochs", "2"], ["--epochs", "1", "--seed", "7"], ["--epochs", "1", "--limit", "100"]):
        r = cli(*args, *other)
        assert r.exit_code == 2, other
        clean(r)
        assert "holds a cross-validation made with" in r.stderr and "--overwrite" in r.stderr
        assert fold.read_bytes() == before
    r = cli(*args, "--epochs", "2", "--overwrite", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["trained"] == 2 and len(json.loads(fold.read_text())["history"]) == 2
    assert cli(*args, "--epochs", "2").exit_code == 0  # the same options again: read back, as a resume

    run = tmp_path / "run"
    assert cli(*idx(tiny_data_dir, "train", "mlp", *QUICK, "--out", run)).exit_code == 0
    for target, needle in ((run, "holds a training run"), (run / "config.json", "is a file")):
        r = cli(*idx(tiny_data_dir, "cv", "mlp", "--folds", "2", *QUICK, "--out", target, "--overwrite"))
        assert r.exit_code == 2 and needle in r.stderr, r.stderr
    assert (run / "model.safetensors").is_file()


def test_data_show_out(cli, tiny_data_dir, tmp_path):
    show = idx(tiny_data_dir, "data", "show", "--n", "4", "--out")
    target = tmp_path / "grid.png"
    assert cli(*show, target).exit_code == 0
    stamp = target.stat().st_mtime_ns
    r = cli(*show, target)
    assert r.exit_code == 2 and "exists already" in r.stderr and "--overwrite" in r.stderr
    assert target.stat().st_mtime_ns == stamp
    assert cli(*show, target, "--overwrite").exit_code == 0
    for bad, needle in ((tmp_path / "samples.txt", "must be .png"), (tmp_path, "is a directory"),
                        (target / "x.png", "is a file, not a directory")):
        r = cli(*show, bad)
        assert r.exit_code == 2 and needle in r.stderr, r.stderr
        clean(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "tiny-data"]  # no temporary file left


def test_preprocess_out(cli, tmp_path):
    photo = image(tmp_path / "shirt.png")
    out = tmp_path / "pp"
    assert cli("preprocess", photo, "--out", out).exit_code == 0
    r = cli("preprocess", photo, "--out", out)
    assert r.exit_code == 2 and "holds files already" in r.stderr and "--overwrite" in r.stderr
    (out / "notes.txt").write_text("mine")
    assert cli("preprocess", photo, "--out", out, "--overwrite").exit_code == 0
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite replaces the files it writes, nothing else
    for bad, needle in ((photo, "is a file"), (photo / "sub", "is a file, not a directory")):
        r = cli("preprocess", photo, "--out", bad)
        assert r.exit_code == 2 and needle in r.stderr
        clean(r)


def test_preprocess_never_writes_one_input_over_another_sheet(cli, tmp_path):
    # "good-sheet.png" (an earlier output fed back in) and "good.png": the second's sheet would be the first's input.
    photos = tmp_path / "in"
    photos.mkdir()
    image(photos / "good-sheet.png")
    image(photos / "good.png")
    r = cli("preprocess", photos, "--out", tmp_path / "pp", "--json")
    assert r.exit_code == 0, r.stderr
    written = json.loads(r.stdout)["written"]
    outputs = [w[k] for w in written for k in ("input", "sheet")]
    assert len(set(outputs)) == 4 and all(Path(o).is_file() for o in outputs)


def test_a_data_cache_that_cannot_be_written_names_its_own_fix(cli, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path / "afile"))
    monkeypatch.setenv("FMNIST_SYSTEM_DIR", str(tmp_path / "no-system"))
    monkeypatch.setenv("FMNIST_MIRROR", "http://127.0.0.1:9/")  # never reached: the cache fails first
    r = cli("data", "fetch", "--dataset", "kmnist")
    flat = " ".join(r.stderr.split())
    assert r.exit_code == 2 and "FMNIST_CACHE=DIR" in flat and "--out" not in flat, flat
    assert "fmnist data fetch --dataset kmnist" in flat
    clean(r)


def test_dataset_folder_is_spelled_as_freely_as_the_others(cli):
    r = cli("--dataset", "Folder", "data", "info")
    assert r.exit_code == 2 and "--dataset folder needs --data-dir" in r.stderr
    r = cli("--dataset", "nope", "data", "info")
    assert r.exit_code == 2 and "folder" in r.stderr


def test_train_out_inside_a_file_is_a_sentence(cli, tiny_data_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    r = cli(*idx(tiny_data_dir, "train", "mlp", *QUICK, "--out", tmp_path / "file" / "run"))
    assert r.exit_code == 2 and "is a file, not a directory" in r.stderr
    clean(r)


# --- 7. evaluate checks the data against the model's ---------------------------------------------------------

def test_evaluate_warns_when_the_data_differ_and_loads_only_the_test_split(cli, tiny_data_dir, tmp_path, monkeypatch):
    import fmnist.data.load as load

    run = tmp_path / "run"
    assert cli(*idx(tiny_data_dir, "train", "mlp", *QUICK, "--out", run)).exit_code == 0
    other = write_dataset(tmp_path / "other", make_split(200, seed=5), make_split(100, seed=6))
    loaded = []
    real = load._load_files
    monkeypatch.setattr(load, "_load_files", lambda spec, location, names: loaded.extend(names) or real(spec, location, names))

    r = cli("evaluate", run, "--json")
    assert r.exit_code == 0, r.stderr
    same = json.loads(r.stdout)
    assert same["same_data_as_training"] is True and same["warnings"] == [] and "warning" not in r.stderr
    assert same["dataset_checksum"] == same["model_dataset_checksum"] and same["matches_recorded"] is True
    assert loaded and all(name.startswith("t10k-") for name in loaded)  # the training split is never read

    for args in (("evaluate", run, "--dataset", "idx", "--data-dir", other), ("--dataset", "idx", "evaluate", run,
                                                                               "--data-dir", other)):
        r = cli(*args, "--json")
        assert r.exit_code == 0, r.stderr
        differ = json.loads(r.stdout)
        assert differ["dataset"] == "idx" and differ["same_data_as_training"] is False
        assert differ["dataset_checksum"] != differ["model_dataset_checksum"]
        assert len(differ["warnings"]) == 1 and r.stderr.startswith("warning: ") and "checksum" in r.stderr
    text = cli("evaluate", run, "--data-dir", other)
    assert text.exit_code == 0 and "warning: " in text.stderr and "not comparable" in text.stderr



def test_evaluate_needs_only_the_test_files(cli, tiny_data_dir, tmp_path):
    # A folder of the two test files was refused for lacking the training files.
    run = tmp_path / "run"
    assert cli(*idx(tiny_data_dir, "train", "mlp", *QUICK, "--out", run)).exit_code == 0
    only_test = tmp_path / "only-test"
    only_test.mkdir()
    for path in tiny_data_dir.glob("t10k-*"):
        (only_test / path.name).write_bytes(path.read_bytes())
    r = cli("evaluate", run, "--data-dir", only_test, "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["matches_recorded"] is True and result["same_data_as_training"] is None
    (warning,) = result["warnings"]
    assert "holds no train-images-idx3-ubyte, train-labels-idx1-ubyte" in warning and "apt-get" not in warning

# --- 8. seeds ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", str(2**64 + 1), str(2**32)])
def test_seeds_outside_the_stated_range_are_a_sentence(cli, tiny_data_dir, tmp_path, seed):
    for command in (["train", "mlp"], ["cv", "mlp", "--folds", "2"]):
        r = cli(*idx(tiny_data_dir, *command, *QUICK, "--seed", seed, "--out", tmp_path / "out"))
        assert r.exit_code == 2, (command, r.stderr)
        clean(r)
        assert "--seed must be a whole number from 0 to 4294967295 (2**32 - 1)" in r.stderr
        assert not (tmp_path / "out").exists()


def test_preprocess_on_a_folder_of_class_folders_says_where_to_look(cli, tmp_path):
    (tmp_path / "photos" / "Bag").mkdir(parents=True)
    r = cli("preprocess", tmp_path / "photos", "--out", tmp_path / "views")
    assert r.exit_code == 2 and "no image files" in r.stderr and "--images" in r.stderr, r.stderr
    assert not (tmp_path / "views").exists()
    # Beside image files too: the folder is named and skipped (exit 2), not passed over in silence; the rest is done.
    Image.new("L", (28, 28)).save(tmp_path / "shirt.png")
    r = cli("preprocess", tmp_path / "shirt.png", tmp_path / "photos", "--out", tmp_path / "views")
    assert r.exit_code == 2 and f"skipped: no image files in {tmp_path / 'photos'} " in r.stderr and "--images" in r.stderr
    assert (tmp_path / "views" / "shirt.png").is_file()


def test_shell_completion_offers_recipe_names():
    env = {**os.environ, "COMP_WORDS": "fmnist train ba", "COMP_CWORD": "2", "_FMNIST_COMPLETE": "complete_bash"}
    r = subprocess.run([sys.executable, "-m", "fmnist"], capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.split() == ["baseline", "baseline-same", "baseline-wide"], (r.stdout, r.stderr)


def test_ctrl_c_in_a_command_that_does_not_catch_it_is_a_sentence_and_exit_130(cli, tiny_data_dir, tmp_path,
                                                                               monkeypatch):
    # Typer turned it into a silent exit 130.
    import fmnist.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fmnist.data, "load_dataset", interrupted)
    for args in ((), ("--json",)):
        r = cli("data", "info", "--data-dir", tiny_data_dir, "--dataset", "idx", *args)
        assert r.exit_code == 130 and "error: interrupted before the command finished" in r.stderr
    assert json.loads(r.stdout)["error"]["exit_code"] == 130


def test_cv_compares_a_recipe_with_a_variant_of_it_on_the_same_folds(cli, tiny_data_dir, tmp_path):
    from fmnist.recipes.overrides import variant
    from fmnist.errors import UsageError

    v = variant("fast+lr=1e+1+augment.erase=0.25", first=("epochs=3", "lr=0.3"))
    assert (v.name, v.optimizer.lr, v.augment.erase, v.epochs) == ("fast+lr=1e+1+augment.erase=0.25", 10.0, 0.25, 3)
    assert variant("fast+model_args.widths=[8,16]+model_args.blocks=[0,1]").model_args["blocks"] == [0, 1]
    assert variant("fast") is variant("fast") and variant("fast", first=("epochs=2",)).name == "fast"
    for spec, fragment in [("fast+lr", "neither a recipe nor a variant"), ("fast+name=x", "named by what it changes"),
                           ("fast+lr=abc", "'fast\\+lr=abc': invalid optimizer"), ("fst+lr=0.1", "did you mean 'fast'"),
                           ("fast+model_args.widths=[8,16]", "widths and blocks must have the same length")]:
        with pytest.raises(UsageError, match=fragment):
            variant(spec)
    out = tmp_path / "cv"
    r = cli(*idx(tiny_data_dir, "cv", "mlp", "mlp+lr=0.01", "--folds", "2", *QUICK, "--out", out, "--json"))
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert list(result["recipes"]) == ["mlp", "mlp+lr=0.01"]
    saved = json.loads((out / "folds" / "mlp_lr_0.01" / "r1-f1.json").read_text())
    assert saved["recipe"] == "mlp+lr=0.01" and saved["recipe_config"]["optimizer"]["lr"] == 0.01
    assert result["comparisons"][0]["sentence"].startswith("`mlp+lr=0.01` vs `mlp`: ")
