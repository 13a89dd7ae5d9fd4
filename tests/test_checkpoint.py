"""The model file: round trip, run directories, and every way a bad file is refused."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from fmnist import checkpoint
from fmnist.checkpoint import ModelMeta, load_model, read_meta, resolve_model_path, save_model
from fmnist.errors import DataError
from fmnist.models import build_model, list_models
from fmnist.recipes import get_recipe
from tests.helpers import CLASSES, tiny_meta, tiny_model



def header_length(path) -> int:
    """Bytes of the safetensors JSON header (the data region starts 8 bytes after it)."""
    return struct.unpack("<Q", path.read_bytes()[:8])[0]


@pytest.fixture
def saved(tmp_path):
    """A saved tiny model: (path, model, meta)."""
    model, meta = tiny_model(), tiny_meta()
    path = save_model(tmp_path / "run" / "model.safetensors", model, meta)
    return path, model, meta


def test_round_trip_identical_logits_and_meta(saved):
    path, model, meta = saved
    loaded, loaded_meta = load_model(path)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded_meta == meta
    assert read_meta(path) == meta
    assert not loaded.training
    assert loaded_meta.metrics["test_loss"] == pytest.approx(0.25)  # numpy scalar stored as a plain number


def test_metadata_is_plain_json_strings(saved):
    path, _, meta = saved
    header = json.loads(path.read_bytes()[8 : 8 + header_length(path)])
    md = header["__metadata__"]
    assert md["format"] == "fmnist-model" and md["format_version"] == "1"
    assert md["digest"].startswith("sha256:")
    assert json.loads(md["classes"]) == CLASSES
    assert json.loads(md["model_args"]) == {"in_channels": 1, "num_classes": 3, "width": 4}
    assert json.loads(md["input_size"]) == [28, 28] and json.loads(md["in_channels"]) == 1
    assert json.loads(md["version"]) == meta.version and json.loads(md["created"]) == meta.created


def test_channels_last_weights_are_saved_contiguous(tmp_path):
    model = tiny_model().to(memory_format=torch.channels_last)
    assert not model.conv2.weight.is_contiguous()
    path = save_model(tmp_path / "m.safetensors", model, tiny_meta())
    loaded, _ = load_model(path)
    assert loaded.conv2.weight.is_contiguous()
    assert torch.equal(loaded.conv2.weight, model.conv2.weight)


def test_save_leaves_only_the_model_file(saved):
    path, _, _ = saved
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]


def test_run_directory_resolves_to_its_model_file(saved, tmp_path):
    path, _, meta = saved
    assert resolve_model_path(path.parent) == path
    _, loaded_meta = load_model(path.parent)
    assert loaded_meta == meta
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(DataError, match="holds no model.safetensors"):
        load_model(tmp_path / "empty-run")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.safetensors does not exist"):
        load_model(tmp_path / "nope.safetensors")


def test_tampered_weights_are_detected(saved):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    data[8 + header_length(path) + 100] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="tampered") as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_tampered_metadata_is_detected(saved):
    path, _, _ = saved
    data = path.read_bytes()
    assert data.count(b"Trouser") == 1
    path.write_bytes(data.replace(b"Trouser", b"Trunks!"))  # same length: the header stays valid JSON
    assert read_meta(path).classes[1] == "Trunks!"  # the header alone reads, but loading verifies
    with pytest.raises(DataError, match="tampered"):
        load_model(path)


def test_truncated_file(saved):
    path, _, _ = saved
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as e:
        load_model(path)
    assert str(path) in str(e.value)
    with pytest.raises(DataError, match="truncated"):
        read_meta(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "looks like a PNG image"),
        (b"just some text, not weights\n" * 20, "not a safetensors file"),
        (b"", "is empty"),
        (b"\x01\x02", "not a safetensors file"),
    ],
)
def test_not_a_safetensors_file(tmp_path, content, expected):
    path = tmp_path / "model.safetensors"
    if content is None:
        Image.new("L", (28, 28), 128).save(tmp_path / "shirt.png")
        (tmp_path / "shirt.png").rename(path)
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_safetensors_file_without_marker(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file(tiny_model().state_dict(), str(path), metadata={"source": "someone else"})
    with pytest.raises(DataError, match="not an fmnist model"):
        load_model(path)
    with pytest.raises(DataError, match="not an fmnist model"):
        read_meta(path)


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"format": "fmnist-model", "format_version": "2"})
    with pytest.raises(DataError, match="upgrade fmnist"):
        load_model(path)


def test_unknown_architecture(tmp_path):
    path = save_model(tmp_path / "m.safetensors", tiny_model(), tiny_meta(model="resnet-9000"))
    with pytest.raises(DataError, match="needs architecture 'resnet-9000'"):
        load_model(path)


def test_state_dict_mismatch(tmp_path):
    # Weights of a width-5 net described as width 4.
    path = save_model(tmp_path / "m.safetensors", tiny_model(width=5), tiny_meta())
    with pytest.raises(DataError, match="do not fit") as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_inconsistent_meta_is_refused_at_save(tmp_path):
    meta = tiny_meta(classes=["a", "b"])  # model_args says 3 classes
    with pytest.raises(ValueError, match="num_classes=3 but 2 class names"):
        save_model(tmp_path / "m.safetensors", tiny_model(), meta)
    assert not list(tmp_path.iterdir())


def test_loading_never_unpickles(saved, monkeypatch):
    path, _, _ = saved

    def forbidden(*args, **kwargs):
        raise AssertionError("a model file must load without pickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    load_model(path)
    read_meta(path)


def test_meta_for_recipe():
    recipe = get_recipe("baseline")
    meta = ModelMeta.for_recipe(recipe, CLASSES, dataset="fashion-mnist")
    assert meta.model == "baseline"
    assert meta.model_args == {"in_channels": 1, "num_classes": 3, "filters": 32, "padding": "valid"}
    assert meta.recipe == json.loads(json.dumps(recipe.to_dict()))
    assert meta.tta_flip is False
    assert meta.mean == recipe.mean and meta.std == recipe.std


@pytest.mark.parametrize("name", [n for n in ("mlp", "baseline", "seed003", "seed004", "minivgg") if n in list_models()])
def test_seed_architectures_round_trip(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name, in_channels=1, num_classes=10).eval()
    meta = ModelMeta(model=name, model_args={"in_channels": 1, "num_classes": 10}, classes=[str(i) for i in range(10)])
    loaded, _ = load_model(save_model(tmp_path / "m.safetensors", model, meta))
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_a_model_file_written_before_tta_flip_was_a_field_still_loads(tmp_path):
    # The layout the earlier code wrote: every ModelMeta field but tta_flip (which the recipe carried), each as
    # sorted JSON, and a digest over exactly those fields and the tensors.
    recipe = get_recipe("fast").replace(model="test-tiny", model_args={"width": 4})
    model = tiny_model()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    fields = {
        "model": "test-tiny", "model_args": {"in_channels": 1, "num_classes": 3, "width": 4}, "classes": CLASSES,
        "mean": 0.286, "std": 0.353, "input_size": [28, 28], "in_channels": 1, "recipe": recipe.to_dict(),
        "metrics": {"test_accuracy": 0.9}, "dataset": "fashion-mnist", "dataset_checksum": "abc", "version": "0.1.0",
        "created": "2026-11-30T10:00:00+00:00",
    }
    strings = {k: json.dumps(json.loads(json.dumps(v)), sort_keys=True) for k, v in fields.items()}
    digest = checkpoint._digest(strings, tensors)
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path), metadata={"format": "fmnist-model", "format_version": "1", **strings, "digest": digest})
    loaded, meta = load_model(path)
    assert meta.tta_flip is True and meta.metrics == {"test_accuracy": 0.9}  # from the recipe, as before
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))
