"""Folds as Ray tasks on a local Ray instance give the sequential scores; without Ray, a clear usage error."""

from __future__ import annotations

import sys

import pytest

from fmnist.cv.runner import run_cv
from fmnist.errors import UsageError
from tests.helpers import config, tiny_data, tiny_recipes


@pytest.mark.timeout(180)
def test_two_folds_as_ray_tasks_match_the_sequential_run(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'fmnist[ray]'")
    data = tiny_data(120)
    kw = {"recipes": tiny_recipes()[:1], "folds": 2, "threads": 1}
    sequential = run_cv(config(tmp_path / "seq", **kw), data)
    distributed = run_cv(config(tmp_path / "ray", ray=True, jobs=2, **kw), data)
    assert distributed.executor == "ray" and distributed.trained == 2
    assert not ray.is_initialized()  # the instance we started is shut down again
    assert distributed.scores() == sequential.scores()
    for a, b in zip(sequential.results["mlp"], distributed.results["mlp"]):
        assert (a.fingerprint, a.seed, a.threads) == (b.fingerprint, b.seed, b.threads)
        assert [r["val_loss"] for r in a.history] == [r["val_loss"] for r in b.history]
    assert (tmp_path / "ray" / "folds" / "mlp" / "r1-f2.json").is_file()


def test_missing_ray_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UsageError, match=r"Ray is not installed; pip install 'fmnist\[ray\]'"):
        run_cv(config(tmp_path, ray=True), tiny_data(50))


def test_cli_without_ray_exits_2_with_the_install_hint(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    r = cli("cv", "mlp", "--ray-address", "127.0.0.1:6379", "--out", tmp_path)
    assert r.exit_code == 2
    assert "Ray is not installed; pip install 'fmnist[ray]'" in r.stderr
