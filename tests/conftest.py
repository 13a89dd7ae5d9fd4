"""Shared fixtures: an isolated cache per test and an in-process CLI runner."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fmnist.cli import main


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty cache, and never sees the user's FMNIST_DATA_DIR."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
    monkeypatch.delenv("FMNIST_CACHE", raising=False)  # the cache root follows XDG_CACHE_HOME here
    monkeypatch.setenv("COLUMNS", "200")
    return cache / "fmnist"


@pytest.fixture(autouse=True)
def tiny_model_registered(monkeypatch):
    """The "test-tiny" architecture (tests.helpers.TinyNet) in the model registry, for this test only."""
    from fmnist.models import MODELS

    from tests.helpers import TinyNet

    monkeypatch.setitem(MODELS, "test-tiny", TinyNet)


@pytest.fixture
def cli(capsys):
    """Run `fmnist ARGS...` in-process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def tiny_data_dir(tmp_path):
    """A directory of the four IDX files (.gz) holding 200 train / 100 test tiny images."""
    from fmnist.data import write_dataset

    from tests.helpers import make_split

    directory = tmp_path / "tiny-data"
    write_dataset(directory, make_split(200, seed=1), make_split(100, seed=2))
    return directory
