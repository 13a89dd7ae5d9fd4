"""The real Fashion-MNIST from Debian's dataset-fashion-mnist package; skipped where it is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmnist.data import load, load_dataset, load_split

SYSTEM = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(
    not SYSTEM.is_dir(), reason=f"{SYSTEM} is absent (apt-get install dataset-fashion-mnist to run these tests)"
)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real-cache")


@pytest.fixture(autouse=True)
def one_cache_for_the_module(isolated_cache, shared_cache, monkeypatch):
    """Decode the real files once per module, not once per test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))
    monkeypatch.delenv("FMNIST_SYSTEM_DIR", raising=False)
    monkeypatch.delenv("FMNIST_MIRROR", raising=False)


def test_system_copy_cold_then_warm(monkeypatch):
    ds = load_dataset(download=False)
    assert (ds.name, ds.source, ds.source_dir, ds.verified) == ("fashion-mnist", "system", SYSTEM, True)
    assert ds.train.images.shape == (60000, 28, 28) and ds.test.images.shape == (10000, 28, 28)
    assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int64
    assert ds.train.class_counts() == [6000] * 10 and ds.test.class_counts() == [1000] * 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert ds.train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # the seeds' first plotted images

    # Warm: the verified arrays come from the cache; neither hashing nor IDX decoding runs again (the speed of a
    # warm load is measured by the benchmarks, never asserted here).
    def no_idx_read(path):
        raise AssertionError(f"warm load read {path}")

    monkeypatch.setattr(load, "read_idx", no_idx_read)
    monkeypatch.setattr(load, "inspect_idx", no_idx_read)
    again = load_dataset(download=False)
    assert again.checksum == ds.checksum and again.verified
    np.testing.assert_array_equal(again.test.images, ds.test.images)


def test_load_split():
    test = load_split("test")
    assert len(test) == 10000 and test.class_counts() == [1000] * 10


@pytest.mark.parametrize("order", ["global", "local"])
def test_cli_info_on_the_system_directory(cli, order):
    args = ["--data-dir", SYSTEM, "data", "info", "--json"] if order == "global" else ["data", "info", "--json", "--data-dir", SYSTEM]
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["dataset"], info["source"], info["verified"]) == ("fashion-mnist", "data-dir", True)
    assert info["splits"]["train"] == {"count": 60000, "per_class": [6000] * 10}
    assert info["splits"]["test"] == {"count": 10000, "per_class": [1000] * 10}
