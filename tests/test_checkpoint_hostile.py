"""Model files made to hurt: each is refused with a DataError sentence before anything large is allocated.

Most files here carry a *valid* digest (computed with checkpoint's own `_digest`), so what refuses them is the
check under test, not the checksum.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import stat
import struct
import time
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from fmnist import checkpoint
from fmnist.checkpoint import ModelMeta, load_model, read_meta, save_model
from fmnist.errors import DataError
from fmnist.models import build_model
from tests.helpers import CLASSES, tiny_meta, tiny_model

MB = 2**20


def forge(path, tensors: dict[str, torch.Tensor], fields: dict[str, str], version: str = "1"):
    """Write a safetensors model file with these tensors and metadata fields and a digest that matches them."""
    metadata = {"format": "fmnist-model", "format_version": version, **fields,
                "digest": checkpoint._digest(fields, tensors)}
    save_file(tensors, str(path), metadata=metadata)
    return path


def tiny_tensors(**changes) -> dict[str, torch.Tensor]:
    tensors = {k: v.contiguous() for k, v in tiny_model().state_dict().items()}
    tensors.update(changes)
    return {k: v for k, v in tensors.items() if v is not None}


def tiny_fields(**changes) -> dict[str, str]:
    """The tiny model's metadata as stored: one JSON string per field; `changes` are raw JSON strings."""
    return checkpoint._meta_fields(tiny_meta()) | changes


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def refused(path, match: str) -> DataError:
    """load_model refuses `path` with a DataError naming it and matching `match`."""
    with pytest.raises(DataError, match=match) as e:
        load_model(path)
    assert str(path) in str(e.value)
    assert "Traceback" not in str(e.value)
    return e.value


def test_a_forged_file_with_a_valid_digest_still_loads(tmp_path):
    # The control: forge() writes what save_model writes, so the refusals below are the checks' doing.
    model, meta = load_model(forge(tmp_path / "m.safetensors", tiny_tensors(), tiny_fields()))
    assert meta == tiny_meta(created=meta.created) and isinstance(model, torch.nn.Module)


@pytest.mark.parametrize(("widths", "blocks"), [([100_000, 100_000, 100_000], [1, 1, 1]), ([-64], [1]), ([64], [10**9])])
def test_absurd_resnet_arguments_are_refused_before_building(tmp_path, widths, blocks):
    args = {"in_channels": 1, "num_classes": 3, "stem": 16, "widths": widths, "blocks": blocks}
    meta = ModelMeta(model="resnet", model_args=args, classes=CLASSES)  # ModelMeta itself does not bound sizes
    path = forge(tmp_path / "m.safetensors", tiny_tensors(), checkpoint._meta_fields(meta))
    before, start = peak_rss_mb(), time.monotonic()
    error = refused(path, r"out of bounds \(allowed: ")
    assert time.monotonic() - start < 10
    assert peak_rss_mb() - before < 200
    assert len(str(error)) < 1000  # the refused values are abbreviated, not echoed whole


def test_arguments_within_bounds_but_not_matching_the_tensors_allocate_nothing(tmp_path):
    # The largest resnet the bounds allow is ~2.5 billion parameters (10 GB): built on the meta device and compared
    # with the file's tiny tensors, it is refused without a byte of it allocated.
    args = {"in_channels": 1, "num_classes": 3, "stem": 1024, "widths": [1024] * 8, "blocks": [16] * 8}
    meta = ModelMeta(model="resnet", model_args=args, classes=CLASSES)
    path = forge(tmp_path / "m.safetensors", tiny_tensors(), checkpoint._meta_fields(meta))
    before, start = peak_rss_mb(), time.monotonic()
    refused(path, r"do not fit architecture 'resnet'.*: tensor 'stem\.0\.weight' is missing")
    assert time.monotonic() - start < 30
    assert peak_rss_mb() - before < 200


@pytest.mark.parametrize(("model", "args", "match"), [
    ("baseline", {"filters": -3}, r"filters=-3 is out of bounds \(allowed: 1\.\.1024\)"),
    ("baseline", {"filters": True}, r"filters=True is out of bounds"),
    ("baseline", {"filters": 2.5}, r"filters=2\.5 is out of bounds"),
    ("baseline", {"padding": "reflect"}, r"padding='reflect' is out of bounds \(allowed: valid\|same\)"),
    ("baseline", {"evil": 1}, r"'baseline' takes no argument 'evil'"),
    ("mlp", {"hidden": 10**12}, r"hidden=1000000000000 is out of bounds"),
    ("resnet", {"widths": [8] * 9, "blocks": [0] * 9}, r"widths=.* is out of bounds \(allowed: 1\.\.1024, 8 at most\)"),
    ("resnet", {"stem": "16"}, r"stem='16' is out of bounds"),
    ("minivgg", {"image_size": 10**6}, r"image_size=1000000 is out of bounds \(allowed: 28\.\.28\)"),
    ("test-tiny", {"width": -1}, r"width=-1 is not a bool, short string or small int"),
    ("test-tiny", {"width": 10**7}, r"width=10000000 is not a bool"),
])
def test_out_of_bounds_arguments(tmp_path, model, args, match):
    meta = ModelMeta(model=model, model_args={"in_channels": 1, "num_classes": 3, **args}, classes=CLASSES)
    path = forge(tmp_path / "m.safetensors", tiny_tensors(), checkpoint._meta_fields(meta))
    refused(path, match)
    with pytest.raises(DataError, match=match):
        read_meta(path)  # the header alone is checked the same way
    with pytest.raises(ValueError, match=match):  # and save_model never writes a file load_model would refuse
        save_model(tmp_path / "saved.safetensors", tiny_model(), meta)
    assert not (tmp_path / "saved.safetensors").exists()


