"""Loading: source order, verification remembered, the array cache, and every bad-data case (library and CLI)."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil

import numpy as np
import pytest

from fmnist.data import DATASETS, FILES, DatasetSpec, Split, get_spec, idx, load_dataset, load_split, write_dataset, write_idx
from fmnist.data import load as store
from fmnist.errors import DataError, UsageError

DIGITS = tuple(str(i) for i in range(10))


def tiny_splits(seed: int = 0, n_train: int = 40, n_test: int = 20, classes=DIGITS) -> tuple[Split, Split]:
    """Random images, labels cycling through every class."""
    rng = np.random.default_rng(seed)
    make = lambda n: Split(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.permutation(np.arange(n) % 10), classes)
    return make(n_train), make(n_test)


def raw_sha256(directory) -> dict[str, str]:
    """Checksums of a directory's decompressed files, computed independently of the code under test."""
    out = {}
    for f in FILES:
        p = directory / f"{f}.gz"
        out[f] = hashlib.sha256(gzip.decompress(p.read_bytes()) if p.exists() else (directory / f).read_bytes()).hexdigest()
    return out


def cache_files(cache) -> list:
    return sorted(p for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


@pytest.fixture
def tiny_dir(tmp_path):
    return write_dataset(tmp_path / "tiny", *tiny_splits())


@pytest.fixture
def no_system(tmp_path, monkeypatch):
    """Hide the real /usr/share/datasets/fashion-mnist."""
    monkeypatch.setenv("FMNIST_SYSTEM_DIR", str(tmp_path / "no-system"))
    monkeypatch.delenv("FMNIST_MIRROR", raising=False)


def test_idx_directory_loads_with_its_classes(tmp_path):
    train, test = tiny_splits(classes=tuple("abcdefghij"))
    directory = write_dataset(tmp_path / "d", train, test)
    ds = load_dataset("idx", data_dir=directory)
    assert (ds.name, ds.source, ds.source_dir, ds.verified) == ("idx", "data-dir", directory, False)
    assert ds.classes == tuple("abcdefghij") and ds.train.classes == ds.classes
    np.testing.assert_array_equal(ds.train.images, train.images)
    np.testing.assert_array_equal(ds.test.labels, test.labels)
    assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int64
    assert ds.test.images.shape == (20, 28, 28)
    assert ds.train.class_counts() == [4] * 10
    summary = ds.summary()
    assert summary["splits"] == {"train": {"count": 40, "per_class": [4] * 10}, "test": {"count": 20, "per_class": [2] * 10}}


def test_default_class_names_without_classes_txt(tiny_dir):
    (tiny_dir / "classes.txt").unlink()
    assert load_dataset("idx", data_dir=tiny_dir).classes == DIGITS


def test_checksum_identifies_content_not_compression(tmp_path):
    train, test = tiny_splits()
    gz = load_dataset("idx", data_dir=write_dataset(tmp_path / "gz", train, test, compress=True))
    raw = load_dataset("idx", data_dir=write_dataset(tmp_path / "raw", train, test, compress=False))
    other = load_dataset("idx", data_dir=write_dataset(tmp_path / "other", *tiny_splits(seed=1)))
    assert gz.checksum == raw.checksum != other.checksum
    assert len(gz.checksum) == 64


def test_sha256_spec_verifies_any_copy(tiny_dir):
    spec = DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, sha256=raw_sha256(tiny_dir))
    assert load_dataset(spec, data_dir=tiny_dir).verified


def test_md5_spec_verifies_only_gz_copies(tmp_path):
    train, test = tiny_splits()
    gz_dir = write_dataset(tmp_path / "gz", train, test, compress=True)
    raw_dir = write_dataset(tmp_path / "raw", train, test, compress=False)
    md5 = {f: hashlib.md5((gz_dir / f"{f}.gz").read_bytes()).hexdigest() for f in FILES}
    spec = DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, gz_md5=md5)
    assert load_dataset(spec, data_dir=gz_dir).verified
    assert not load_dataset(spec, data_dir=raw_dir).verified


