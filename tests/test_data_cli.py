"""`fmnist data info|fetch|show`: options before or after the subcommand, JSON shape, errors, the sample grid."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from fmnist.data import FILES, Split, write_dataset
from fmnist.plots.samples import plot_sample_grid

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.fixture
def data_dir(tmp_path):
    rng = np.random.default_rng(0)
    make = lambda n: Split(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10, CLASSES)
    return write_dataset(tmp_path / "tiny", make(30), make(10))


@pytest.fixture(autouse=True)
def no_system(tmp_path, monkeypatch):
    """These tests never see the real /usr/share/datasets/fashion-mnist or a real mirror."""
    monkeypatch.setenv("FMNIST_SYSTEM_DIR", str(tmp_path / "no-system"))
    monkeypatch.delenv("FMNIST_MIRROR", raising=False)


def test_info_json_with_options_before_or_after_the_subcommand(data_dir, cli):
    before = cli("--data-dir", data_dir, "--dataset", "idx", "data", "info", "--json")
    after = cli("data", "info", "--json", "--data-dir", data_dir, "--dataset", "idx")
    mixed = cli("--dataset", "idx", "data", "info", "--data-dir", data_dir, "--json")
    assert before.exit_code == after.exit_code == mixed.exit_code == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout == mixed.stdout
    info = json.loads(before.stdout)
    assert {"dataset", "source", "verified", "splits"} <= set(info)
    assert (info["dataset"], info["source"], info["verified"]) == ("idx", "data-dir", False)
    assert info["splits"] == {"train": {"count": 30, "per_class": [3] * 10}, "test": {"count": 10, "per_class": [1] * 10}}
    assert info["classes"] == list(CLASSES) and info["shape"] == [28, 28] and info["source_dir"] == str(data_dir)


def test_data_dir_from_environment(data_dir, cli, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA_DIR", str(data_dir))
    r = cli("data", "info", "--json", "--dataset", "idx")
    assert r.exit_code == 0 and json.loads(r.stdout)["source_dir"] == str(data_dir)


def test_info_table(data_dir, cli):
    r = cli("data", "info", "--data-dir", data_dir, "--dataset", "idx")
    assert r.exit_code == 0
    assert "Ankle boot" in r.stdout and "verified: no" in r.stdout and "train 30, test 10" in r.stdout


def test_fetch_reports_the_source(data_dir, cli):
    r = cli("data", "fetch", "--data-dir", data_dir, "--dataset", "idx")
    assert r.exit_code == 0 and "source: the data directory" in r.stdout
    r = cli("data", "fetch", "--data-dir", data_dir, "--dataset", "idx", "--json")
    assert json.loads(r.stdout)["source"] == "data-dir"


def test_fetch_with_a_data_dir_that_lacks_the_files_says_it_downloads_nothing_there(cli, tmp_path, monkeypatch):
    # Its advice was to pass --data-dir or run `fmnist data fetch`: what the user had just done.
    r = cli("--data-dir", tmp_path, "data", "fetch")
    assert r.exit_code == 2 and "reads that directory only and downloads nothing" in r.stderr
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path))
    r = cli("data", "fetch")
    assert r.exit_code == 2 and "reads that directory only and downloads nothing" in r.stderr


def test_truncated_file_exit_2_one_paragraph_nothing_cached(data_dir, cli, isolated_cache):
    raw = gzip.decompress((data_dir / f"{FILES[2]}.gz").read_bytes())
    (data_dir / f"{FILES[2]}.gz").unlink()
    (data_dir / FILES[2]).write_bytes(raw[:1000])
    r = cli("--data-dir", data_dir, "data", "info", "--json", "--dataset", "idx")
    assert r.exit_code == 2 and json.loads(r.stdout)["error"]["exit_code"] == 2  # --json: the error as the document
    message = r.stderr.strip()
    assert message.startswith("error:") and "\n\n" not in message and "Traceback" not in message
    flat = " ".join(message.split())
    assert f"{data_dir / FILES[2]}: truncated" in flat and "Fix:" in flat
    assert not isolated_cache.exists() or not any(p.is_file() for p in isolated_cache.rglob("*"))


def test_missing_data_lists_the_ways_to_get_it(cli):
    r = cli("data", "info")
    flat = " ".join(r.stderr.split())
    assert r.exit_code == 2
    for way in ("--data-dir DIR", "apt-get install dataset-fashion-mnist", "fmnist data fetch"):
        assert way in flat


def test_unknown_dataset_is_a_usage_error(cli, data_dir):
    r = cli("data", "info", "--dataset", "cifar", "--data-dir", data_dir)
    assert r.exit_code == 2 and "unknown dataset" in r.stderr


def test_show_writes_a_grid(data_dir, cli, tmp_path):
    out = tmp_path / "grid.png"
    r = cli("data", "show", "--split", "test", "--n", "7", "--out", out, "--data-dir", data_dir, "--dataset", "idx", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {"dataset": "idx", "split": "test", "n": 7, "path": str(out)}
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (420, 505)  # 3x3 cells of 1.4 x 1.55 inches + title, 100 dpi
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".png"] == ["grid.png"]


@pytest.mark.parametrize("args", [["--n", "0"], ["--split", "val"], ["--n", "31"]])
def test_show_bad_options(data_dir, cli, tmp_path, args):
    r = cli("data", "show", *args, "--out", tmp_path / "x.png", "--data-dir", data_dir, "--dataset", "idx")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_plot_sample_grid_shape(tmp_path):
    images = np.zeros((25, 28, 28), np.uint8)
    path = plot_sample_grid(images, np.arange(25) % 10, CLASSES, tmp_path / "g.png")
    with Image.open(path) as im:
        assert im.size == (700, 775)  # 5x5 cells, no title
    with pytest.raises(ValueError):
        plot_sample_grid(images, np.arange(3), CLASSES, tmp_path / "bad.png")


def test_json_output_never_holds_a_bare_nan(capsys):
    import json

    from fmnist.cli.common import print_json

    print_json({"loss": float("nan"), "rows": [float("inf"), 1.5], "nested": {"x": -float("inf")}})
    assert json.loads(capsys.readouterr().out) == {"loss": None, "rows": [None, 1.5], "nested": {"x": None}}


def test_info_and_show_read_an_image_folder_and_list_what_they_skip(cli, tmp_path):
    folder = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for name in ("Trouser", "Bag"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            article = np.full((60, 60, 3), 255, np.uint8)
            article[10:50, 15:45] = rng.integers(0, 120, 3)
            Image.fromarray(article).save(folder / name / f"{i}.png")
    (folder / "Bag" / "broken.png").write_text("not an image")
    r = cli("--dataset", "folder", "--data-dir", folder, "data", "info", "--json")
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["source"] == "folder" and sum(s["count"] for s in info["splits"].values()) == 6
    assert "broken.png" in r.stderr
    r = cli("data", "show", "--dataset", "folder", "--data-dir", folder, "--n", "2", "--out", tmp_path / "grid.png")
    assert r.exit_code == 0 and (tmp_path / "grid.png").stat().st_size > 1000, r.stderr