@pytest.mark.parametrize(("num_classes", "in_channels"), [(0, 1), (-1, 1), (10**6, 1), (3, 3), (3, 0)])
def test_class_and_channel_counts(tmp_path, num_classes, in_channels):
    fields = tiny_fields(model_args=json.dumps({"in_channels": in_channels, "num_classes": num_classes, "width": 4}))
    refused(forge(tmp_path / "m.safetensors", tiny_tensors(), fields), "invalid metadata")


def test_known_architectures_within_bounds_still_save_and_load(tmp_path):
    args = {"in_channels": 1, "num_classes": 10, "stem": 4, "widths": [8, 8], "blocks": [0, 1]}
    torch.manual_seed(0)
    model = build_model("resnet", **args).eval()
    meta = ModelMeta(model="resnet", model_args=args, classes=[str(i) for i in range(10)])
    loaded, _ = load_model(save_model(tmp_path / "r.safetensors", model, meta))
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_wrong_dtype(tmp_path):
    tensors = tiny_tensors(**{"conv.weight": tiny_model().conv.weight.detach().double()})
    refused(forge(tmp_path / "m.safetensors", tensors, tiny_fields()),
            r"tensor 'conv\.weight' is F64 \[4, 1, 3, 3\] where the architecture has F32 \[4, 1, 3, 3\]")


def test_wrong_shape(tmp_path):
    tensors = tiny_tensors(**{"fc.weight": torch.zeros(3, 4 * 7 * 7 + 1)})
    refused(forge(tmp_path / "m.safetensors", tensors, tiny_fields()),
            r"tensor 'fc\.weight' is F32 \[3, 197\] where the architecture has F32 \[3, 196\]")


def test_missing_tensor(tmp_path):
    refused(forge(tmp_path / "m.safetensors", tiny_tensors(**{"fc.bias": None}), tiny_fields()),
            r"tensor 'fc\.bias' is missing")


def test_extra_tensor(tmp_path):
    refused(forge(tmp_path / "m.safetensors", tiny_tensors(payload=torch.zeros(1000)), tiny_fields()),
            r"extra tensor 'payload'")


@pytest.mark.parametrize(("version", "match"), [
    ("2", "newer than this fmnist reads"), ("999999999", "newer than this fmnist reads"),
    ("0", "invalid format_version '0'"), ("-1", "invalid format_version"), ("1.0", "invalid format_version"),
    ("²", "invalid format_version"), ("", "invalid format_version"), ("1" * 500, "invalid format_version"),
])
def test_unknown_format_versions(tmp_path, version, match):
    refused(forge(tmp_path / "m.safetensors", tiny_tensors(), tiny_fields(), version=version), match)


@pytest.mark.parametrize(("field", "value"), [
    ("model_args", "[" * 100_000 + "]" * 100_000),  # nested far deeper than the recursion limit
    ("mean", "1" + "0" * 400),  # an integer too large for a float
    ("mean", "NaN"), ("std", "Infinity"), ("std", "0"),
    ("classes", json.dumps(["x"] * 20_000)),
    ("classes", "{}"), ("input_size", "7"), ("input_size", json.dumps([28] * 10_000)),
    ("tta_flip", "\"yes\""), ("confidence_threshold", "2"), ("created", "[1, 2]"), ("model", "null"),
    ("model", json.dumps("x" * 100_000)), ("model_args", "[]"), ("recipe", "5"), ("metrics", "[]"),
])
def test_hostile_metadata_values(tmp_path, field, value):
    error = refused(forge(tmp_path / "m.safetensors", tiny_tensors(), tiny_fields(**{field: value})), "damaged|not have")
    assert len(str(error)) < 2000


def test_a_pickle_renamed(tmp_path):
    path = tmp_path / "model.safetensors"
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps({"state_dict": [1, 2, 3]}, protocol=protocol))
        refused(path, "not a safetensors file: it looks like a Python pickle")


def test_a_torch_checkpoint_renamed(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save(tiny_model().state_dict(), path)  # a zip archive holding a pickle
    refused(path, "looks like a zip archive")
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:
        z.writestr("a.txt", "hello")
    os.replace(tmp_path / "plain.zip", path)
    refused(path, "looks like a zip archive")


def test_header_length_larger_than_the_file(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 10 * MB) + b'{"a": 1}')
    refused(path, r"is truncated: its header should be 10,485,760 bytes but only 8 follow its length")


def test_header_length_larger_than_any_model_file(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{")
    refused(path, "more than a model file's")
    with pytest.raises(DataError, match="more than a model file's"):
        read_meta(path)


@pytest.mark.parametrize(("header", "match"), [
    (b"{not json at all}", "its header is not valid JSON"),
    (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]', "its header is not valid JSON"),
    (b"[1, 2, 3]", "its header is not a JSON object"),
    (b'"a string"', "its header is not a JSON object"),
    (b"{" * 50_000, "its header is not valid JSON"),
    (b'{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', "is truncated or damaged"),
    (b'{"a": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}', "is truncated or damaged"),
    (b'{"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}', "truncated or damaged"),
    (b'{"__metadata__": {"format": 1}}', "is truncated or damaged"),
])
def test_damaged_headers(tmp_path, header, match):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    refused(path, match)


def test_safetensors_header_without_fmnist_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    header = b"{}"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    refused(path, "not an fmnist model")


def test_saved_model_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_model(tmp_path / "m.safetensors", tiny_model(), tiny_meta())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