def test_mnist_decompressed_copy_loads_unverified_and_gz_copy_is_checked(tmp_path):
    train, test = tiny_splits()
    ds = load_dataset("mnist", data_dir=write_dataset(tmp_path / "raw", train, test, compress=False))
    assert (ds.name, ds.verified, ds.classes) == ("mnist", False, DIGITS)
    with pytest.raises(DataError, match="MD5 of the .gz file") as e:
        load_dataset("mnist", data_dir=write_dataset(tmp_path / "gz", train, test, compress=True))
    assert "gunzip" in str(e.value)


def test_registry_names_and_aliases():
    assert set(DATASETS) == {"fashion-mnist", "mnist", "kmnist", "idx"}
    assert get_spec("fashion") is get_spec("Fashion-MNIST") is DATASETS["fashion-mnist"]
    assert DATASETS["kmnist"].classes[:3] == ("o", "ki", "su")
    assert DATASETS["fashion-mnist"].classes[9] == "Ankle boot"
    with pytest.raises(UsageError, match="unknown dataset"):
        get_spec("cifar10")


def test_idx_needs_a_data_dir():
    with pytest.raises(UsageError, match="needs --data-dir"):
        load_dataset("idx")


def test_data_dir_from_environment(tiny_dir, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tiny_dir))
    assert load_dataset("idx").source_dir == tiny_dir


def test_source_order(tmp_path, isolated_cache):
    """data dir > cache > system; a given data dir never falls back."""
    system, given = (write_dataset(tmp_path / name, *tiny_splits(seed)) for seed, name in enumerate(["system", "given"]))
    spec = DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, system_dir=system)
    assert load_dataset(spec).source == "system"
    write_dataset(isolated_cache / "tiny", *tiny_splits(2))
    ds = load_dataset(spec)
    assert (ds.source, ds.source_dir) == ("cache", isolated_cache / "tiny")
    ds = load_dataset(spec, data_dir=given)
    assert (ds.source, ds.source_dir) == ("data-dir", given)
    (given / f"{FILES[0]}.gz").unlink()
    with pytest.raises(DataError, match=f"lacks {FILES[0]}"):
        load_dataset(spec, data_dir=given)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(spec, data_dir=tmp_path / "nowhere")


def test_incomplete_cache_is_not_a_source(tmp_path, isolated_cache):
    system = write_dataset(tmp_path / "system", *tiny_splits())
    write_dataset(isolated_cache / "tiny", *tiny_splits(1))
    (isolated_cache / "tiny" / f"{FILES[3]}.gz").unlink()
    spec = DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, system_dir=system)
    assert load_dataset(spec, download=False).source == "system"


def test_one_split_loads_from_a_copy_holding_its_files_a_complete_copy_first(tmp_path, isolated_cache):
    # evaluate wanted the training files too; and a cache of the test files alone must not hide a complete copy.
    system_splits, cache_splits = tiny_splits(0), tiny_splits(1)
    system = write_dataset(tmp_path / "system", *system_splits)
    write_dataset(isolated_cache / "tiny", *cache_splits)
    for name in FILES[:2]:
        (isolated_cache / "tiny" / f"{name}.gz").unlink()  # the cache holds the test split only
    spec = DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, system_dir=system)
    assert np.array_equal(load_split("test", spec, download=False).images, system_splits[1].images)
    alone = DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, system_dir=tmp_path / "nowhere")
    assert np.array_equal(load_split("test", alone, download=False).images, cache_splits[1].images)
    with pytest.raises(DataError, match="not found"):
        load_split("train", alone, download=False)


def test_missing_data_message_gives_the_three_ways(no_system, isolated_cache):
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", download=False)
    message = str(e.value)
    for way in ("--data-dir DIR", "FMNIST_DATA_DIR", "apt-get install dataset-fashion-mnist", "fmnist data fetch"):
        assert way in message
    assert "\n" not in message
    assert cache_files(isolated_cache) == []


def test_system_copy_is_checked_against_fashion_mnist(tiny_dir, monkeypatch, isolated_cache):
    monkeypatch.setenv("FMNIST_SYSTEM_DIR", str(tiny_dir))
    with pytest.raises(DataError, match="checksum mismatch") as e:
        load_dataset("fashion-mnist", download=False)
    assert str(tiny_dir / f"{FILES[0]}.gz") in str(e.value)
    assert "apt-get install --reinstall dataset-fashion-mnist" in str(e.value)
    assert cache_files(isolated_cache) == []


def test_mismatch_names_the_dataset_the_file_belongs_to(tiny_dir, monkeypatch):
    """The trap in SEEDS.md: another dataset's file served under Fashion-MNIST's name."""
    other = DatasetSpec(name="other", title="Other", classes=DIGITS, sha256=raw_sha256(tiny_dir))
    monkeypatch.setitem(DATASETS, "other", other)
    with pytest.raises(DataError, match=f"this file is Other's {FILES[0]}"):
        load_dataset("fashion-mnist", data_dir=tiny_dir)


def test_load_split_reads_only_its_files(tiny_dir):
    (tiny_dir / f"{FILES[0]}.gz").write_bytes(b"garbage")  # train images: must not be read for the test split
    test = load_split("test", "idx", tiny_dir)
    assert len(test) == 20 and test.labels.dtype == np.int64
    with pytest.raises(DataError, match="wrong magic number"):
        load_split("train", "idx", tiny_dir)
    with pytest.raises(UsageError, match="unknown split"):
        load_split("validation", "idx", tiny_dir)


def test_verification_is_remembered_and_arrays_cached(tiny_dir, monkeypatch, isolated_cache):
    hashed = []
    real_sha256 = idx.sha256_hex
    monkeypatch.setattr(idx, "sha256_hex", lambda data: hashed.append(len(data)) or real_sha256(data))
    spec = DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, sha256=raw_sha256(tiny_dir))
    cold = load_dataset(spec, data_dir=tiny_dir)
    assert len(hashed) == 4 and cold.verified
    assert len(list((isolated_cache / "arrays").glob("*.npy"))) == 4
    assert not [p for p in isolated_cache.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]

    def no_idx_read(path):
        raise AssertionError(f"warm load read {path}")

    with monkeypatch.context() as m:  # warm: neither hashing nor IDX decoding
        m.setattr(store, "read_idx", no_idx_read)
        m.setattr(store, "inspect_idx", no_idx_read)
        warm = load_dataset(spec, data_dir=tiny_dir)
    assert len(hashed) == 4 and warm.verified and warm.checksum == cold.checksum
    np.testing.assert_array_equal(warm.train.images, cold.train.images)
    np.testing.assert_array_equal(warm.test.labels, cold.test.labels)

    shutil.rmtree(isolated_cache / "arrays")  # arrays gone: decoded again, still not re-hashed
    assert load_dataset(spec, data_dir=tiny_dir).verified and len(hashed) == 4
    path = tiny_dir / f"{FILES[1]}.gz"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a changed file is hashed again
    load_dataset(spec, data_dir=tiny_dir)
    assert len(hashed) == 5


def test_changed_file_is_caught_even_after_verification(tiny_dir):
    spec = DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, sha256=raw_sha256(tiny_dir))
    load_dataset(spec, data_dir=tiny_dir)
    write_idx(tiny_dir / f"{FILES[3]}.gz", np.arange(20) % 10, compress=True)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset(spec, data_dir=tiny_dir)


# --- every bad-data case: DataError naming the file, exit code 2 through the CLI, nothing cached ---------------


def _drop(d):
    (d / f"{FILES[3]}.gz").unlink()


def _truncate_raw(d):
    raw = gzip.decompress((d / f"{FILES[0]}.gz").read_bytes())
    (d / f"{FILES[0]}.gz").unlink()
    (d / FILES[0]).write_bytes(raw[:-100])


def _truncate_gz(d):
    p = d / f"{FILES[0]}.gz"
    p.write_bytes(p.read_bytes()[:500])


def _corrupt_gz(d):
    p = d / f"{FILES[2]}.gz"
    blob = bytearray(p.read_bytes())
    blob[20:60] = bytes(40)
    p.write_bytes(bytes(blob))


def _rewrite(d, fname, data):
    (d / f"{fname}.gz").write_bytes(gzip.compress(data))


BAD_DATA = {
    # case: (mutation, file named in the message, words of the problem, dataset)
    "missing": (_drop, FILES[3], "lacks", "idx"),
    "truncated": (_truncate_raw, FILES[0], "truncated", "idx"),
    "truncated-gz": (_truncate_gz, FILES[0], "bad gzip stream", "idx"),
    "corrupt-gz": (_corrupt_gz, FILES[2], "bad gzip stream", "idx"),
    "wrong-magic": (lambda d: _rewrite(d, FILES[1], b"\x00\x00\x08\x04" + bytes(20)), FILES[1], "wrong magic number", "idx"),
    "images-as-labels": (
        lambda d: shutil.copy(d / f"{FILES[2]}.gz", d / f"{FILES[3]}.gz"),
        FILES[3],
        "wrong magic number",
        "idx",
    ),
    "wrong-element-type": (lambda d: _rewrite(d, FILES[3], b"\x00\x00\x0b\x01" + bytes(44)), FILES[3], "element type", "idx"),
    "extra-bytes": (lambda d: _rewrite(d, FILES[3], b"\x00\x00\x08\x01\x00\x00\x00\x02" + bytes(5)), FILES[3], "bytes after", "idx"),
    "wrong-dimensions": (
        lambda d: write_idx(d / f"{FILES[0]}.gz", np.zeros((40, 32, 32), np.uint8), compress=True),
        FILES[0],
        "wrong dimensions",
        "idx",
    ),
    "count-mismatch": (lambda d: write_idx(d / f"{FILES[3]}.gz", np.zeros(19, np.uint8), compress=True), FILES[3], "19 labels", "idx"),
    "label-out-of-range": (
        lambda d: write_idx(d / f"{FILES[1]}.gz", np.full(40, 10, np.uint8), compress=True),
        FILES[1],
        "label 10 out of range",
        "idx",
    ),
    "checksum-mismatch": (lambda d: None, FILES[0], "checksum mismatch", "fashion-mnist"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_a_clear_error(case, tiny_dir, cli, isolated_cache):
    mutate, fname, problem, dataset = BAD_DATA[case]
    mutate(tiny_dir)
    with pytest.raises(DataError) as e:
        load_dataset(dataset, data_dir=tiny_dir)
    message = str(e.value)
    assert fname in message and problem in message and "Fix:" in message, message

    r = cli("data", "info", "--data-dir", tiny_dir, "--dataset", dataset)
    assert r.exit_code == 2
    flat = " ".join(r.stderr.split())  # the console wraps long lines
    assert fname in flat and problem in flat and "Traceback" not in r.stderr
    assert cache_files(isolated_cache) == []


def test_short_classes_txt_is_out_of_range(tiny_dir):
    (tiny_dir / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="label 9 out of range") as e:
        load_dataset("idx", data_dir=tiny_dir)
    assert "classes.txt" in str(e.value)
    (tiny_dir / "classes.txt").write_text("a\n\nb\n")
    with pytest.raises(DataError, match="line 2 is blank"):
        load_dataset("idx", data_dir=tiny_dir)


def test_labels_past_ten_without_classes_txt_ask_for_it(tiny_dir):
    """Ten classes are only the default of a directory with no classes.txt: the error says so and asks for names."""
    (tiny_dir / "classes.txt").unlink()
    write_idx(tiny_dir / f"{FILES[1]}.gz", np.arange(40, dtype=np.uint8) % 26, compress=True)
    with pytest.raises(DataError, match="label 25 out of range") as e:
        load_dataset("idx", data_dir=tiny_dir)
    message = str(e.value)
    assert "without classes.txt has the 10 classes of MNIST" in message
    assert f"26 or more class names, one per line, in {tiny_dir / 'classes.txt'}" in message


def test_classes_txt_with_a_byte_order_mark_and_with_duplicates(tmp_path):
    directory = write_dataset(tmp_path / "d", Split(np.zeros((2, 28, 28), np.uint8), np.array([0, 1]), ("a", "b")),
                              Split(np.zeros((2, 28, 28), np.uint8), np.array([0, 1]), ("a", "b")))
    (directory / "classes.txt").write_bytes("\ufeffshirt\nshoe\n".encode("utf-8"))
    assert load_dataset("idx", data_dir=directory).classes == ("shirt", "shoe")
    (directory / "classes.txt").write_text("shirt\nshirt\n")
    with pytest.raises(DataError, match="'shirt' named more than once"):
        load_dataset("idx", data_dir=directory)
